//! The per-tenant exemplar store: a bounded ring, oldest dropped first. As in Prometheus, an
//! exemplar not newer than the newest kept one of its series is ignored, so senders that
//! resend the same exemplar with every scrape do not fill the ring with copies.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use osprey_model::Exemplar;

use crate::series::MemSeries;

pub(crate) struct ExemplarRing {
    max: usize,
    ring: VecDeque<(Arc<MemSeries>, Exemplar)>,
    /// Newest kept exemplar timestamp per series id.
    newest: HashMap<u64, i64>,
}

impl ExemplarRing {
    pub(crate) fn new(max: usize) -> ExemplarRing {
        ExemplarRing { max, ring: VecDeque::new(), newest: HashMap::new() }
    }

    /// Keeps the exemplar unless it is a resend or older than its series' newest; says which.
    pub(crate) fn push(&mut self, series: &Arc<MemSeries>, e: Exemplar) -> bool {
        if self.max == 0 || self.newest.get(&series.id).is_some_and(|&t| t >= e.t) {
            return false;
        }
        if self.ring.len() >= self.max {
            if let Some((old, old_e)) = self.ring.pop_front() {
                if self.newest.get(&old.id) == Some(&old_e.t) {
                    self.newest.remove(&old.id);
                }
            }
        }
        self.newest.insert(series.id, e.t);
        self.ring.push_back((series.clone(), e));
        true
    }

    pub(crate) fn iter(&self) -> std::collections::vec_deque::Iter<'_, (Arc<MemSeries>, Exemplar)> {
        self.ring.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact_labels::CompactLabels;
    use osprey_model::Labels;

    #[test]
    fn resends_are_ignored_and_the_oldest_drop_out() {
        let s = Arc::new(MemSeries::new(1, 1, CompactLabels::new(&Labels::from_pairs([("a", "b")]))));
        let other = Arc::new(MemSeries::new(2, 2, CompactLabels::new(&Labels::from_pairs([("a", "c")]))));
        let ex = |t| Exemplar { labels: Labels::from_pairs([("trace_id", "x")]), t, v: 1.0 };
        let mut ring = ExemplarRing::new(2);
        assert!(ring.push(&s, ex(10)));
        assert!(!ring.push(&s, ex(10)), "resent");
        assert!(!ring.push(&s, ex(5)), "older");
        assert!(ring.push(&other, ex(5)));
        assert!(ring.push(&s, ex(20)));
        let kept: Vec<(u64, i64)> = ring.iter().map(|(s, e)| (s.id, e.t)).collect();
        assert_eq!(kept, vec![(2, 5), (1, 20)]);
    }
}
