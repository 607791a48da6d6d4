//! A small cache of index lookups keyed by matcher sets: dashboards repeat the same selects
//! on every refresh, and resolving which series match (postings, the series' labels, their
//! order) took a quarter to a third of such a query. Bounded in entries and in total weight
//! (what the entries hold, as each user measures it); the least recently used entry goes
//! first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// A weight budget shared with other caches, if any.
    shared: Option<&'static SharedBudget>,
    /// Least recently used first.
    entries: Mutex<(VecDeque<Entry<V>>, usize)>,
}

/// Weight shared by many caches (every block's, in every tenant), so that their sum stays
/// bounded however many blocks and tenants there are: an insert that would take the total
/// over the limit is not cached, and evicted entries and dropped caches give theirs back.
pub(crate) struct SharedBudget {
    used: AtomicUsize,
    limit: usize,
}

impl SharedBudget {
    pub(crate) const fn new(limit: usize) -> SharedBudget {
        SharedBudget { used: AtomicUsize::new(0), limit }
    }

    fn take(&self, weight: usize) -> bool {
        let fits = |used: usize| used.checked_add(weight).filter(|&total| total <= self.limit);
        self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits).is_ok()
    }

    fn give_back(&self, weight: usize) {
        self.used.fetch_sub(weight, Ordering::AcqRel);
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl<V: Clone> SelectCache<V> {
    /// A cache of at most `max_entries` entries weighing `max_weight` together, whose weight
    /// also counts against `shared` when given.
    pub(crate) fn new(max_entries: usize, max_weight: usize, shared: Option<&'static SharedBudget>) -> SelectCache<V> {
        SelectCache { max_entries, max_weight, shared, entries: Mutex::new((VecDeque::new(), 0)) }
    }

    fn release(&self, weight: usize) {
        if let Some(shared) = self.shared {
            shared.give_back(weight);
        }
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
                self.release(old.weight);
            }
        }
        if weight > self.max_weight || self.max_entries == 0 {
            return;
        }
        while list.len() >= self.max_entries || *total + weight > self.max_weight {
            match list.pop_front() {
                Some(old) => {
                    *total -= old.weight;
                    self.release(old.weight);
                }
                None => break,
            }
        }
        if self.shared.is_some_and(|shared| !shared.take(weight)) {
            return;
        }
        let key = matchers.iter().map(|m| (m.name.clone(), m.op, m.value.clone())).collect();
        list.push_back(Entry { key, value, weight });
        *total += weight;
    }

    pub(crate) fn clear(&self) {
        let (_, total) = std::mem::take(&mut *self.entries.lock());
        self.release(total);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().0.len()
    }
}

impl<V> Drop for SelectCache<V> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared {
            shared.give_back(self.entries.get_mut().1);
        }
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
        let cache = SelectCache::new(2, 100, None);
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
    fn caches_sharing_a_budget_stay_within_it_together() {
        static SHARED: SharedBudget = SharedBudget::new(10);
        let a = SelectCache::new(4, 100, Some(&SHARED));
        let b = SelectCache::new(4, 100, Some(&SHARED));
        a.insert(&m("x"), 1, 6);
        b.insert(&m("x"), 2, 6);
        assert_eq!((a.get(&m("x")), b.get(&m("x")), SHARED.used()), (Some(1), None, 6), "b's would exceed it");
        a.insert(&m("x"), 3, 2);
        assert_eq!(SHARED.used(), 2, "a replaced entry gives its weight back");
        b.insert(&m("y"), 4, 7);
        assert_eq!((b.get(&m("y")), SHARED.used()), (Some(4), 9));
        drop(b);
        assert_eq!(SHARED.used(), 2, "a dropped cache gives its weight back");
        a.clear();
        assert_eq!(SHARED.used(), 0);
    }

    #[test]
    fn weight_bounds_the_cache() {
        let cache = SelectCache::new(10, 10, None);
        cache.insert(&m("a"), 1, 6);
        cache.insert(&m("b"), 2, 6);
        assert_eq!((cache.get(&m("a")), cache.get(&m("b"))), (None, Some(2)));
        cache.insert(&m("huge"), 3, 11);
        assert_eq!((cache.get(&m("huge")), cache.len()), (None, 1));
    }
}
