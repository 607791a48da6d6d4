//! A small cache of index lookups keyed by matcher sets: dashboards repeat the same selects
//! on every refresh, and resolving which series match (postings, the series' labels, their
//! order) took a quarter to a third of such a query. Bounded in entries and in total weight
//! (what the entries hold, as each user measures it); the least recently used entry goes
//! first.

use std::collections::VecDeque;

use osprey_model::{MatchOp, Matcher};
use parking_lot::Mutex;

/// The matchers as given, by (name, op, value): a regex is compiled from its value, so equal
/// triples match equally. Order is kept (a reordered set is another entry, which is merely
/// a miss).
type MatcherKey = Box<[(String, MatchOp, String)]>;

fn same(key: &MatcherKey, matchers: &[Matcher]) -> bool {
    key.len() == matchers.len()
        && key.iter().zip(matchers).all(|((name, op, value), m)| *op == m.op && *name == m.name && *value == m.value)
}

struct Entry<V> {
    key: MatcherKey,
    value: V,
    weight: usize,
}

pub(crate) struct SelectCache<V> {
    max_entries: usize,
    max_weight: usize,
    /// Least recently used first.
    entries: Mutex<(VecDeque<Entry<V>>, usize)>,
}

impl<V: Clone> SelectCache<V> {
    pub(crate) fn new(max_entries: usize, max_weight: usize) -> SelectCache<V> {
        SelectCache { max_entries, max_weight, entries: Mutex::new((VecDeque::new(), 0)) }
    }

    /// The value cached for `matchers`, now the most recently used.
    pub(crate) fn get(&self, matchers: &[Matcher]) -> Option<V> {
        let mut guard = self.entries.lock();
        let list = &mut guard.0;
        let i = list.iter().position(|e| same(&e.key, matchers))?;
        let entry = list.remove(i)?;
        let value = entry.value.clone();
        list.push_back(entry);
        Some(value)
    }

    /// Caches `value` for `matchers` (replacing an entry for them), evicting the least
    /// recently used entries until both bounds hold; a value heavier than the whole budget
    /// is not cached.
    pub(crate) fn insert(&self, matchers: &[Matcher], value: V, weight: usize) {
        let mut guard = self.entries.lock();
        let (list, total) = &mut *guard;
        if let Some(i) = list.iter().position(|e| same(&e.key, matchers)) {
            if let Some(old) = list.remove(i) {
                *total -= old.weight;
            }
        }
        if weight > self.max_weight || self.max_entries == 0 {
            return;
        }
        while list.len() >= self.max_entries || *total + weight > self.max_weight {
            match list.pop_front() {
                Some(old) => *total -= old.weight,
                None => break,
            }
        }
        let key = matchers.iter().map(|m| (m.name.clone(), m.op, m.value.clone())).collect();
        list.push_back(Entry { key, value, weight });
        *total += weight;
    }

    pub(crate) fn clear(&self) {
        *self.entries.lock() = (VecDeque::new(), 0);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &str) -> Vec<Matcher> {
        vec![Matcher::equal("__name__", v)]
    }

    #[test]
    fn hits_by_matchers_and_evicts_least_recently_used() {
        let cache = SelectCache::new(2, 100);
        cache.insert(&m("a"), 1, 1);
        cache.insert(&m("b"), 2, 1);
        assert_eq!(cache.get(&m("a")), Some(1));
        let re = Matcher::new(MatchOp::RegexMatch, "__name__", "a").unwrap();
        assert_eq!(cache.get(&[re]), None, "another op is another key");
        cache.insert(&m("c"), 3, 1);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&m("b")), None, "b was least recently used");
        assert_eq!((cache.get(&m("a")), cache.get(&m("c"))), (Some(1), Some(3)));
        cache.insert(&m("c"), 4, 1);
        assert_eq!((cache.len(), cache.get(&m("c"))), (2, Some(4)));
        cache.clear();
        assert_eq!(cache.get(&m("a")), None);
    }

    #[test]
    fn weight_bounds_the_cache() {
        let cache = SelectCache::new(10, 10);
        cache.insert(&m("a"), 1, 6);
        cache.insert(&m("b"), 2, 6);
        assert_eq!((cache.get(&m("a")), cache.get(&m("b"))), (None, Some(2)));
        cache.insert(&m("huge"), 3, 11);
        assert_eq!((cache.get(&m("huge")), cache.len()), (None, 1));
    }
}
