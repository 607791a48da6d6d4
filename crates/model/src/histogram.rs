//! Native histograms as query engines compute with them: Prometheus's `FloatHistogram`
//! (exponential schemas -4..8 and custom buckets, schema -53) and the operations PromQL
//! needs — addition and subtraction across schemas and zero thresholds, scaling,
//! compaction, counter-reset detection and bucket iteration with boundaries.
//!
//! Buckets are kept as sorted `(index, count)` pairs rather than Prometheus's spans and
//! deltas: the layout (which buckets exist, empty ones included) is the same information,
//! and arithmetic on it needs no span bookkeeping. [`FloatHistogram::spans`] gives the span
//! form for encoders.

use crate::Timestamp;

/// The schema number of histograms with custom bucket boundaries (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// What the producer said about counter resets at this sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

/// A native histogram with float counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    /// Positive buckets as `(index, count)`, sorted by index. Buckets with a count of zero
    /// are part of the layout until [`FloatHistogram::compact`] removes them.
    pub positive: Vec<(i32, f64)>,
    /// Negative buckets, likewise (index `i` covers `[-bound(i), -bound(i-1))`).
    pub negative: Vec<(i32, f64)>,
    /// Upper bounds of the custom buckets (schema -53), without the implicit `+Inf`.
    pub custom_values: Vec<f64>,
}

/// One native-histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub t: Timestamp,
    pub h: FloatHistogram,
}

/// One series of histogram samples read back, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSeries {
    pub labels: crate::Labels,
    pub samples: Vec<HistogramSample>,
}

/// A bucket with its boundaries, as iteration yields it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramBucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

impl HistogramBucket {
    /// Prometheus's JSON "boundary rule": 0 open left, 1 open right, 2 open both, 3 closed both.
    pub fn boundary_rule(&self) -> u8 {
        match (self.lower_inclusive, self.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        }
    }
}

/// A span of consecutive buckets: `offset` from the end of the previous span (or from index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// Why two histograms cannot be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    #[error("cannot mix exponential and custom buckets histograms")]
    IncompatibleSchema,
}

/// Side results of adding or subtracting histograms, which PromQL turns into annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CombineNotes {
    /// One side said "counter reset", the other "not a counter reset".
    pub counter_reset_collision: bool,
    /// Custom bucket bounds differed and were reduced to the bounds both share.
    pub nhcb_bounds_reconciled: bool,
}

/// The upper bound of bucket `idx` in an exponential schema.
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64) << -schema;
        if exp == 1024 {
            return f64::MAX;
        }
        return 2f64.powi(exp.clamp(-2000, 2000) as i32);
    }
    let frac_idx = idx & ((1 << schema) - 1);
    let frac = 2f64.powf(frac_idx as f64 / (1 << schema) as f64) / 2.0;
    let exp = (idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    frac * 2f64.powi(exp)
}

/// The bucket index in `target` schema holding bucket `idx` of `origin` schema.
fn target_idx(idx: i32, origin: i32, target: i32) -> i32 {
    ((idx - 1) >> (origin - target)) + 1
}

/// Merges sorted bucket lists, adding (or subtracting) `b`'s counts into `a`.
fn merge_buckets(a: &[(i32, f64)], b: impl Iterator<Item = (i32, f64)>, negate: bool) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len());
    let mut ia = a.iter().copied().peekable();
    for (idx, c) in b {
        let c = if negate { -c } else { c };
        while let Some(&(ai, _)) = ia.peek() {
            if ai >= idx {
                break;
            }
            out.extend(ia.next());
        }
        match ia.peek() {
            Some(&(ai, ac)) if ai == idx => {
                ia.next();
                out.push((idx, ac + c));
            }
            _ => out.push((idx, c)),
        }
    }
    out.extend(ia);
    out
}

