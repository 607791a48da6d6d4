//! Range functions over native-histogram samples (`rate`, `increase`, `delta`, `irate`,
//! `idelta`, `resets`, `changes`, `sum/avg/count/last/first/present_over_time`), with the
//! annotations Prometheus attaches when a window mixes floats and histograms or holds
//! gauge histograms where counters are expected.

use osprey_model::{CounterResetHint, FloatHistogram, HistogramError, HistogramSample, Sample};

use crate::extended::Modifier;
use crate::functions::{extrapolation_factor, Edges};
use crate::start::{self, WindowStarts};

/// A range function's result at one step: a float or a histogram.
pub(crate) enum Out {
    F(f64),
    H(FloatHistogram),
}

/// Annotations raised while computing one window, worded as Prometheus words them; the
/// caller adds the metric name and position.
#[derive(Default)]
pub(crate) struct Notes {
    pub mixed_floats_histograms: bool,
    pub mixed_exponential_custom: bool,
    pub not_counter: bool,
    pub not_gauge: bool,
    pub counter_reset_collision: bool,
    /// Operation names (`addition`, `subtraction`, `aggregation`) whose custom buckets were
    /// reconciled.
    pub reconciled: Vec<&'static str>,
    pub ignored_histograms: bool,
    /// A sample's start timestamp lies before the previous sample (and is not its start).
    pub start_time_overlap: bool,
}

impl Notes {
    fn reconciled(&mut self, op: &'static str) {
        if !self.reconciled.contains(&op) {
            self.reconciled.push(op);
        }
    }
}

/// The functions that compute with histogram samples; the others ignore them.
pub(crate) fn handles_histograms(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "resets"
            | "changes"
            | "sum_over_time"
            | "avg_over_time"
            | "count_over_time"
            | "last_over_time"
            | "first_over_time"
            | "present_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
    )
}

/// One window of a histogram-aware function (`hists` is not empty), with the samples' start
/// timestamps (empty when none were read). An anchored or smoothed window also holds the
/// samples around `(range_start, range_end]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_window(
    name: &str,
    floats: &[Sample],
    hists: &[HistogramSample],
    starts: WindowStarts,
    range_start: i64,
    range_end: i64,
    modifier: Modifier,
    notes: &mut Notes,
) -> Option<Out> {
    let mixed = !floats.is_empty();
    match name {
        "rate" | "increase" | "delta" => {
            if mixed {
                notes.mixed_floats_histograms = true;
                return None;
            }
            let (is_counter, is_rate) = (name != "delta", name == "rate");
            let res = match modifier {
                Modifier::None => {
                    extrapolated_rate(hists, starts.hists, range_start, range_end, is_counter, is_rate, notes)
                }
                m => {
                    let smoothed = m == Modifier::Smoothed;
                    extended_rate(hists, range_start, range_end, smoothed, is_counter, is_rate, notes)
                }
            };
            res.map(Out::H)
        }
        "irate" | "idelta" => instant_value(floats, hists, starts, name == "irate", notes),
        "resets" | "changes" => {
            let (floats, hists) = match modifier {
                Modifier::Anchored => anchored(floats, hists, range_start)?,
                _ => (floats, hists),
            };
            let starts = starts.suffix(floats.len(), hists.len());
            Some(Out::F(count_transitions(floats, hists, starts, name == "resets")))
        }
        "sum_over_time" | "avg_over_time" => {
            if mixed {
                notes.mixed_floats_histograms = true;
                return None;
            }
            if name == "avg_over_time" {
                let hs: Vec<&FloatHistogram> = hists.iter().map(|h| &h.h).collect();
                return fieldwise(&hs, Fieldwise::Mean, notes).map(Out::H);
            }
            sum_histograms(hists, notes).map(Out::H)
        }
        "count_over_time" => Some(Out::F((floats.len() + hists.len()) as f64)),
        "present_over_time" => Some(Out::F(1.0)),
        "last_over_time" => match (floats.last(), hists.last()) {
            (Some(f), Some(h)) if h.t < f.t => Some(Out::F(f.v)),
            (_, Some(h)) => Some(Out::H(h.h.clone())),
            (Some(f), None) => Some(Out::F(f.v)),
            (None, None) => None,
        },
        "first_over_time" => match (floats.first(), hists.first()) {
            (Some(f), Some(h)) if f.t < h.t => Some(Out::F(f.v)),
            (_, Some(h)) => Some(Out::H(h.h.clone())),
            (Some(f), None) => Some(Out::F(f.v)),
            (None, None) => None,
        },
        "ts_of_last_over_time" => {
            let t = floats.last().map_or(i64::MIN, |f| f.t).max(hists.last().map_or(i64::MIN, |h| h.t));
            Some(Out::F(t as f64 / 1000.0))
        }
        "ts_of_first_over_time" => {
            let t = floats.first().map_or(i64::MAX, |f| f.t).min(hists.first().map_or(i64::MAX, |h| h.t));
            Some(Out::F(t as f64 / 1000.0))
        }
        _ => None,
    }
}

