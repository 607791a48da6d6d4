//! Histogram functions: `histogram_quantile(s)` and `histogram_fraction` over classic
//! histograms (`_bucket` series with an `le` label) and native histograms, and the
//! native-only `histogram_count/sum/avg/stddev/stdvar`.

// Label-set keys hash with Fx: SipHash's DoS resistance buys nothing for data already stored.
use rustc_hash::FxHashMap as HashMap;

use osprey_model::{fraction_below, FloatHistogram, HistogramBucket, Labels, METRIC_NAME};
use promql_parser::parser::Expr;

use crate::error::PromqlError;
use crate::eval::{by_step, by_step_h, Collector, Evaluator, StepSeries, Val};
use crate::functions::format_float;
use crate::functions::kahan_inc;
use crate::scan::arg_pos;

/// Bucket counts closer than this (relative) are treated as equal, hiding float noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Which classic-histogram function is evaluated.
enum HistogramFn {
    Quantile(Vec<f64>),
    /// `histogram_quantiles`: the output label and one quantile per argument.
    Quantiles(String, Vec<Vec<f64>>),
    Fraction(Vec<f64>, Vec<f64>),
}

/// Monotonicity repairs seen for one metric name, merged over steps as Prometheus merges
/// the annotation.
struct MonotonicityFix {
    min_ts: i64,
    max_ts: i64,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
    count: usize,
}

