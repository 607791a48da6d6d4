//! Start timestamps (OpenTelemetry's start time of a cumulative or delta sample), as
//! Prometheus's engine uses them when "use start timestamps" is on: a start after the
//! previous sample's time is a counter reset, a start inside a rate window is a zero value
//! there. A start timestamp of 0 means none.
//!
//! Only `rate`, `increase`, `irate` and `resets` over a matrix selector read them (and
//! `start_timestamp()` over an instant selector); subqueries and other expressions carry
//! none, as in Prometheus. Series without start timestamps carry no per-sample data.

use crate::eval::StepSeries;

/// The start timestamps of one series' samples, aligned with its float points and its
/// histogram points (0 where a sample has none).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SeriesStarts {
    pub floats: Vec<i64>,
    pub hists: Vec<i64>,
}

impl SeriesStarts {
    /// Aligns sparse `(sample time, start time)` pairs (sorted by time) with a series'
    /// points; `None` when there are none.
    pub fn align(pairs: &[(i64, i64)], series: &StepSeries) -> Option<SeriesStarts> {
        if pairs.is_empty() {
            return None;
        }
        Some(SeriesStarts {
            floats: aligned(pairs, series.points.iter().map(|p| p.t)),
            hists: aligned(pairs, series.hists.iter().map(|p| p.t)),
        })
    }
}

/// The start time of each of `times` (ascending) among `pairs`, 0 when absent.
fn aligned(pairs: &[(i64, i64)], times: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut j = 0;
    times
        .map(|t| {
            j += pairs[j..].partition_point(|p| p.0 < t);
            pairs.get(j).filter(|p| p.0 == t).map_or(0, |p| p.1)
        })
        .collect()
}

/// The start time of the sample at `t` among sparse pairs, 0 when it has none.
pub(crate) fn start_at(pairs: &[(i64, i64)], t: i64) -> i64 {
    pairs.binary_search_by_key(&t, |p| p.0).map_or(0, |i| pairs[i].1)
}

/// The start timestamps of one window: slices aligned with its float and histogram
/// samples, both empty when the series has none.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WindowStarts<'a> {
    pub floats: &'a [i64],
    pub hists: &'a [i64],
}

impl<'a> WindowStarts<'a> {
    /// The same window cut to its last `floats` float and `hists` histogram samples.
    pub fn suffix(self, floats: usize, hists: usize) -> WindowStarts<'a> {
        WindowStarts { floats: suffix(self.floats, floats), hists: suffix(self.hists, hists) }
    }
}

/// The last `n` start timestamps, or none when there are none.
pub(crate) fn suffix(starts: &[i64], n: usize) -> &[i64] {
    &starts[starts.len().saturating_sub(n)..]
}

/// Prometheus's `isStartTimestampReset`: whether the current sample starts a new count.
/// A start after the previous sample is a reset. A start at the previous sample is one for a
/// delta (the previous sample has a start of its own before it) but not for a cumulative
/// series with an unknown start (the previous sample's start is unset, equal to its time,
/// or invalid). Unset, invalid (after the sample) or OTel's "unknown" (equal to the sample)
/// current starts are never resets.
pub(crate) fn is_reset(prev_st: i64, prev_t: i64, cur_st: i64, cur_t: i64) -> bool {
    if cur_st == 0 || cur_st >= cur_t || cur_st < prev_t {
        return false;
    }
    if cur_st > prev_t {
        return true;
    }
    prev_st != 0 && prev_st < prev_t
}

/// Whether the sample after `i` (in a window whose start timestamps are `starts`, empty
/// for none) is a reset by its start timestamp.
pub(crate) fn is_reset_at(starts: &[i64], i: usize, prev_t: i64, cur_t: i64) -> bool {
    starts.len() > i + 1 && is_reset(starts[i], prev_t, starts[i + 1], cur_t)
}

/// Prometheus's `checkStartTimeOverlap`: a start before the previous sample that is not the
/// previous sample's start (which a cumulative series repeats) means two samples claim the
/// same time span.
pub(crate) fn overlaps(prev_st: i64, prev_t: i64, cur_st: i64) -> bool {
    cur_st != 0 && cur_st < prev_t && cur_st != prev_st
}