/// `h -= other` (or `+=`), noting reconciled custom buckets; `false` when the schemas do
/// not mix.
fn combine(h: &mut FloatHistogram, other: &FloatHistogram, sub: bool, notes: &mut Notes) -> bool {
    let res = if sub { h.sub(other) } else { h.add(other) };
    match res {
        Ok(n) => {
            if n.nhcb_bounds_reconciled {
                notes.reconciled(if sub { "subtraction" } else { "addition" });
            }
            true
        }
        Err(HistogramError::IncompatibleSchema) => {
            notes.mixed_exponential_custom = true;
            false
        }
    }
}

/// Prometheus's `histogramRate`: last minus first, corrected for counter resets (detected,
/// or by start timestamp when `starts` are given).
fn histogram_delta(
    points: &[HistogramSample],
    starts: &[i64],
    is_counter: bool,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let mut prev = points[0].h.clone();
    let last = &points[points.len() - 1].h;
    let gauge = CounterResetHint::Gauge;
    if is_counter && (prev.counter_reset_hint == gauge || last.counter_reset_hint == gauge) {
        notes.not_counter = true;
    }
    let mut custom = prev.uses_custom_buckets();
    if is_counter && (start::is_reset_at(starts, 0, points[0].t, points[1].t) || points[1].h.detect_reset(&prev)) {
        let second = &points[1].h;
        prev =
            FloatHistogram { schema: second.schema, custom_values: second.custom_values.clone(), ..Default::default() };
        custom = second.uses_custom_buckets();
    }
    if last.uses_custom_buckets() != custom {
        notes.mixed_exponential_custom = true;
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for p in &points[1..points.len() - 1] {
        if !is_counter {
            continue;
        }
        if p.h.counter_reset_hint == gauge {
            notes.not_counter = true;
        }
        min_schema = min_schema.min(p.h.schema);
        if p.h.uses_custom_buckets() != custom {
            notes.mixed_exponential_custom = true;
            return None;
        }
    }
    let mut h = last.clone();
    h.reduce_resolution(min_schema);
    if !combine(&mut h, &prev, true, notes) {
        return None;
    }
    if is_counter {
        notes.start_time_overlap |= start::any_overlap(points.iter().map(|p| p.t), starts);
        for (i, p) in points[1..].iter().enumerate() {
            let reset = start::is_reset_at(starts, i, points[i].t, p.t) || p.h.detect_reset(&prev);
            if reset && !combine(&mut h, &prev, false, notes) {
                return None;
            }
            prev = p.h.clone();
        }
    } else if points[0].h.counter_reset_hint != gauge || last.counter_reset_hint != gauge {
        notes.not_gauge = true;
    }
    h.counter_reset_hint = gauge;
    h.compact();
    Some(h)
}

/// `rate`, `increase` and `delta` of histograms, extrapolated like their float versions,
/// with the same use of a counter's start timestamps.
fn extrapolated_rate(
    points: &[HistogramSample],
    starts: &[i64],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let (first, last) = (points.first()?, &points[points.len() - 1]);
    let starts = if is_counter { starts } else { &[] };
    let delta = match points.len() {
        1 => None,
        _ => Some(histogram_delta(points, starts, is_counter, notes)?),
    };
    let zero_at = start::zero_at(starts, range_start, first.t);
    let mut result = match (delta, zero_at) {
        (None, None) => return None,
        (Some(d), None) => d,
        (None, Some(_)) => first.h.clone(),
        (Some(mut d), Some(_)) => {
            if !combine(&mut d, &first.h, false, notes) {
                return None;
            }
            d
        }
    };
    let edges = Edges { first_t: first.t, last_t: last.t, samples: points.len(), range_start, range_end, zero_at };
    let zero_point = (is_counter && result.count > 0.0 && first.h.count >= 0.0).then(|| first.h.count / result.count);
    result.mul(extrapolation_factor(&edges, zero_point, is_rate));
    Some(result)
}

/// For anchored `resets`/`changes`: from the last sample of either kind at or before the
/// window start (the anchor) on; `None` when no sample lies after the window start.
fn anchored<'a>(
    floats: &'a [Sample],
    hists: &'a [HistogramSample],
    range_start: i64,
) -> Option<(&'a [Sample], &'a [HistogramSample])> {
    let after_f = floats.partition_point(|s| s.t <= range_start);
    let after_h = hists.partition_point(|s| s.t <= range_start);
    if after_f >= floats.len() && after_h >= hists.len() {
        return None;
    }
    let anchor_f = after_f.checked_sub(1).map(|i| floats[i].t);
    let anchor_h = after_h.checked_sub(1).map(|i| hists[i].t);
    Some(match (anchor_f, anchor_h) {
        (None, None) => (floats, hists),
        (Some(f), h) if h.is_none_or(|h| f >= h) => (&floats[after_f - 1..], &hists[after_h..]),
        _ => (&floats[after_f..], &hists[after_h - 1..]),
    })
}