fn reduce_buckets(buckets: &[(i32, f64)], origin: i32, target: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(idx, c) in buckets {
        let t = target_idx(idx, origin, target);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

impl FloatHistogram {
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// The upper bound of positive bucket `idx` (custom buckets: `idx == len` is `+Inf`).
    pub fn bound(&self, idx: i32) -> f64 {
        if self.uses_custom_buckets() {
            let n = self.custom_values.len() as i32;
            if idx >= n {
                f64::INFINITY
            } else if idx < 0 {
                f64::NEG_INFINITY
            } else {
                self.custom_values[idx as usize]
            }
        } else {
            exponential_bound(idx, self.schema)
        }
    }

    fn positive_bucket(&self, idx: i32, count: f64) -> HistogramBucket {
        let (lower, upper) = (self.bound(idx - 1), self.bound(idx));
        let custom = self.uses_custom_buckets();
        HistogramBucket {
            lower,
            upper,
            // Custom buckets are (lower, upper] except the first, which includes -Inf.
            lower_inclusive: custom && lower == f64::NEG_INFINITY,
            upper_inclusive: true,
            count,
        }
    }

    fn negative_bucket(&self, idx: i32, count: f64) -> HistogramBucket {
        HistogramBucket {
            lower: -self.bound(idx),
            upper: -self.bound(idx - 1),
            lower_inclusive: true,
            upper_inclusive: false,
            count,
        }
    }

    fn zero_bucket(&self) -> HistogramBucket {
        HistogramBucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    /// Every bucket from the lowest to the highest boundary: negative buckets, the zero
    /// bucket (when populated), positive buckets; boundaries inside the zero bucket are
    /// clipped to the zero threshold.
    pub fn buckets(&self) -> Vec<HistogramBucket> {
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        let zt = self.zero_threshold;
        for &(idx, c) in self.negative.iter().rev() {
            let mut b = self.negative_bucket(idx, c);
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            }
            out.push(b);
        }
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        for &(idx, c) in &self.positive {
            let mut b = self.positive_bucket(idx, c);
            if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            out.push(b);
        }
        out
    }

    /// Spans of a bucket list in Prometheus's form.
    pub fn spans(buckets: &[(i32, f64)]) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        let mut next = 0;
        for (i, &(idx, _)) in buckets.iter().enumerate() {
            match spans.last_mut() {
                Some(s) if i > 0 && idx == next => s.length += 1,
                _ => spans.push(Span { offset: idx - next, length: 1 }),
            }
            next = idx + 1;
        }
        spans
    }

    /// Scales every count and the sum; a negative factor makes the result a gauge.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive.iter_mut().for_each(|b| b.1 *= factor);
        self.negative.iter_mut().for_each(|b| b.1 *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Divides every count and the sum; division by zero removes all buckets.
    pub fn div(&mut self, scalar: f64) {
        self.zero_count /= scalar;
        self.count /= scalar;
        self.sum /= scalar;
        if scalar == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return;
        }
        self.positive.iter_mut().for_each(|b| b.1 /= scalar);
        self.negative.iter_mut().for_each(|b| b.1 /= scalar);
        if scalar < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Removes buckets with a count of zero.
    pub fn compact(&mut self) {
        self.positive.retain(|b| b.1 != 0.0);
        self.negative.retain(|b| b.1 != 0.0);
    }

    /// Lowers the resolution to `target` (no-op unless `target < schema`; exponential only).
    pub fn reduce_resolution(&mut self, target: i32) {
        if self.uses_custom_buckets() || target >= self.schema {
            return;
        }
        self.positive = reduce_buckets(&self.positive, self.schema, target);
        self.negative = reduce_buckets(&self.negative, self.schema, target);
        self.schema = target;
    }

    /// `self += other`.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<CombineNotes, HistogramError> {
        self.combine(other, false)
    }

    /// `self -= other`.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<CombineNotes, HistogramError> {
        self.combine(other, true)
    }

    fn combine(&mut self, other: &FloatHistogram, negate: bool) -> Result<CombineNotes, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        let sign = if negate { -1.0 } else { 1.0 };
        let mut notes =
            CombineNotes { counter_reset_collision: self.adjust_counter_reset(other), ..Default::default() };
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zero;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            if self.custom_values == other.custom_values {
                self.positive = merge_buckets(&self.positive, other.positive.iter().copied(), negate);
            } else {
                notes.nhcb_bounds_reconciled = true;
                let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
                let mine = map_custom(&self.positive, &self.custom_values, &bounds);
                let theirs = map_custom(&other.positive, &other.custom_values, &bounds);
                self.positive = merge_buckets(&mine, theirs.into_iter(), negate);
                self.custom_values = bounds;
            }
            return Ok(notes);
        }
        let mut other_pos = std::borrow::Cow::Borrowed(&other.positive);
        let mut other_neg = std::borrow::Cow::Borrowed(&other.negative);
        if other.schema < self.schema {
            self.reduce_resolution(other.schema);
        } else if other.schema > self.schema {
            other_pos = std::borrow::Cow::Owned(reduce_buckets(&other.positive, other.schema, self.schema));
            other_neg = std::borrow::Cow::Owned(reduce_buckets(&other.negative, other.schema, self.schema));
        }
        // Buckets of the other histogram inside this one's zero bucket were counted there.
        let (schema, zt) = (self.schema, self.zero_threshold);
        let outside = |b: &&(i32, f64)| exponential_bound(b.0, schema) > zt;
        self.positive = merge_buckets(&self.positive, other_pos.iter().filter(outside).copied(), negate);
        self.negative = merge_buckets(&self.negative, other_neg.iter().filter(outside).copied(), negate);
        Ok(notes)
    }

    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (a, b) = (self.counter_reset_hint, other.counter_reset_hint);
        // In Prometheus's order: a gauge on either side wins, then "unknown".
        if a == b || a == Gauge {
            return false;
        }
        if b == Gauge {
            self.counter_reset_hint = Gauge;
            return false;
        }
        if a == Unknown {
            return false;
        }
        self.counter_reset_hint = Unknown;
        b != Unknown
    }

    /// Makes both zero buckets equally wide (the wider one, widened further if it would
    /// cut a populated bucket); returns the other histogram's zero count at that width.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zero = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        while other_threshold != self.zero_threshold {
            if self.zero_threshold > other_threshold {
                (other_zero, other_threshold) = other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) = self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_zero
    }

    /// The zero count with a zero bucket at least `larger` wide, and the threshold actually
    /// needed (raised to a bucket boundary when `larger` falls inside a populated bucket).
    fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        'outer: loop {
            let mut zero = self.zero_count;
            for &(idx, c) in &self.positive {
                let b = self.positive_bucket(idx, c);
                if b.lower >= larger {
                    break;
                }
                zero += c;
                if b.upper > larger {
                    if c != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for &(idx, c) in &self.negative {
                let b = self.negative_bucket(idx, c);
                if b.upper <= -larger {
                    break;
                }
                zero += c;
                if b.lower < -larger {
                    if c != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zero, larger);
        }
    }

    fn trim_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let schema = self.schema;
        let low = |idx: i32| exponential_bound(idx - 1, schema);
        for b in self.positive.iter_mut() {
            if low(b.0) >= zt {
                break;
            }
            b.1 = 0.0;
        }
        for b in self.negative.iter_mut() {
            if -low(b.0) <= -zt {
                break;
            }
            b.1 = 0.0;
        }
        self.compact();
    }

    /// This histogram in the bucket layout of `layout` (a sum it was added into): the same
    /// or a coarser schema, an equal or wider zero bucket, or a subset of custom bounds.
    pub fn aligned_to(&self, layout: &FloatHistogram) -> FloatHistogram {
        let mut h = self.clone();
        if h.uses_custom_buckets() {
            if h.custom_values != layout.custom_values {
                h.positive = map_custom(&h.positive, &h.custom_values, &layout.custom_values);
                h.custom_values = layout.custom_values.clone();
            }
            return h;
        }
        h.reduce_resolution(layout.schema);
        if h.zero_threshold < layout.zero_threshold {
            (h.zero_count, h.zero_threshold) = h.zero_count_for_larger_threshold(layout.zero_threshold);
            h.trim_buckets_in_zero_bucket();
        }
        h
    }

    /// Prometheus's `TrimBuckets` (the `</` and `>/` operators): keeps the observations
    /// below (`upper`) or above `rhs`, interpolating inside the bucket that `rhs` cuts, and
    /// re-estimates count and sum from the kept buckets' midpoints.
    pub fn trim_buckets(&mut self, rhs: f64, upper: bool) {
        let custom = self.uses_custom_buckets();
        let (mut count, mut sum, mut trimmed) = (0.0, 0.0, false);
        let (mut has_positive, mut has_negative) = (false, false);
        for positive in [true, false] {
            let n = if positive { self.positive.len() } else { self.negative.len() };
            for i in 0..n {
                let (idx, c) = if positive { self.positive[i] } else { self.negative[i] };
                if c == 0.0 {
                    continue;
                }
                if positive {
                    has_positive = true;
                } else {
                    has_negative = true;
                }
                let b = if positive { self.positive_bucket(idx, c) } else { self.negative_bucket(idx, c) };
                let whole = if upper { b.upper <= rhs } else { b.lower >= rhs };
                let partial = if upper { b.lower < rhs } else { b.upper > rhs };
                let keep = if whole {
                    count += c;
                    sum += trim_midpoint(b.lower, b.upper, positive, custom) * c;
                    continue;
                } else if partial {
                    let (keep, mid) = bucket_trim(&b, rhs, upper, positive, custom);
                    count += keep;
                    sum += mid * keep;
                    keep
                } else {
                    0.0
                };
                if keep != c {
                    trimmed = true;
                    if positive {
                        self.positive[i].1 = keep;
                    } else {
                        self.negative[i].1 = keep;
                    }
                }
            }
        }
        if self.zero_count > 0.0 {
            let (keep, mid) = zero_bucket_trim(&self.zero_bucket(), rhs, has_negative, has_positive, upper);
            if keep != self.zero_count {
                self.zero_count = keep;
                trimmed = true;
            }
            sum += mid * keep;
            count += keep;
        }
        if trimmed {
            self.count = count;
            self.sum = sum;
            self.compact();
        }
    }

    /// Whether going from `previous` to `self` is a counter reset (Prometheus's
    /// `DetectReset`: the hint decides when it is definite, else counts and layout do).
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if self.custom_values != previous.custom_values {
                let bounds = intersect_bounds(&self.custom_values, &previous.custom_values);
                let cur = map_custom(&self.positive, &self.custom_values, &bounds);
                let prev = map_custom(&previous.positive, &previous.custom_values, &bounds);
                return buckets_decrease(&cur, &prev);
            }
            return buckets_decrease(&self.positive, &previous.positive);
        }
        if previous.uses_custom_buckets() || self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, threshold) = previous.zero_count_for_larger_threshold(self.zero_threshold);
        if threshold != self.zero_threshold || self.zero_count < prev_zero {
            return true;
        }
        // Compare at the current (lower or equal) schema, outside the zero bucket.
        let strip = |buckets: &[(i32, f64)], schema: i32| -> Vec<(i32, f64)> {
            reduce_buckets(buckets, schema, self.schema)
                .into_iter()
                .filter(|b| exponential_bound(b.0, self.schema) > self.zero_threshold)
                .collect()
        };
        buckets_decrease(&strip(&self.positive, self.schema), &strip(&previous.positive, previous.schema))
            || buckets_decrease(&strip(&self.negative, self.schema), &strip(&previous.negative, previous.schema))
    }
}