/// `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over classic
/// histograms: series grouped by their labels without `le`.
pub(crate) fn eval_histogram_function(ev: &mut Evaluator, name: &str, args: &[&Expr]) -> Result<Val, PromqlError> {
    let (func, vec_arg) = match name {
        "histogram_quantile" => {
            let q = ev.eval_scalar(args[0])?;
            warn_quantiles(ev, &q, arg_pos(ev.query, name, 0));
            (HistogramFn::Quantile(q), 1)
        }
        "histogram_quantiles" => {
            let label = ev.eval_string(args[1])?;
            let mut qs = Vec::new();
            for (i, a) in args.iter().enumerate().skip(2) {
                let q = ev.eval_scalar(a)?;
                warn_quantiles(ev, &q, arg_pos(ev.query, name, i));
                qs.push(q);
            }
            (HistogramFn::Quantiles(label, qs), 0)
        }
        _ => (HistogramFn::Fraction(ev.eval_scalar(args[0])?, ev.eval_scalar(args[1])?), 2),
    };
    let input = ev.eval_vector(args[vec_arg])?;
    let pos = arg_pos(ev.query, name, vec_arg);
    // Per input series: its group (labels without `le`) and its upper bound.
    let mut keys = Vec::with_capacity(input.len());
    for s in &input {
        if s.points.is_empty() {
            keys.push((s.labels.without(&["le"]), None));
            continue;
        }
        let le = s.labels.get("le");
        let upper = le.and_then(parse_le);
        if upper.is_none() {
            let metric = s.labels.get(METRIC_NAME).unwrap_or("");
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {metric:?} {pos}",
                le.unwrap_or("")
            ));
        }
        keys.push((s.labels.without(&["le"]), upper));
    }
    let range = ev.range;
    let mut out = Collector::new();
    let mut fixes: Vec<(String, MonotonicityFix)> = Vec::new();
    let native_steps = by_step_h(&input, &range);
    for (i, step) in by_step(&input, &range).iter().enumerate() {
        let t = range.ts(i);
        let mut order: Vec<&Labels> = Vec::new();
        let mut groups: HashMap<&Labels, Vec<Bucket>> = HashMap::default();
        for &(j, v) in step {
            let (key, upper) = &keys[j];
            let Some(upper) = upper else { continue };
            groups
                .entry(key)
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(Bucket { upper: *upper, count: v });
        }
        // A native histogram with the labels of a classic one at the same step: neither
        // is evaluated.
        let mut natives = Vec::new();
        for &(j, h) in &native_steps[i] {
            let labels = &input[j].labels;
            if groups.remove(labels).is_some() {
                order.retain(|k| *k != labels);
                let metric = labels.get(METRIC_NAME).unwrap_or("");
                ev.warn(format!(
                    "vector contains a mix of classic and native histograms for metric name {metric:?} {pos}"
                ));
                continue;
            }
            natives.push((&input[j], h));
        }
        eval_native(ev, &func, &natives, i, t, &pos, &mut out)?;
        let mut emit = |key: &Labels, buckets: &[Bucket], q: f64, out: &mut Collector, label: Option<&str>| {
            let mut buckets = buckets.to_vec();
            let (v, fix) = bucket_quantile(q, &mut buckets);
            if let Some((min_bucket, max_bucket, max_diff)) = fix {
                let metric = key.get(METRIC_NAME).unwrap_or("").to_string();
                match fixes.iter_mut().find(|(m, _)| *m == metric) {
                    Some((_, f)) => {
                        f.max_ts = t;
                        f.min_bucket = f.min_bucket.min(min_bucket);
                        f.max_bucket = f.max_bucket.max(max_bucket);
                        f.max_diff = f.max_diff.max(max_diff);
                        f.count += 1;
                    }
                    None => fixes.push((
                        metric,
                        MonotonicityFix { min_ts: t, max_ts: t, min_bucket, max_bucket, max_diff, count: 1 },
                    )),
                }
            }
            let labels = match label {
                Some(l) => {
                    let mut b = key.to_builder();
                    b.set(l, format_openmetrics_float(q));
                    b.build()
                }
                None => key.clone(),
            };
            out.push(labels, true, t, v)
        };
        match &func {
            HistogramFn::Quantile(q) => {
                for key in &order {
                    emit(key, &groups[key], q[i], &mut out, None)?;
                }
            }
            HistogramFn::Quantiles(label, qs) => {
                for q in qs {
                    for key in &order {
                        emit(key, &groups[key], q[i], &mut out, Some(label))?;
                    }
                }
            }
            HistogramFn::Fraction(lower, upper) => {
                for key in &order {
                    let mut buckets = groups[key].clone();
                    out.push((*key).clone(), true, t, bucket_fraction(lower[i], upper[i], &mut buckets))?;
                }
            }
        }
    }
    for (metric, f) in fixes {
        let for_metric = if metric.is_empty() { String::new() } else { format!(" for metric name {metric:?}") };
        ev.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see \
             https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){for_metric}, \
             from buckets {} to {}, with a max diff of {}, over {} samples from {} to {} {pos}",
            format_float(f.min_bucket),
            format_float(f.max_bucket),
            format_float(f.max_diff),
            f.count,
            rfc3339(f.min_ts),
            rfc3339(f.max_ts),
        ));
    }
    Ok(Val::Vector(out.finish()))
}

/// The native-histogram half of the functions above, for one step.
fn eval_native(
    ev: &mut Evaluator,
    func: &HistogramFn,
    natives: &[(&StepSeries, &FloatHistogram)],
    i: usize,
    t: i64,
    pos: &str,
    out: &mut Collector,
) -> Result<(), PromqlError> {
    let quantile_of = |ev: &mut Evaluator, q: f64, s: &StepSeries, h: &FloatHistogram| {
        let (v, note) = native_quantile(q, h);
        if let Some(note) = note {
            let metric = s.labels.get(METRIC_NAME).unwrap_or("");
            ev.info(format!("input to histogram_quantile has NaN observations, {note}{} {pos}", for_metric(metric)));
        }
        v
    };
    match func {
        HistogramFn::Quantile(q) => {
            for (s, h) in natives {
                let v = quantile_of(ev, q[i], s, h);
                out.push(s.labels.clone(), true, t, v)?;
            }
        }
        HistogramFn::Quantiles(label, qs) => {
            for q in qs {
                for (s, h) in natives {
                    let v = quantile_of(ev, q[i], s, h);
                    let mut b = s.labels.to_builder();
                    b.set(label.as_str(), format_openmetrics_float(q[i]));
                    out.push(b.build(), true, t, v)?;
                }
            }
        }
        HistogramFn::Fraction(lower, upper) => {
            for (s, h) in natives {
                let (v, nans) = native_fraction(lower[i], upper[i], h);
                if nans {
                    let metric = s.labels.get(METRIC_NAME).unwrap_or("");
                    ev.info(format!(
                        "input to histogram_fraction has NaN observations, which are excluded from all fractions{} {pos}",
                        for_metric(metric)
                    ));
                }
                out.push(s.labels.clone(), true, t, v)?;
            }
        }
    }
    Ok(())
}