/// The histogram at `t` between two samples; a counter that reset restarts from zero.
fn interpolate(
    a: &HistogramSample,
    b: &HistogramSample,
    t: i64,
    is_counter: bool,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    if t == a.t {
        return Some(a.h.clone());
    }
    if t == b.t {
        return Some(b.h.clone());
    }
    let fraction = (t - a.t) as f64 / (b.t - a.t) as f64;
    let mut result = b.h.clone();
    if is_counter && b.h.detect_reset(&a.h) {
        result.mul(fraction);
        return Some(result);
    }
    if !combine(&mut result, &a.h, true, notes) {
        return None;
    }
    result.mul(fraction);
    combine(&mut result, &a.h, false, notes).then_some(result)
}

/// `rate`, `increase` and `delta` of histograms over an anchored or smoothed window
/// (Prometheus's `extendedHistogramRate`): the difference of the histograms at the window
/// edges, taken or interpolated, corrected for counter resets.
fn extended_rate(
    h: &[HistogramSample],
    range_start: i64,
    range_end: i64,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let mut last = h.len().checked_sub(1)?;
    let first = h[..last].partition_point(|s| s.t <= range_start).saturating_sub(1);
    if smoothed {
        last = h[..last].partition_point(|s| s.t < range_end);
    }
    if h[last].t <= range_start || (smoothed && h[first].t > range_end) {
        return None;
    }
    let custom = h[first].h.uses_custom_buckets();
    for p in &h[first..=last] {
        if p.h.uses_custom_buckets() != custom {
            notes.mixed_exponential_custom = true;
            return None;
        }
        if is_counter && p.h.counter_reset_hint == CounterResetHint::Gauge {
            notes.not_counter = true;
        }
    }
    let left = if smoothed && h[first].t < range_start {
        interpolate(&h[first], &h[first + 1], range_start, is_counter, notes)?
    } else {
        h[first].h.clone()
    };
    let right = if smoothed && last > 0 && h[last].t > range_end {
        interpolate(&h[last - 1], &h[last], range_end, is_counter, notes)?
    } else {
        h[last].h.clone()
    };
    let gauge = CounterResetHint::Gauge;
    if !is_counter && (left.counter_reset_hint != gauge || right.counter_reset_hint != gauge) {
        notes.not_gauge = true;
    }
    let mut result = right.clone();
    if !combine(&mut result, &left, true, notes) {
        return None;
    }
    if is_counter {
        // Counter resets between the edges add the value before each reset.
        let mut from = first + 1;
        let mut prev = &left;
        if smoothed && h[first].t < range_start && h[first + 1].h.detect_reset(&h[first].h) {
            prev = &h[first + 1].h;
            from += 1;
        }
        let mut correction: Option<FloatHistogram> = None;
        let mut add = |c: &FloatHistogram, notes: &mut Notes| match &mut correction {
            None => {
                correction = Some(c.clone());
                true
            }
            Some(sum) => combine(sum, c, false, notes),
        };
        if from <= last {
            for p in &h[from..last] {
                if p.h.detect_reset(prev) && !add(prev, notes) {
                    return None;
                }
                prev = &p.h;
            }
            if right.detect_reset(prev) && !add(prev, notes) {
                return None;
            }
        }
        if let Some(c) = correction {
            if !combine(&mut result, &c, false, notes) {
                return None;
            }
        }
    }
    if is_rate {
        result.div((range_end - range_start) as f64 / 1000.0);
    }
    result.counter_reset_hint = gauge;
    result.compact();
    Some(result)
}

