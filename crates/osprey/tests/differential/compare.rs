//! Normalises `/api/v1/query` and `/api/v1/query_range` answers and compares two of them:
//! same status and errorType (not the message), same resultType, same series by label set,
//! same timestamps, values within `REL_TOLERANCE` (NaN equals NaN, infinities by sign).

use std::collections::BTreeMap;

use serde_json::Value;

/// Relative tolerance for values; `ABS_TOLERANCE` covers results that cancel to ~0, where
/// summation order (Kahan in 3.x, naive or incremental mean in 2.x) changes the last bits.
pub const REL_TOLERANCE: f64 = 1e-9;
pub const ABS_TOLERANCE: f64 = 1e-12;

#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Series {
    pub labels: String,
    pub points: Vec<(i64, Point)>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Error { error_type: String },
    Success { result_type: String, series: Vec<Series> },
}

pub enum Verdict {
    Match,
    /// Same values at every timestamp but other label sets: a topk/bottomk tie broken
    /// differently, which PromQL leaves unspecified.
    Tie,
    /// Differs only as a documented 2.x → 3.x change allows (see `exclusions.rs`).
    Excused,
    Mismatch(String),
}

fn labels_key(metric: &Value) -> String {
    let map: BTreeMap<&str, &str> = metric
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn parse_point(p: &Value, text: bool) -> Option<(i64, Point)> {
    let t = (p.get(0)?.as_f64()? * 1000.0).round() as i64;
    let v = p.get(1)?.as_str()?;
    let point = if text { Point::Text(v.to_string()) } else { Point::Float(parse_float(v)?) };
    Some((t, point))
}

/// Normalises one API answer; anything that is not the Prometheus JSON shape becomes an error
/// outcome naming what was wrong, so it shows up as a mismatch.
pub fn parse(status: u16, body: &Value) -> Outcome {
    let malformed = |what: &str| Outcome::Error { error_type: format!("malformed answer (HTTP {status}): {what}") };
    match body["status"].as_str() {
        Some("error") => Outcome::Error { error_type: body["errorType"].as_str().unwrap_or("<none>").to_string() },
        Some("success") => {
            let data = &body["data"];
            let Some(result_type) = data["resultType"].as_str() else {
                return malformed("no data.resultType");
            };
            let result = &data["result"];
            let mut series = Vec::new();
            match result_type {
                "scalar" | "string" => match parse_point(result, result_type == "string") {
                    Some(p) => series.push(Series { labels: String::new(), points: vec![p] }),
                    None => return malformed("bad scalar/string result"),
                },
                "vector" | "matrix" => {
                    let Some(items) = result.as_array() else {
                        return malformed("result is not an array");
                    };
                    for item in items {
                        let points: Option<Vec<(i64, Point)>> = if result_type == "vector" {
                            parse_point(&item["value"], false).map(|p| vec![p])
                        } else {
                            item["values"].as_array().and_then(|vs| vs.iter().map(|p| parse_point(p, false)).collect())
                        };
                        let Some(points) = points else {
                            return malformed("bad sample in result");
                        };
                        series.push(Series { labels: labels_key(&item["metric"]), points });
                    }
                }
                other => return malformed(&format!("unknown resultType {other}")),
            }
            Outcome::Success { result_type: result_type.to_string(), series }
        }
        _ => malformed("no status field"),
    }
}

/// What the query allows beyond exact agreement.
#[derive(Clone, Copy, Default)]
pub struct Leniency {
    /// The series order is part of the answer (a top-level sort).
    pub ordered: bool,
    /// The query ranks (topk/bottomk): equal values may be picked from other series.
    pub ties: bool,
    /// The query aggregates with stddev/stdvar: 0 from Prometheus may be NaN from Osprey
    /// (a group whose only value is NaN or ±Inf; changed in 3.0, #14941).
    pub lone_nan_variance: bool,
}

pub fn floats_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let diff = (a - b).abs();
    diff <= ABS_TOLERANCE || diff <= REL_TOLERANCE * a.abs().max(b.abs())
}

