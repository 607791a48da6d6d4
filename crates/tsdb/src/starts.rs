//! Start timestamps of one series as change points: `(t, start)` says that the samples at
//! `t` and after, up to the next point, began at `start` (0: none). A counter's start is
//! constant between resets, so a series holds one point per reset rather than one start per
//! sample; series that never had one hold nothing.
//!
//! The points are only meaningful against the samples they describe: a point's run covers
//! every sample up to the next point, so a run may reach past the last sample. Wherever
//! points of different sources (blocks, the head) meet, they are first expanded against
//! their own samples ([`expand`]), merged per sample like the samples are, and compressed
//! again ([`compress`]).

/// Change points sorted by `t`, unique `t`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StartRuns {
    points: Vec<(i64, i64)>,
}

impl StartRuns {
    pub(crate) fn points(&self) -> &[(i64, i64)] {
        &self.points
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The start of a sample at `t` (0: none).
    pub(crate) fn at(&self, t: i64) -> i64 {
        at(&self.points, t)
    }

    /// Sets the start of the stored sample at `t` to `start`; `later` says whether the series
    /// holds samples after `t`, whose starts must not change. Calls `log` with each point
    /// written, so that replaying those points with [`StartRuns::put`] rebuilds this state.
    /// In the common case (the newest sample, the same start as the one before) nothing is
    /// written.
    pub(crate) fn set(&mut self, t: i64, start: i64, later: bool, log: &mut impl FnMut(i64, i64)) {
        let old = self.at(t);
        if old == start {
            return;
        }
        self.put(t, start);
        log(t, start);
        let next = t.saturating_add(1);
        if later && next > t && self.points.binary_search_by_key(&next, |p| p.0).is_err() {
            self.put(next, old);
            log(next, old);
        }
    }

    /// Writes one point as it is (replacing a point at the same `t`).
    pub(crate) fn put(&mut self, t: i64, start: i64) {
        match self.points.binary_search_by_key(&t, |p| p.0) {
            Ok(i) => self.points[i].1 = start,
            Err(i) if i == self.points.len() => self.points.push((t, start)),
            Err(i) => self.points.insert(i, (t, start)),
        }
    }

    /// Forgets the starts of samples older than `t`, keeping those of `t` and after.
    pub(crate) fn truncate_before(&mut self, t: i64) {
        let current = self.at(t);
        let first_kept = self.points.partition_point(|p| p.0 < t);
        self.points.drain(..first_kept);
        if current != 0 && self.points.first().is_none_or(|p| p.0 != t) {
            self.points.insert(0, (t, current));
        }
        if self.points.iter().all(|p| p.1 == 0) {
            self.points.clear();
        }
    }

    /// The points describing samples in `[from, to)`: the run holding `from`, then the
    /// points inside; empty when none of those samples has a start.
    pub(crate) fn window(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let current = self.at(from);
        if current != 0 {
            out.push((from, current));
        }
        let first = self.points.partition_point(|p| p.0 <= from);
        out.extend(self.points[first..].iter().take_while(|p| p.0 < to));
        if out.iter().all(|p| p.1 == 0) {
            out.clear();
        }
        out
    }
}

/// The start of a sample at `t` under `points` (0: none).
pub(crate) fn at(points: &[(i64, i64)], t: i64) -> i64 {
    match points.partition_point(|p| p.0 <= t) {
        0 => 0,
        i => points[i - 1].1,
    }
}

/// `(t, start)` for every timestamp of `times` (sorted), zeros included, appended to `out`.
pub(crate) fn expand(points: &[(i64, i64)], times: impl IntoIterator<Item = i64>, out: &mut Vec<(i64, i64)>) {
    let (mut next, mut current) = (0, 0);
    for t in times {
        while next < points.len() && points[next].0 <= t {
            current = points[next].1;
            next += 1;
        }
        out.push((t, current));
    }
}

/// The change points of per-sample `(t, start)` pairs sorted by `t`, zeros included; empty
/// when no sample has a start.
pub(crate) fn compress(pairs: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut current = 0;
    for &(t, start) in pairs {
        if start != current {
            out.push((t, start));
            current = start;
        }
    }
    out
}

/// Merges per-sample pairs of several sources (each sorted, listed in source order) as
/// samples are merged: sorted by `t`, the first source's pair kept where they overlap.
pub(crate) fn merge_sources(mut pairs: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn expanded(runs: &StartRuns, times: &[i64]) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        expand(runs.points(), times.iter().copied(), &mut out);
        out
    }

    #[test]
    fn a_counter_between_resets_is_one_point() {
        let mut runs = StartRuns::default();
        let mut logged = Vec::new();
        for t in 1..=100 {
            runs.set(t * 10, if t < 50 { 5 } else { 495 }, false, &mut |t, s| logged.push((t, s)));
        }
        assert_eq!(runs.points(), &[(10, 5), (500, 495)]);
        assert_eq!(logged, runs.points());
        // A sample without a start after them ends the run.
        runs.set(1010, 0, false, &mut |_, _| {});
        assert_eq!(runs.at(1010), 0);
        assert_eq!(runs.at(1000), 495);
    }

    #[test]
    fn out_of_order_sets_keep_later_samples() {
        let mut runs = StartRuns::default();
        let mut log = Vec::new();
        runs.set(50, 7, true, &mut |t, s| log.push((t, s)));
        assert_eq!(expanded(&runs, &[10, 50, 60]), [(10, 0), (50, 7), (60, 0)]);
        let mut replayed = StartRuns::default();
        for (t, s) in log {
            replayed.put(t, s);
        }
        assert_eq!(replayed, runs);
    }

    #[test]
    fn truncation_and_windows_keep_the_runs_of_later_samples() {
        let mut runs = StartRuns::default();
        for (t, s) in [(10, 1), (20, 2), (30, 0), (40, 4)] {
            runs.put(t, s);
        }
        assert_eq!(runs.window(15, 35), [(15, 1), (20, 2), (30, 0)]);
        assert_eq!(runs.window(30, 40), Vec::<(i64, i64)>::new());
        assert_eq!(runs.window(0, 15), [(10, 1)]);
        runs.truncate_before(25);
        assert_eq!(runs.points(), &[(25, 2), (30, 0), (40, 4)]);
        runs.truncate_before(35);
        assert_eq!(runs.points(), &[(40, 4)]);
        runs.put(50, 0);
        runs.truncate_before(50);
        assert!(runs.is_empty());
    }

    proptest! {
        /// Any sequence of sets, in any order, describes every sample as the last set of
        /// its timestamp says, and the logged points rebuild the same runs.
        #[test]
        fn sets_match_a_per_sample_model(ops in proptest::collection::vec((0i64..40, 0i64..4), 0..60)) {
            let mut runs = StartRuns::default();
            let mut model = std::collections::BTreeMap::new();
            let mut replayed = StartRuns::default();
            for (t, s) in ops {
                let later = model.keys().next_back().is_some_and(|&max| max > t);
                model.insert(t, s);
                runs.set(t, s, later, &mut |t, s| replayed.put(t, s));
            }
            let times: Vec<i64> = model.keys().copied().collect();
            let want: Vec<(i64, i64)> = model.into_iter().collect();
            prop_assert_eq!(expanded(&runs, &times), want.clone());
            prop_assert_eq!(&replayed, &runs);
            let mut again = Vec::new();
            expand(&compress(&want), times.iter().copied(), &mut again);
            prop_assert_eq!(again, want);
        }
    }
}