/// A smoothed instant selector over histograms at `t` (`window` holds the samples within
/// the lookback delta on both sides): the sample at `t`, else the interpolation between its
/// neighbours, else the last one before it (with an unknown counter-reset hint).
pub(crate) fn smoothed_histogram(window: &[HistogramSample], t: i64, notes: &mut Notes) -> Option<FloatHistogram> {
    let i = window.partition_point(|s| s.t < t);
    match window.get(i) {
        Some(s) if s.t == t => Some(s.h.clone()),
        Some(next) if i > 0 => {
            let prev = &window[i - 1];
            if prev.h.uses_custom_buckets() != next.h.uses_custom_buckets() {
                notes.mixed_exponential_custom = true;
                return None;
            }
            let gauge = CounterResetHint::Gauge;
            let is_counter = prev.h.counter_reset_hint != gauge || next.h.counter_reset_hint != gauge;
            interpolate(prev, next, t, is_counter, notes)
        }
        None if i > 0 => {
            let mut h = window[i - 1].h.clone();
            h.counter_reset_hint = CounterResetHint::Unknown;
            Some(h)
        }
        _ => None,
    }
}

/// Samples of both kinds in time order: (time, start time or 0, float or histogram).
fn in_time_order<'a>(
    floats: &[Sample],
    hists: &'a [HistogramSample],
    starts: WindowStarts,
) -> Vec<(i64, i64, Result<f64, &'a FloatHistogram>)> {
    let start_of = |st: &[i64], i: usize| st.get(i).copied().unwrap_or(0);
    let mut all: Vec<_> = floats
        .iter()
        .enumerate()
        .map(|(i, f)| (f.t, start_of(starts.floats, i), Ok(f.v)))
        .chain(hists.iter().enumerate().map(|(i, h)| (h.t, start_of(starts.hists, i), Err(&h.h))))
        .collect();
    all.sort_by_key(|x| x.0);
    all
}

/// `irate` and `idelta` over the last two samples of either kind.
fn instant_value(
    floats: &[Sample],
    hists: &[HistogramSample],
    starts: WindowStarts,
    is_rate: bool,
    notes: &mut Notes,
) -> Option<Out> {
    // The last two samples of each kind, then the last two of those by time.
    let (nf, nh) = (floats.len().saturating_sub(2), hists.len().saturating_sub(2));
    let last = in_time_order(&floats[nf..], &hists[nh..], starts.suffix(floats.len() - nf, hists.len() - nh));
    if last.len() < 2 {
        return None;
    }
    let (a, b) = (last[last.len() - 2], last[last.len() - 1]);
    let interval = b.0 - a.0;
    if interval == 0 {
        return None;
    }
    let secs = interval as f64 / 1000.0;
    let start_reset = start::is_reset(a.1, a.0, b.1, b.0);
    match (a.2, b.2) {
        (Ok(x), Ok(y)) => {
            let mut v = if is_rate && (y < x || start_reset) { y } else { y - x };
            if is_rate {
                v /= secs;
            }
            Some(Out::F(v))
        }
        (Err(x), Err(y)) => {
            let gauge = CounterResetHint::Gauge;
            if is_rate && (x.counter_reset_hint == gauge || y.counter_reset_hint == gauge) {
                notes.not_counter = true;
            }
            if !is_rate && (x.counter_reset_hint != gauge || y.counter_reset_hint != gauge) {
                notes.not_gauge = true;
            }
            let mut h = y.clone();
            if (!is_rate || !(start_reset || y.detect_reset(x))) && !combine(&mut h, x, true, notes) {
                return None;
            }
            h.counter_reset_hint = gauge;
            h.compact();
            if is_rate {
                h.div(secs);
            }
            Some(Out::H(h))
        }
        _ => {
            notes.mixed_floats_histograms = true;
            None
        }
    }
}

