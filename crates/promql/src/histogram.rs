//! `histogram_quantile` over classic histograms (`_bucket` series with an `le` label).

use std::collections::HashMap;

use osprey_model::{Labels, METRIC_NAME};
use promql_parser::parser::Expr;

use crate::error::PromqlError;
use crate::eval::{by_step, position_of, Collector, Evaluator, Val};
use crate::functions::format_float;

/// Bucket counts closer than this (relative) are treated as equal, hiding float noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

pub(crate) fn eval_histogram_quantile(
    ev: &mut Evaluator,
    args: &[&Expr],
) -> Result<Val, PromqlError> {
    let q = ev.eval_scalar(args[0])?;
    let input = ev.eval_vector(args[1])?;
    let pos = position_of(ev.query, "histogram_quantile");
    if let Some(bad) = q.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
        ev.warn(format!(
            "quantile value should be between 0 and 1, got {} {pos}",
            format_float(*bad)
        ));
    }
    // Per input series: its group (labels without `le` and name) and its upper bound.
    let mut keys = Vec::with_capacity(input.len());
    for s in &input {
        let le = s.labels.get("le");
        let upper = le.and_then(parse_le);
        if upper.is_none() {
            let name = s.labels.get(METRIC_NAME).unwrap_or("");
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {name:?} {pos}",
                le.unwrap_or("")
            ));
        }
        keys.push((s.labels.without(&[METRIC_NAME, "le"]), upper));
    }
    let range = ev.range;
    let mut out = Collector::new();
    for (i, step) in by_step(&input, &range).iter().enumerate() {
        let mut order: Vec<&Labels> = Vec::new();
        let mut groups: HashMap<&Labels, (Vec<Bucket>, String)> = HashMap::new();
        for &(j, v) in step {
            let (key, upper) = &keys[j];
            let Some(upper) = upper else { continue };
            let g = groups.entry(key).or_insert_with(|| {
                order.push(key);
                (
                    Vec::new(),
                    input[j].labels.get(METRIC_NAME).unwrap_or("").to_string(),
                )
            });
            g.0.push(Bucket {
                upper: *upper,
                count: v,
            });
        }
        for key in order {
            let Some((mut buckets, name)) = groups.remove(key) else {
                continue;
            };
            let (v, forced_monotonic) = bucket_quantile(q[i], &mut buckets);
            if forced_monotonic {
                ev.info(format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see \
                     https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) \
                     for metric name {name:?} {pos}"
                ));
            }
            out.push(key.clone(), false, range.ts(i), v)?;
        }
    }
    Ok(Val::Vector(out.out))
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t
            .parse()
            .ok()
            .filter(|v: &f64| !v.is_nan() || t.eq_ignore_ascii_case("nan")),
    }
}

/// Prometheus's `BucketQuantile`: the quantile and whether counts had to be made monotonic.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    coalesce(buckets);
    let forced = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.count < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
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

fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
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
            continue;
        }
        prev = cur;
    }
    forced
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