fn point_eq((ta, pa): &(i64, Point), (tb, pb): &(i64, Point), nan_for_zero: bool) -> bool {
    ta == tb
        && match (pa, pb) {
            (Point::Float(x), Point::Float(y)) => floats_equal(*x, *y) || (nan_for_zero && *x == 0.0 && y.is_nan()),
            (x, y) => x == y,
        }
}

fn points_equal(a: &[(i64, Point)], b: &[(i64, Point)], nan_for_zero: bool) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| point_eq(x, y, nan_for_zero))
}

/// All (timestamp, value) pairs, sorted: equal for two answers that differ only in which of
/// several equal-valued series they hold.
fn value_profile(series: &[Series]) -> Vec<(i64, Point)> {
    let mut all: Vec<(i64, Point)> = series.iter().flat_map(|s| s.points.iter().cloned()).collect();
    all.sort_by(|(ta, pa), (tb, pb)| {
        let key = |p: &Point| match p {
            Point::Float(f) => *f,
            Point::Text(_) => 0.0,
        };
        ta.cmp(tb).then(key(pa).total_cmp(&key(pb)))
    });
    all
}

/// Compares Osprey's answer (`got`) with Prometheus's (`want`). A difference that only the
/// lone-NaN variance rule explains is a `Verdict::Excused`.
pub fn compare(want: &Outcome, got: &Outcome, lenient: Leniency) -> Verdict {
    match compare_exact(want, got, lenient, false) {
        Verdict::Mismatch(why) if lenient.lone_nan_variance => match compare_exact(want, got, lenient, true) {
            Verdict::Match => Verdict::Excused,
            _ => Verdict::Mismatch(why),
        },
        verdict => verdict,
    }
}

fn compare_exact(want: &Outcome, got: &Outcome, lenient: Leniency, nan_for_zero: bool) -> Verdict {
    match (want, got) {
        (Outcome::Error { error_type: a }, Outcome::Error { error_type: b }) => {
            if a == b {
                Verdict::Match
            } else {
                Verdict::Mismatch(format!("errorType {a} vs {b}"))
            }
        }
        (Outcome::Error { error_type }, Outcome::Success { .. }) => {
            Verdict::Mismatch(format!("Prometheus fails ({error_type}), Osprey succeeds"))
        }
        (Outcome::Success { .. }, Outcome::Error { error_type }) => {
            Verdict::Mismatch(format!("Prometheus succeeds, Osprey fails ({error_type})"))
        }
        (Outcome::Success { result_type: ta, series: sa }, Outcome::Success { result_type: tb, series: sb }) => {
            if ta != tb {
                return Verdict::Mismatch(format!("resultType {ta} vs {tb}"));
            }
            if lenient.ordered {
                let values = |s: &[Series]| -> Vec<Vec<(i64, Point)>> { s.iter().map(|x| x.points.clone()).collect() };
                let (va, vb) = (values(sa), values(sb));
                if va.len() != vb.len() || va.iter().zip(&vb).any(|(a, b)| !points_equal(a, b, nan_for_zero)) {
                    return Verdict::Mismatch("sorted order of values differs".into());
                }
            }
            let by_labels = |s: &[Series]| -> BTreeMap<String, Vec<Vec<(i64, Point)>>> {
                let mut m: BTreeMap<String, Vec<Vec<(i64, Point)>>> = BTreeMap::new();
                for x in s {
                    m.entry(x.labels.clone()).or_default().push(x.points.clone());
                }
                m
            };
            let (ma, mb) = (by_labels(sa), by_labels(sb));
            let ties = lenient.ties && points_equal(&value_profile(sa), &value_profile(sb), nan_for_zero);
            let missing: Vec<&String> = ma.keys().filter(|k| !mb.contains_key(*k)).collect();
            let extra: Vec<&String> = mb.keys().filter(|k| !ma.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                if ties {
                    return Verdict::Tie;
                }
                let show = |v: &[&String]| v.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
                return Verdict::Mismatch(format!(
                    "series: {} missing in Osprey [{}], {} extra in Osprey [{}]",
                    missing.len(),
                    show(&missing),
                    extra.len(),
                    show(&extra)
                ));
            }
            for (labels, want_points) in &ma {
                let got_points = &mb[labels];
                if want_points.len() != got_points.len() {
                    return Verdict::Mismatch(format!("{labels}: duplicated label set"));
                }
                for (a, b) in want_points.iter().zip(got_points) {
                    if !points_equal(a, b, nan_for_zero) {
                        if ties {
                            return Verdict::Tie;
                        }
                        return Verdict::Mismatch(format!(
                            "{labels}: values/timestamps differ: {}",
                            first_difference(a, b)
                        ));
                    }
                }
            }
            Verdict::Match
        }
    }
}