/// The share of a bucket at or below `v` (strictly inside it), on a linear or a
/// logarithmic scale (Prometheus's `Bucket.FractionBelow`).
pub fn fraction_below(b: &HistogramBucket, v: f64, linear: bool) -> f64 {
    if linear {
        return (v - b.lower) / (b.upper - b.lower);
    }
    let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
    if v > 0.0 {
        (lv - ll) / (lu - ll)
    } else {
        1.0 - (lv - lu) / (ll - lu)
    }
}

/// Where the kept observations of a bucket are assumed to sit.
fn trim_midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let geo = (lower * upper).abs().sqrt();
    if positive {
        geo
    } else {
        -geo
    }
}

/// The kept count and its midpoint for a bucket that `rhs` cuts.
fn bucket_trim(b: &HistogramBucket, rhs: f64, upper: bool, positive: bool, custom: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return infinity_bucket_trim(b, rhs, upper);
    }
    let under = if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * fraction_below(b, rhs, custom)
    };
    if upper {
        (under, trim_midpoint(b.lower, rhs, positive, custom))
    } else {
        (b.count - under, trim_midpoint(rhs, b.upper, positive, custom))
    }
}

fn infinity_bucket_trim(b: &HistogramBucket, rhs: f64, upper: bool) -> (f64, f64) {
    let finite_or_zero = |x: f64| if x.is_infinite() { 0.0 } else { x };
    if b.lower == f64::NEG_INFINITY {
        if upper {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper != f64::INFINITY {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, finite_or_zero(b.upper));
        }
        if rhs <= b.lower {
            return (b.count, 0.0);
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper != f64::INFINITY {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, finite_or_zero(b.upper));
    }
    // The upper bound is +Inf.
    if upper {
        return (0.0, finite_or_zero(b.lower));
    }
    if rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, finite_or_zero(b.lower))
}

