//! The in-memory inverted index (label name -> value -> sorted series ids) that head and
//! blocks both select through.

use std::collections::{BTreeSet, HashMap, HashSet};

use osprey_model::{MatchOp, Matcher};

#[derive(Debug, Default)]
pub(crate) struct Postings {
    /// name -> value -> ids. Ids are kept sorted (appends are mostly in increasing order).
    map: HashMap<String, HashMap<String, Vec<u64>>>,
    all: Vec<u64>,
}

fn insert_sorted(list: &mut Vec<u64>, id: u64) {
    match list.last() {
        Some(&last) if last >= id => {
            if let Err(pos) = list.binary_search(&id) {
                list.insert(pos, id);
            }
        }
        _ => list.push(id),
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl Postings {
    pub(crate) fn add<'a>(&mut self, id: u64, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (name, value) in pairs {
            let values = self.map.entry_ref_or_insert(name);
            match values.get_mut(value) {
                Some(list) => insert_sorted(list, id),
                None => {
                    values.insert(value.to_string(), vec![id]);
                }
            }
        }
        insert_sorted(&mut self.all, id);
    }

    /// Removes series, given as their ids and label pairs. Each list a removed series is in
    /// is filtered once for all of them: removing ids one at a time shifts the list each
    /// time, quadratic when a head cut drops most series (measured: `Head::truncate` took
    /// ~17% of the server's CPU in a remote-write benchmark run of 100k series, flush
    /// included).
    pub(crate) fn remove_many<'a, P>(&mut self, series: impl IntoIterator<Item = (u64, P)>)
    where
        P: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut gone = Vec::new();
        let mut touched: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (id, pairs) in series {
            gone.push(id);
            for (name, value) in pairs {
                touched.entry(name).or_default().insert(value);
            }
        }
        gone.sort_unstable();
        let kept = |id: &u64| gone.binary_search(id).is_err();
        for (name, touched_values) in touched {
            let Some(values) = self.map.get_mut(name) else { continue };
            for value in touched_values {
                if let Some(list) = values.get_mut(value) {
                    list.retain(kept);
                    if list.is_empty() {
                        values.remove(value);
                    }
                }
            }
            if values.is_empty() {
                self.map.remove(name);
            }
        }
        self.all.retain(kept);
    }

    /// Candidate ids for the matchers, sorted. Candidates still need a full label check when a
    /// matcher also accepts an absent label (such matchers are not used to narrow).
    pub(crate) fn candidates(&self, matchers: &[Matcher]) -> Vec<u64> {
        select_candidates(
            matchers,
            |m| match self.map.get(m.name.as_str()) {
                None => Vec::new(),
                Some(values) if m.op == MatchOp::Equal => values.get(m.value.as_str()).cloned().unwrap_or_default(),
                Some(values) => {
                    let lists = values.iter().filter(|(v, _)| m.matches(v)).map(|(_, l)| l.as_slice());
                    union(lists)
                }
            },
            || self.all.clone(),
        )
    }

    pub(crate) fn label_names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    pub(crate) fn values(&self, name: &str) -> impl Iterator<Item = (&str, &[u64])> {
        self.map.get(name).into_iter().flat_map(|m| m.iter().map(|(v, ids)| (v.as_str(), ids.as_slice())))
    }

    pub(crate) fn num_series(&self) -> usize {
        self.all.len()
    }

    /// (name, value) pairs sorted, with their ids; what a block's postings section stores.
    pub(crate) fn sorted_entries(&self) -> Vec<(&str, &str, &[u64])> {
        let mut out: Vec<(&str, &str, &[u64])> = self
            .map
            .iter()
            .flat_map(|(n, vs)| vs.iter().map(move |(v, ids)| (n.as_str(), v.as_str(), ids.as_slice())))
            .collect();
        out.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out
    }

    /// Every symbol (names and values).
    pub(crate) fn symbols(&self) -> BTreeSet<&str> {
        let mut s = BTreeSet::new();
        for (n, vs) in &self.map {
            s.insert(n.as_str());
            s.extend(vs.keys().map(String::as_str));
        }
        s
    }
}

/// Intersects, over the matchers that reject an absent label, the ids whose label value the
/// matcher accepts (`ids_for` gives them, sorted); with no such matcher, `all()`. Shared by
/// the head's index and the blocks' lazily decoded one.
pub(crate) fn select_candidates(
    matchers: &[Matcher],
    mut ids_for: impl FnMut(&Matcher) -> Vec<u64>,
    all: impl FnOnce() -> Vec<u64>,
) -> Vec<u64> {
    let mut result: Option<Vec<u64>> = None;
    for m in matchers.iter().filter(|m| !m.matches_empty()) {
        let mut ids = ids_for(m);
        if let Some(prev) = result.take() {
            ids = intersect(&prev, &ids);
        }
        if ids.is_empty() {
            return ids;
        }
        result = Some(ids);
    }
    result.unwrap_or_else(all)
}

/// The sorted, deduplicated union of sorted lists.
pub(crate) fn union<'a>(lists: impl Iterator<Item = &'a [u64]>) -> Vec<u64> {
    let mut ids: Vec<u64> = Vec::new();
    for l in lists {
        ids.extend_from_slice(l);
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

trait EntryRef {
    fn entry_ref_or_insert(&mut self, name: &str) -> &mut HashMap<String, Vec<u64>>;
}

impl EntryRef for HashMap<String, HashMap<String, Vec<u64>>> {
    /// Looks up without allocating the key when it exists (the common case on ingest).
    fn entry_ref_or_insert(&mut self, name: &str) -> &mut HashMap<String, Vec<u64>> {
        if !self.contains_key(name) {
            self.insert(name.to_string(), HashMap::new());
        }
        self.get_mut(name).unwrap_or_else(|| unreachable!("inserted above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_equality_regex_and_absence() {
        let mut p = Postings::default();
        p.add(1, [("__name__", "up"), ("job", "a")]);
        p.add(2, [("__name__", "up"), ("job", "b")]);
        p.add(3, [("__name__", "down")]);
        assert_eq!(p.candidates(&[Matcher::equal("__name__", "up")]), vec![1, 2]);
        let re = Matcher::new(MatchOp::RegexMatch, "job", "a|b").unwrap();
        assert_eq!(p.candidates(&[re, Matcher::equal("job", "b")]), vec![2]);
        assert_eq!(p.candidates(&[Matcher::equal("job", "")]), vec![1, 2, 3]);
        p.add(4, [("__name__", "up"), ("job", "c")]);
        p.remove_many([(2, [("__name__", "up"), ("job", "b")]), (4, [("__name__", "up"), ("job", "c")])]);
        assert_eq!(p.candidates(&[Matcher::equal("__name__", "up")]), vec![1]);
        assert_eq!(p.values("job").count(), 1);
    }
}