fn first_difference(a: &[(i64, Point)], b: &[(i64, Point)]) -> String {
    let show = |p: Option<&(i64, Point)>| match p {
        Some((t, Point::Float(v))) => format!("({t}ms, {v})"),
        Some((t, Point::Text(s))) => format!("({t}ms, {s:?})"),
        None => "none".into(),
    };
    for i in 0..a.len().max(b.len()) {
        let same = matches!((a.get(i), b.get(i)), (Some(x), Some(y)) if point_eq(x, y, false));
        if !same {
            return format!(
                "point {i}: Prometheus {} vs Osprey {} ({} vs {} points)",
                show(a.get(i)),
                show(b.get(i)),
                a.len(),
                b.len()
            );
        }
    }
    "none".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vector(items: &[(&str, f64, &str)]) -> Outcome {
        let result: Vec<Value> =
            items.iter().map(|(job, t, v)| json!({"metric": {"job": job}, "value": [t, v]})).collect();
        parse(200, &json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
    }

    #[test]
    fn comparison_rules() {
        let exact = Leniency::default();
        let a = vector(&[("a", 10.5, "1"), ("b", 10.5, "NaN")]);
        let b = vector(&[("b", 10.5, "NaN"), ("a", 10.5, "1.0000000000001")]);
        assert!(matches!(compare(&a, &b, exact), Verdict::Match));
        let ordered = Leniency { ordered: true, ..exact };
        assert!(matches!(compare(&a, &b, ordered), Verdict::Mismatch(_)));
        let c = vector(&[("a", 10.5, "1"), ("b", 10.5, "+Inf")]);
        assert!(matches!(compare(&a, &c, exact), Verdict::Mismatch(_)));
        let tie_a = vector(&[("a", 1.0, "5")]);
        let tie_b = vector(&[("b", 1.0, "5")]);
        let ties = Leniency { ties: true, ..exact };
        assert!(matches!(compare(&tie_a, &tie_b, ties), Verdict::Tie));
        assert!(matches!(compare(&tie_a, &tie_b, exact), Verdict::Mismatch(_)));
        let (zero, nan) = (vector(&[("a", 1.0, "0")]), vector(&[("a", 1.0, "NaN")]));
        let variance = Leniency { lone_nan_variance: true, ..exact };
        assert!(matches!(compare(&zero, &nan, variance), Verdict::Excused));
        assert!(matches!(compare(&zero, &nan, exact), Verdict::Mismatch(_)));
        let e1 = parse(400, &json!({"status": "error", "errorType": "bad_data", "error": "x"}));
        let e2 = parse(400, &json!({"status": "error", "errorType": "bad_data", "error": "y"}));
        assert!(matches!(compare(&e1, &e2, exact), Verdict::Match));
        assert!(matches!(compare(&e1, &a, exact), Verdict::Mismatch(_)));
    }
}