/// Whether any sample of a window overlaps its predecessor (`times` ascending, `starts`
/// aligned with them or empty).
pub(crate) fn any_overlap(times: impl Iterator<Item = i64>, starts: &[i64]) -> bool {
    !starts.is_empty() && times.zip(starts.windows(2)).any(|(prev_t, st)| overlaps(st[0], prev_t, st[1]))
}

/// For a counter's rate: the first sample's start time when it lies inside the window
/// `(range_start, …]` and before the sample. The counter was zero then, so the increase is
/// measured from there instead of extrapolated to the left.
pub(crate) fn zero_at(starts: &[i64], range_start: i64, first_t: i64) -> Option<i64> {
    starts.first().copied().filter(|&st| st != 0 && st > range_start && st < first_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::{HistogramSample, Labels, Sample};

    #[test]
    fn resets_by_start_timestamp() {
        // A start after the previous sample: the counter restarted in between.
        assert!(is_reset(0, 60_000, 90_000, 120_000));
        assert!(is_reset(90_000, 120_000, 120_001, 180_000));
        // Cumulative: the start repeats and lies before the previous sample.
        assert!(!is_reset(30_000, 60_000, 30_000, 120_000));
        // OTel delta: each sample starts at the previous one, which has a start of its own.
        assert!(!is_reset(0, 60_000, 60_000, 120_000), "the previous start is unknown");
        assert!(is_reset(1, 60_000, 60_000, 120_000));
        // Cumulative with an unknown start (previous start unset or equal to its time).
        assert!(!is_reset(60_000, 60_000, 60_000, 120_000));
        // An invalid previous start (after its sample) is taken as unknown.
        assert!(!is_reset(120_000, 60_000, 60_000, 120_000));
        // Unset, "unknown" (= T) and invalid (> T) current starts.
        assert!(!is_reset(1, 60_000, 0, 120_000));
        assert!(!is_reset(1, 60_000, 120_000, 120_000));
        assert!(!is_reset(1, 60_000, 120_001, 120_000));
    }

    #[test]
    fn overlaps_and_zero_points() {
        assert!(overlaps(0, 120_000, 60_000));
        assert!(!overlaps(60_000, 120_000, 60_000), "a cumulative series repeats its start");
        assert!(!overlaps(60_000, 120_000, 120_000), "a delta starts at the previous sample");
        assert!(!overlaps(1, 120_000, 0));
        assert!(any_overlap([120_000, 180_000].into_iter(), &[0, 60_000]));
        assert!(!any_overlap([120_000, 180_000].into_iter(), &[]));
        // Inside `(range_start, first_t)` only: the window's left end is open.
        assert_eq!(zero_at(&[90_000], 60_000, 120_000), Some(90_000));
        assert_eq!(zero_at(&[60_000], 60_000, 120_000), None);
        assert_eq!(zero_at(&[120_000], 60_000, 120_000), None);
        assert_eq!(zero_at(&[0], -1, 120_000), None);
        assert_eq!(zero_at(&[], 0, 120_000), None);
    }

    #[test]
    fn aligns_sparse_pairs_with_points() {
        let series = StepSeries {
            labels: Labels::empty(),
            drop_name: false,
            points: vec![Sample::new(10, 1.0), Sample::new(20, 2.0), Sample::new(40, 4.0)],
            hists: vec![HistogramSample { t: 30, h: Default::default() }],
        };
        let st = SeriesStarts::align(&[(20, 15), (30, 25), (40, 35)], &series).expect("has starts");
        assert_eq!(st, SeriesStarts { floats: vec![0, 15, 35], hists: vec![25] });
        assert_eq!(SeriesStarts::align(&[], &series), None);
        assert_eq!(start_at(&[(20, 15), (30, 25)], 30), 25);
        assert_eq!(start_at(&[(20, 15)], 30), 0);
        assert_eq!(suffix(&[1, 2, 3], 2), &[2, 3]);
        assert!(suffix(&[], 2).is_empty());
    }
}