fn for_metric(metric: &str) -> String {
    if metric.is_empty() {
        String::new()
    } else {
        format!(" for metric name {metric:?}")
    }
}

/// `histogram_count`, `histogram_sum`, `histogram_avg`, `histogram_stddev` and
/// `histogram_stdvar`: a float per native histogram; float samples are ignored.
pub(crate) fn eval_native_stat(ev: &mut Evaluator, name: &str, arg: &Expr) -> Result<Val, PromqlError> {
    let f: fn(&FloatHistogram) -> f64 = match name {
        "histogram_count" => |h| h.count,
        "histogram_sum" => |h| h.sum,
        "histogram_avg" => |h| h.sum / h.count,
        "histogram_stddev" => |h| native_variance(h).sqrt(),
        _ => native_variance,
    };
    let input = ev.eval_vector(arg)?;
    let out = input
        .into_iter()
        .filter(|s| !s.hists.is_empty())
        .map(|s| {
            let points = s.hists.iter().map(|p| osprey_model::Sample::new(p.t, f(&p.h))).collect();
            StepSeries::floats(s.labels, true, points)
        })
        .collect();
    Ok(Val::Vector(out))
}

/// The variance of the observations, each bucket standing for its (geometric, for
/// exponential buckets) mean.
fn native_variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -v
            } else {
                v
            }
        };
        let delta = val - mean;
        (var, c) = kahan_inc(b.count * delta * delta, var, c);
    }
    (var + c) / h.count
}