/// `resets` (or `changes`) over floats and histograms in time order; a switch between
/// the two kinds counts, and for `resets` so does a start timestamp reset.
fn count_transitions(floats: &[Sample], hists: &[HistogramSample], starts: WindowStarts, resets: bool) -> f64 {
    let all = in_time_order(floats, hists, starts);
    let mut n = 0.0;
    for w in all.windows(2) {
        let start_reset = resets && start::is_reset(w[0].1, w[0].0, w[1].1, w[1].0);
        let counts = match (w[0].2, w[1].2) {
            (Ok(a), Ok(b)) if resets => b < a || start_reset,
            (Ok(a), Ok(b)) => a != b && !(a.is_nan() && b.is_nan()),
            (Err(a), Err(b)) if resets => start_reset || b.detect_reset(a),
            (Err(a), Err(b)) => !histograms_equal(a, b),
            _ => true,
        };
        if counts {
            n += 1.0;
        }
    }
    n
}

/// Prometheus's `FloatHistogram.Equals`: same layout (ignoring how spans are cut) and the
/// same values bit for bit; the counter-reset hint is not compared.
pub(crate) fn histograms_equal(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let same = |x: f64, y: f64| x.to_bits() == y.to_bits();
    let buckets = |x: &[(i32, f64)], y: &[(i32, f64)]| {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.0 == q.0 && same(p.1, q.1))
    };
    a.schema == b.schema
        && same(a.count, b.count)
        && same(a.sum, b.sum)
        && (a.uses_custom_buckets() || (same(a.zero_threshold, b.zero_threshold) && same(a.zero_count, b.zero_count)))
        && a.custom_values == b.custom_values
        && buckets(&a.positive, &b.positive)
        && buckets(&a.negative, &b.negative)
}

/// The sum of histograms (Kahan-compensated), noting conflicting counter-reset hints.
fn sum_histograms(hists: &[HistogramSample], notes: &mut Notes) -> Option<FloatHistogram> {
    let hs: Vec<&FloatHistogram> = hists.iter().map(|h| &h.h).collect();
    fieldwise(&hs, Fieldwise::Sum, notes)
}

/// How [`fieldwise`] combines the values of one field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fieldwise {
    Sum,
    Mean,
}