fn zero_bucket_trim(z: &HistogramBucket, rhs: f64, has_negative: bool, has_positive: bool, upper: bool) -> (f64, f64) {
    let (mut lower, mut up) = (z.lower, z.upper);
    if has_negative && !has_positive {
        up = 0.0;
    }
    if has_positive && !has_negative {
        lower = 0.0;
    }
    let (fraction, midpoint) = if upper {
        if rhs <= lower {
            return (0.0, 0.0);
        }
        if rhs >= up {
            return (z.count, (lower + up) / 2.0);
        }
        ((rhs - lower) / (up - lower), (lower + rhs) / 2.0)
    } else {
        if rhs <= lower {
            return (z.count, (lower + up) / 2.0);
        }
        if rhs >= up {
            return (0.0, 0.0);
        }
        ((up - rhs) / (up - lower), (rhs + up) / 2.0)
    };
    (z.count * fraction, midpoint)
}

/// Whether some bucket of `prev` has a higher count than the same bucket of `cur`
/// (a missing bucket counts as zero).
fn buckets_decrease(cur: &[(i32, f64)], prev: &[(i32, f64)]) -> bool {
    prev.iter().any(|&(idx, pc)| {
        let cc = cur.binary_search_by_key(&idx, |b| b.0).map(|i| cur[i].1).unwrap_or(0.0);
        cc < pc
    })
}

fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().copied().filter(|x| b.contains(x)).collect()
}

/// Custom buckets re-bucketed onto a subset of their bounds.
fn map_custom(buckets: &[(i32, f64)], bounds: &[f64], target: &[f64]) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::new();
    for &(idx, c) in buckets {
        let upper = bounds.get(idx as usize).copied().unwrap_or(f64::INFINITY);
        let t = target.partition_point(|b| *b < upper) as i32;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, positive: &[(i32, f64)]) -> FloatHistogram {
        let count = positive.iter().map(|b| b.1).sum();
        FloatHistogram { schema, count, positive: positive.to_vec(), ..Default::default() }
    }

    #[test]
    fn bounds_follow_the_schema() {
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        assert_eq!(exponential_bound(1, -1), 4.0);
        assert!((exponential_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn adding_reduces_to_the_coarser_schema() {
        let mut a = h(1, &[(1, 1.0), (2, 2.0)]);
        let b = h(0, &[(1, 4.0)]);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive, vec![(1, 7.0)]);
        assert_eq!(a.count, 7.0);
    }

    #[test]
    fn aligns_to_a_coarser_layout() {
        let a = h(1, &[(1, 1.0), (2, 2.0)]);
        let mut sum = a.clone();
        sum.add(&h(0, &[(1, 4.0)])).unwrap();
        assert_eq!(a.aligned_to(&sum).positive, vec![(1, 3.0)]);
    }

    #[test]
    fn trimming_keeps_the_observations_on_one_side() {
        let mut a = h(0, &[(1, 2.0), (2, 4.0)]);
        a.trim_buckets(2.0, true);
        assert_eq!((a.count, a.positive.clone()), (2.0, vec![(1, 2.0)]));
        let mut b = h(0, &[(1, 2.0), (2, 4.0)]);
        b.trim_buckets(f64::INFINITY, true);
        assert_eq!(b.count, 6.0);
    }

    #[test]
    fn custom_and_exponential_do_not_mix() {
        let mut a = h(0, &[(1, 1.0)]);
        let b = FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, custom_values: vec![1.0], ..Default::default() };
        assert_eq!(a.add(&b), Err(HistogramError::IncompatibleSchema));
    }

    #[test]
    fn detects_resets_and_spans() {
        let prev = h(0, &[(0, 2.0), (1, 3.0)]);
        let cur = h(0, &[(0, 1.0), (1, 5.0)]);
        assert!(cur.detect_reset(&prev));
        assert!(!prev.detect_reset(&h(0, &[(0, 1.0)])));
        assert_eq!(
            FloatHistogram::spans(&[(-1, 1.0), (0, 1.0), (3, 1.0)]),
            vec![Span { offset: -1, length: 2 }, Span { offset: 2, length: 1 }]
        );
    }
}