/// Prometheus's `HistogramQuantile` for native histograms: linear interpolation in custom
/// and zero buckets, exponential elsewhere. The note is set when NaN observations made
/// the result NaN or skewed it.
fn native_quantile(q: f64, h: &FloatHistogram) -> (f64, Option<&'static str>) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, None);
    }
    let mut buckets = h.buckets();
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward { q * h.count } else { (1.0 - q) * h.count };
    if !forward {
        buckets.reverse();
    }
    let mut count = 0.0;
    let mut bucket =
        HistogramBucket { lower: 0.0, upper: 0.0, lower_inclusive: false, upper_inclusive: false, count: 0.0 };
    let mut next = 0;
    for b in &buckets {
        next += 1;
        if b.count == 0.0 {
            continue;
        }
        bucket = *b;
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let custom = h.uses_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative.is_empty() && !h.positive.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive.is_empty() && !h.negative.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, None);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            return (f64::NAN, Some("result is NaN"));
        }
        return (bucket.upper, None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut note = None;
    if h.sum.is_nan() {
        let total = count + buckets[next..].iter().map(|b| b.count).sum::<f64>();
        if total < h.count {
            note = Some("result is skewed higher");
        }
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (bucket.lower + (bucket.upper - bucket.lower) * fraction, note);
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return ((log_lower + (log_upper - log_lower) * fraction).exp2(), note);
    }
    (-(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(), note)
}

/// Prometheus's `HistogramFraction`; the flag says NaN observations were excluded.
fn native_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> (f64, bool) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    if lower >= upper {
        return (0.0, false);
    }
    let buckets = h.buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut next = 0;
    for b in &buckets {
        next += 1;
        let mut b = *b;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative.is_empty() && !h.positive.is_empty() {
                b.lower = 0.0;
            } else if h.positive.is_empty() && !h.negative.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = h.uses_custom_buckets() || zero_bucket;
        let interpolate = |v: f64| {
            if linear && b.lower == f64::NEG_INFINITY {
                b.count
            } else {
                rank + b.count * fraction_below(&b, v, linear)
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut nans = false;
    if h.sum.is_nan() {
        count += buckets[next..].iter().map(|b| b.count).sum::<f64>();
        nans = count < h.count;
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, nans)
}

/// Prometheus's `FloatHistogram.String()`, e.g. `{count:3, sum:5, [-0.001,0.001]:1, (0.5,1]:2}`
/// (how `count_values` labels a histogram).
pub(crate) fn histogram_string(h: &FloatHistogram) -> String {
    let mut out = format!("{{count:{}, sum:{}", go_g(h.count), go_g(h.sum));
    for b in h.buckets().iter().filter(|b| b.count != 0.0) {
        let open = if b.lower_inclusive { '[' } else { '(' };
        let close = if b.upper_inclusive { ']' } else { ')' };
        out.push_str(&format!(", {open}{},{}{close}:{}", go_g(b.lower), go_g(b.upper), go_g(b.count)));
    }
    out.push('}');
    out
}

/// Go's `%g` for a float64: the shortest representation, in exponent form when the
/// exponent is below -4 or at least 6 (`1e+06`, `1.5e-05`).
fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn warn_quantiles(ev: &mut Evaluator, qs: &[f64], pos: String) {
    for q in qs {
        if q.is_nan() || *q < 0.0 || *q > 1.0 {
            ev.warn(format!("quantile value should be between 0 and 1, got {} {pos}", format_float(*q)));
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Go's `FormatOpenMetricsFloat`: like the usual formatting, with `.0` added to integers.
fn format_openmetrics_float(v: f64) -> String {
    let s = format_float(v);
    if s.contains(['.', 'e', 'I', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok().filter(|v: &f64| !v.is_nan() || t.eq_ignore_ascii_case("nan")),
    }
}

/// Prometheus's `BucketQuantile`: the quantile and, when counts had to be made monotonic,
/// the lowest and highest repaired bucket and the largest repair.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, Option<(f64, f64, f64)>) {
    if q.is_nan() {
        return (f64::NAN, None);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    sort_buckets(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, None);
    }
    coalesce(buckets);
    let fix = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, fix);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, fix);
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.count < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper, fix);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, fix);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), fix)
}

fn sort_buckets(buckets: &mut [Bucket]) {
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
}

/// Prometheus's `BucketFraction`: the share of observations between `lower` and `upper`,
/// interpolating linearly inside buckets (the first bucket starts at 0 when its upper
/// bound is positive).
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    sort_buckets(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper <= 0.0 { f64::NEG_INFINITY } else { 0.0 };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// Removes decreases between successive buckets (ignoring float noise); returns the range
/// of repaired buckets and the largest repair when one was needed.
fn ensure_monotonic(buckets: &mut [Bucket]) -> Option<(f64, f64, f64)> {
    let (mut min_bucket, mut max_bucket, mut max_diff) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            min_bucket = min_bucket.min(b.upper);
            max_bucket = max_bucket.max(b.upper);
            if prev - cur > max_diff {
                max_diff = prev - cur;
            }
            continue;
        }
        prev = cur;
    }
    forced.then_some((min_bucket, max_bucket, max_diff))
}

/// Prometheus's `almost.Equal`.
pub(crate) fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_matches_go() {
        assert_eq!(go_g(20.0), "20");
        assert_eq!(go_g(-0.001), "-0.001");
        assert_eq!(go_g(1e6), "1e+06");
        assert_eq!(go_g(1.5e-5), "1.5e-05");
        assert_eq!(go_g(123456.0), "123456");
    }

    #[test]
    fn native_quantile_interpolates_exponentially() {
        // One bucket (1, 2] holding all observations: the median is sqrt(2).
        let h = FloatHistogram { count: 4.0, sum: 6.0, positive: vec![(1, 4.0)], ..Default::default() };
        let (q, note) = native_quantile(0.5, &h);
        assert!((q - 2f64.sqrt()).abs() < 1e-12 && note.is_none());
        assert_eq!(native_fraction(0.0, 2.0, &h), (1.0, false));
    }
}