/// Sums (or averages) histograms field by field — count, sum, zero count and every
/// bucket — with the float algorithms (Kahan summation, incremental mean on overflow),
/// in the layout that adding them one by one gives. `None` when exponential and custom
/// buckets meet.
pub(crate) fn fieldwise(hists: &[&FloatHistogram], how: Fieldwise, notes: &mut Notes) -> Option<FloatHistogram> {
    let mut layout = hists[0].clone();
    let (mut reset, mut not_reset) = (false, false);
    for h in hists {
        reset |= h.counter_reset_hint == CounterResetHint::CounterReset;
        not_reset |= h.counter_reset_hint == CounterResetHint::NotCounterReset;
    }
    for h in &hists[1..] {
        match layout.add(h) {
            Ok(n) => {
                if n.nhcb_bounds_reconciled {
                    notes.reconciled("aggregation");
                }
            }
            Err(HistogramError::IncompatibleSchema) => {
                notes.mixed_exponential_custom = true;
                return None;
            }
        }
    }
    if reset && not_reset {
        notes.counter_reset_collision = true;
    }
    let aligned: Vec<FloatHistogram> = hists.iter().map(|h| h.aligned_to(&layout)).collect();
    let combine = |values: &mut dyn Iterator<Item = f64>| match how {
        Fieldwise::Sum => crate::functions::kahan_sum(values),
        Fieldwise::Mean => crate::functions::mean(values),
    };
    let bucket = |buckets: &[(i32, f64)], idx: i32| {
        buckets.binary_search_by_key(&idx, |b| b.0).map(|i| buckets[i].1).unwrap_or(0.0)
    };
    layout.count = combine(&mut aligned.iter().map(|h| h.count));
    layout.sum = combine(&mut aligned.iter().map(|h| h.sum));
    layout.zero_count = combine(&mut aligned.iter().map(|h| h.zero_count));
    for b in layout.positive.iter_mut() {
        b.1 = combine(&mut aligned.iter().map(|h| bucket(&h.positive, b.0)));
    }
    for b in layout.negative.iter_mut() {
        b.1 = combine(&mut aligned.iter().map(|h| bucket(&h.negative, b.0)));
    }
    Some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(points: &[(i64, f64)]) -> Vec<HistogramSample> {
        points
            .iter()
            .map(|&(t, c)| HistogramSample {
                t,
                h: FloatHistogram { count: c, sum: c, positive: vec![(0, c)], ..Default::default() },
            })
            .collect()
    }

    #[test]
    fn increase_corrects_for_counter_resets() {
        // 10 → 20 → (reset) 5 → 15 is 10 + 5 + 10; the samples span the whole window.
        let h = hs(&[(0, 10.0), (10_000, 20.0), (20_000, 5.0), (30_000, 15.0)]);
        let mut notes = Notes::default();
        let got = extrapolated_rate(&h, &[], 0, 30_000, true, false, &mut notes).expect("a result");
        assert_eq!(got.count, 25.0);
        assert_eq!(got.counter_reset_hint, CounterResetHint::Gauge);
        assert!(!notes.mixed_exponential_custom && !notes.not_counter);
    }

    #[test]
    fn start_timestamps_mark_resets_and_zero_points() {
        let mut notes = Notes::default();
        // One histogram whose start lies in the window: it counted from zero since then.
        let one = hs(&[(120_000, 60.0)]);
        let got = extrapolated_rate(&one, &[60_000], 0, 180_000, true, false, &mut notes).expect("a result");
        assert_eq!(got.count, 60.0);
        assert!(extrapolated_rate(&one, &[], 0, 180_000, true, false, &mut notes).is_none());
        // Deltas (each starts at the previous sample): every sample is a fresh count, so the
        // increase is their sum, measured from the first start.
        let deltas = hs(&[(60_000, 60.0), (120_000, 60.0), (180_000, 60.0)]);
        let starts = [1, 60_000, 120_000];
        let got = extrapolated_rate(&deltas, &starts, 0, 180_000, true, false, &mut notes).expect("a result");
        assert_eq!(got.count, 180.0);
        // `delta` treats histograms as gauges: start timestamps do not apply.
        let got = extrapolated_rate(&deltas, &starts, 0, 180_000, false, false, &mut notes).expect("a result");
        assert_eq!(got.count, 0.0);
        assert!(!notes.start_time_overlap);
        // A start before the previous sample that is not its start: overlapping samples.
        extrapolated_rate(&deltas, &[1, 30_000, 120_000], 0, 180_000, true, false, &mut notes);
        assert!(notes.start_time_overlap);
        // `irate` and `resets` see the same resets.
        let ws = WindowStarts { floats: &[], hists: &starts };
        let irate = eval_window("irate", &[], &deltas, ws, 0, 180_000, Modifier::None, &mut notes);
        assert!(matches!(irate, Some(Out::H(h)) if h.count == 1.0));
        let resets = eval_window("resets", &[], &deltas, ws, 0, 180_000, Modifier::None, &mut notes);
        assert!(matches!(resets, Some(Out::F(v)) if v == 2.0));
    }

    #[test]
    fn anchored_and_smoothed_windows_use_edge_histograms() {
        let h = hs(&[(0, 10.0), (20_000, 30.0)]);
        let mut notes = Notes::default();
        let anchored = extended_rate(&h, 0, 20_000, false, true, false, &mut notes).expect("anchored");
        assert_eq!(anchored.count, 20.0);
        let smoothed = extended_rate(&h, 5_000, 15_000, true, true, false, &mut notes).expect("smoothed");
        assert_eq!(smoothed.count, 10.0);
    }

    #[test]
    fn mixed_windows_are_noted() {
        let mut notes = Notes::default();
        let floats = [Sample::new(0, 1.0)];
        let got =
            eval_window("rate", &floats, &hs(&[(1, 1.0)]), Default::default(), 0, 60_000, Modifier::None, &mut notes);
        assert!(got.is_none() && notes.mixed_floats_histograms);
        let resets = eval_window(
            "resets",
            &[],
            &hs(&[(0, 5.0), (1, 1.0)]),
            Default::default(),
            0,
            60_000,
            Modifier::None,
            &mut notes,
        );
        assert!(matches!(resets, Some(Out::F(v)) if v == 1.0));
    }
}
