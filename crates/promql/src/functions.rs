//! PromQL functions, with Prometheus's numerics (Kahan summation, rate extrapolation,
//! linear regression, bucket quantiles) so results agree to the last digit where possible.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, Timelike};
use osprey_model::{HistogramSample, Labels, Sample, METRIC_NAME};
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::{Call, Expr};

use crate::error::PromqlError;
use crate::eval::{
    by_step, by_step_any, Collector, EvalRange, Evaluator, MatrixArg, MetadataVariety, Reading, StepSeries, Val,
    METADATA_LABELS,
};
use crate::extended::{anchored_samples, extended_rate, Modifier};
use crate::native::{Notes, Out as NativeOut};
use crate::scan::{arg_pos, call_pos};
use crate::start;

/// Neumaier's improved Kahan summation step, as Prometheus's `kahanSumInc`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `quantile`: linear interpolation between closest ranks; NaN sorts first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, used for label values Prometheus derives
/// from numbers.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Prometheus 3's label-name rule for names computed by a query (`label_replace`,
/// `label_join`, `count_values`): any non-empty valid UTF-8 string. Rust strings are UTF-8;
/// U+FFFD stands for the invalid bytes of a `\xHH` escape (see `scan::decode_byte_escapes`).
pub(crate) fn is_valid_label_name_utf8(name: &str) -> bool {
    !name.is_empty() && !name.contains('\u{FFFD}')
}

/// Go's `math.Max`/`math.Min`: NaN wins, and the signs of zeros are respected.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

pub(crate) fn eval_call(ev: &mut Evaluator, call: &Call) -> Result<Val, PromqlError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    let n = ev.range.len();
    match name {
        "time" => Ok(Val::Scalar((0..n).map(|i| ev.range.ts(i) as f64 / 1000.0).collect())),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
        "start" | "end" | "step" | "range" => {
            let q = ev.query_range;
            let ms = match name {
                "start" => q.start,
                "end" => q.end,
                "step" => q.step,
                _ => q.end - q.start,
            };
            Ok(Val::Scalar(vec![ms as f64 / 1000.0; n]))
        }
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(args[0])?;
            let b = ev.eval_scalar(args[1])?;
            let f = if name == "min_of" { go_min } else { go_max };
            Ok(Val::Scalar(a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect()))
        }
        "vector" => {
            let s = ev.eval_scalar(args[0])?;
            let points = s.iter().enumerate().map(|(i, v)| Sample::new(ev.range.ts(i), *v)).collect();
            Ok(Val::Vector(vec![StepSeries::floats(Labels::empty(), false, points)]))
        }
        "scalar" => {
            let v = ev.eval_vector(args[0])?;
            let mut out = vec![f64::NAN; n];
            for (i, step) in by_step(&v, &ev.range).iter().enumerate() {
                if let [(_, x)] = step {
                    out[i] = *x;
                }
            }
            Ok(Val::Scalar(out))
        }
        "timestamp" => {
            let series = match strip_parens(args[0]) {
                Expr::VectorSelector(vs) => ev.eval_vector_selector(vs, Reading::SampleTime)?,
                other => {
                    let mut v = ev.eval_vector(other)?;
                    for s in &mut v {
                        let hists = std::mem::take(&mut s.hists);
                        s.points.extend(hists.iter().map(|h| Sample::new(h.t, 0.0)));
                        s.points.sort_by_key(|p| p.t);
                        for p in &mut s.points {
                            p.v = p.t as f64 / 1000.0;
                        }
                    }
                    v
                }
            };
            Ok(Val::Vector(drop_names(series)))
        }
        "start_timestamp" => {
            // Only a selector's samples have start timestamps; any other expression is still
            // evaluated (for its errors) but has none to return, as in Prometheus.
            let series = match strip_parens(args[0]) {
                Expr::VectorSelector(vs) if ev.opts.use_start_timestamps => {
                    ev.eval_vector_selector(vs, Reading::StartTime)?
                }
                other => {
                    ev.eval_vector(other)?;
                    Vec::new()
                }
            };
            Ok(Val::Vector(drop_names(series)))
        }
        "absent" => {
            let v = ev.eval_vector(args[0])?;
            let labels = absent_labels(args[0]);
            let steps = by_step_any(&v, &ev.range);
            let points = (0..n).filter(|&i| steps[i].is_empty()).map(|i| Sample::new(ev.range.ts(i), 1.0)).collect();
            Ok(non_empty(StepSeries::floats(labels, false, points)))
        }
        "absent_over_time" => {
            let arg = ev.eval_matrix_arg(args[0], false)?;
            let labels = absent_labels(strip_parens(args[0]));
            let points = (0..n)
                .map(|i| ev.range.ts(i))
                .filter(|&ts| arg.series.iter().all(|s| arg.window(s, ts).is_empty() && arg.window_h(s, ts).is_empty()))
                .map(|ts| Sample::new(ts, 1.0))
                .collect();
            Ok(non_empty(StepSeries::floats(labels, false, points)))
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => eval_sort(ev, name, &args),
        "label_replace" => eval_label_replace(ev, &args),
        "info" => crate::info::eval_info(ev, &args),
        "label_join" => eval_label_join(ev, &args),
        "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
            let saved = std::mem::replace(&mut ev.stats_decoding, false);
            let res = crate::histogram::eval_histogram_function(ev, name, &args);
            ev.stats_decoding = saved;
            res
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
            let stats_only = matches!(name, "histogram_count" | "histogram_sum" | "histogram_avg");
            let decoding = ev.stats_decoding || stats_only;
            let saved = std::mem::replace(&mut ev.stats_decoding, decoding);
            let res = crate::histogram::eval_native_stat(ev, name, args[0]);
            ev.stats_decoding = saved;
            res
        }
        "clamp" => {
            let v = ev.eval_vector(args[0])?;
            let lo = ev.eval_scalar(args[1])?;
            let hi = ev.eval_scalar(args[2])?;
            Ok(Val::Vector(map_points(ev, v, |i, x| {
                // Empty only when max < min; a NaN bound yields NaN, as in Prometheus.
                let empty = hi[i].partial_cmp(&lo[i]) == Some(Ordering::Less);
                (!empty).then(|| go_max(lo[i], go_min(hi[i], x)))
            })))
        }
        "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(args[0])?;
            let b = ev.eval_scalar(args[1])?;
            let is_min = name == "clamp_min";
            Ok(Val::Vector(map_points(ev, v, |i, x| Some(if is_min { go_max(b[i], x) } else { go_min(b[i], x) }))))
        }
        "round" => {
            let v = ev.eval_vector(args[0])?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a)?,
                None => vec![1.0; n],
            };
            Ok(Val::Vector(map_points(ev, v, |i, x| {
                let inv = 1.0 / to[i];
                Some((x * inv + 0.5).floor() / inv)
            })))
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month" | "month" | "year" => {
            let v = match args.first() {
                Some(a) => ev.eval_vector(a)?,
                None => {
                    let points = (0..n).map(|i| Sample::new(ev.range.ts(i), ev.range.ts(i) as f64 / 1000.0)).collect();
                    vec![StepSeries::floats(Labels::empty(), false, points)]
                }
            };
            Ok(Val::Vector(map_points(ev, v, |_, x| date_part(name, x))))
        }
        _ => {
            if let Some(f) = simple_math(name) {
                let v = ev.eval_vector(args[0])?;
                return Ok(Val::Vector(map_points(ev, v, |_, x| Some(f(x)))));
            }
            eval_range_function(ev, name, &args)
        }
    }
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

fn non_empty(s: StepSeries) -> Val {
    Val::Vector(if s.points.is_empty() { Vec::new() } else { vec![s] })
}

fn drop_names(mut v: Vec<StepSeries>) -> Vec<StepSeries> {
    for s in &mut v {
        s.drop_name = true;
    }
    v
}

/// Applies `f(step index, value)` to every float point; `None` drops the point.
/// Histograms are dropped (these functions are defined on floats only). Drops the name.
fn map_points(ev: &Evaluator, mut v: Vec<StepSeries>, f: impl Fn(usize, f64) -> Option<f64>) -> Vec<StepSeries> {
    let range = ev.range;
    for s in &mut v {
        s.drop_name = true;
        s.hists.clear();
        s.points = s
            .points
            .iter()
            .filter_map(|p| {
                let i = range.index(p.t);
                f(i, p.v).map(|v| Sample::new(p.t, v))
            })
            .collect();
    }
    v.retain(|s| !s.points.is_empty());
    v
}

fn simple_math(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

fn date_part(name: &str, secs: f64) -> Option<f64> {
    if secs.is_nan() || secs.is_infinite() {
        return Some(f64::NAN);
    }
    let t = DateTime::from_timestamp(secs as i64, 0)?;
    Some(match name {
        "minute" => t.minute() as f64,
        "hour" => t.hour() as f64,
        "day_of_week" => t.weekday().num_days_from_sunday() as f64,
        "day_of_month" => t.day() as f64,
        "day_of_year" => t.ordinal() as f64,
        "month" => t.month() as f64,
        "year" => t.year() as f64,
        _ => {
            let (y, m) = (t.year(), t.month());
            let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let first = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
            let first_next = chrono::NaiveDate::from_ymd_opt(next.0, next.1, 1)?;
            (first_next - first).num_days() as f64
        }
    })
}

/// Labels `absent()` gives its output: the selector's equality matchers, except names
/// matched more than once (Prometheus's historic rule).
fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut b = Labels::empty().to_builder();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, ParserMatchOp::Equal) && !has.contains(&m.name) {
            b.set(m.name.clone(), m.value.clone());
            has.insert(m.name.clone());
        } else {
            b.del(&m.name);
        }
    }
    b.build()
}

/// Regroups series after a label change, rejecting collisions at the same step.
fn recollect(ev: &Evaluator, series: Vec<StepSeries>) -> Result<Vec<StepSeries>, PromqlError> {
    let mut out = Collector::new();
    for (i, step) in by_step_any(&series, &ev.range).iter().enumerate() {
        for &(j, v) in step {
            let slot = out.slot(series[j].labels.clone(), series[j].drop_name);
            out.push_operand(slot, ev.range.ts(i), v)?;
        }
    }
    Ok(out.finish())
}

fn eval_label_replace(ev: &mut Evaluator, args: &[&Expr]) -> Result<Val, PromqlError> {
    let v = ev.eval_vector(args[0])?;
    let dst = ev.eval_string(args[1])?;
    let repl = ev.eval_string(args[2])?;
    let src = ev.eval_string(args[3])?;
    let re_text = ev.eval_string(args[4])?;
    let re = regex::Regex::new(&format!("^(?s:{re_text})$")).map_err(|e| {
        PromqlError::execution(format!("invalid regular expression in label_replace(): {re_text}: {e}"))
    })?;
    if !is_valid_label_name_utf8(&dst) {
        return Err(PromqlError::execution(format!("invalid destination label name in label_replace(): {dst}")));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let value = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&value) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            let mut b = s.labels.to_builder();
            b.set(dst.clone(), res);
            s.labels = b.build();
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        out.push(s);
    }
    Ok(Val::Vector(recollect(ev, out)?))
}

fn eval_label_join(ev: &mut Evaluator, args: &[&Expr]) -> Result<Val, PromqlError> {
    let v = ev.eval_vector(args[0])?;
    let dst = ev.eval_string(args[1])?;
    let sep = ev.eval_string(args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = ev.eval_string(a)?;
        if !is_valid_label_name_utf8(&s) {
            return Err(PromqlError::execution(format!("invalid source label name in label_join(): {s}")));
        }
        srcs.push(s);
    }
    if !is_valid_label_name_utf8(&dst) {
        return Err(PromqlError::execution(format!("invalid destination label name in label_join(): {dst}")));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let joined = joined.join(&sep);
        let mut b = s.labels.to_builder();
        b.set(dst.clone(), joined);
        s.labels = b.build();
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        out.push(s);
    }
    Ok(Val::Vector(recollect(ev, out)?))
}

fn eval_sort(ev: &mut Evaluator, name: &str, args: &[&Expr]) -> Result<Val, PromqlError> {
    let mut v = ev.eval_vector(args[0])?;
    if matches!(name, "sort" | "sort_desc") {
        // Sorting by value is defined on floats only; histograms are dropped at every step.
        for s in &mut v {
            s.hists.clear();
        }
        v.retain(|s| !s.points.is_empty());
    }
    if ev.range.start != ev.range.end {
        let pos = call_pos(ev.query, name);
        ev.warn(format!("sort is ineffective for range queries since results are always ordered by labels {pos}"));
        return Ok(Val::Vector(v));
    }
    let value = |s: &StepSeries| s.points.first().map_or(f64::NAN, |p| p.v);
    match name {
        "sort" | "sort_desc" => {
            let desc = name == "sort_desc";
            v.sort_by(|a, b| {
                let (x, y) = (value(a), value(b));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ if desc => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                    _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                }
            });
        }
        _ => {
            let mut names = Vec::new();
            for a in &args[1..] {
                names.push(ev.eval_string(a)?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut o = Ordering::Equal;
                for n in &names {
                    let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if x != y {
                        o = natural_cmp(x, y);
                        break;
                    }
                }
                if o == Ordering::Equal {
                    o = a.labels.cmp(&b.labels);
                }
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
    }
    Ok(Val::Vector(v))
}

/// Natural order: runs of digits compare as numbers, everything else byte-wise.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let la = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..la], &b[..lb]);
                let ta = trim_zeros(da);
                let tb = trim_zeros(db);
                let o = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb)).then_with(|| la.cmp(&lb));
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[la..];
                b = &b[lb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z..]
}

/// What a range function computes from one window.
struct WindowCtx<'w> {
    samples: &'w [Sample],
    /// Known to hold no sample lower than the one before it (set for `rate`/`increase`).
    no_decrease: bool,
    /// The samples' start timestamps, or empty (none, or not read for this function).
    starts: &'w [i64],
    /// Right end of the window (step time after `@` and offset).
    end: i64,
    /// The step's evaluation time.
    ts: i64,
    range_ms: i64,
    /// The selector's `anchored`/`smoothed` modifier.
    modifier: Modifier,
    /// First scalar argument at this step (e.g. quantile, predict_linear's duration).
    p0: f64,
    p1: f64,
}

/// What a range function computes: the position of its range-vector argument, the value of
/// one window, and whether the result keeps the metric name.
type RangeKernel = (usize, fn(&WindowCtx) -> Option<f64>, bool);

fn range_kernel(name: &str) -> Option<RangeKernel> {
    Some(match name {
        "rate" => (0, |w| rate_like(w, true, true), false),
        "increase" => (0, |w| rate_like(w, true, false), false),
        "delta" => (0, |w| rate_like(w, false, false), false),
        "irate" => (0, |w| instant_value(w, true), false),
        "idelta" => (0, |w| instant_value(w, false), false),
        "deriv" => (0, |w| (w.samples.len() >= 2).then(|| linear_regression(w.samples, w.samples[0].t).0), false),
        "predict_linear" => (
            0,
            |w| {
                (w.samples.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w.samples, w.ts);
                    slope * w.p0 + intercept
                })
            },
            false,
        ),
        "changes" => (
            0,
            |w| {
                let mut c = 0.0;
                for p in anchored_or_all(w)?.windows(2) {
                    if p[0].v != p[1].v && !(p[0].v.is_nan() && p[1].v.is_nan()) {
                        c += 1.0;
                    }
                }
                Some(c)
            },
            false,
        ),
        "resets" => (0, resets, false),
        "avg_over_time" => (0, |w| Some(avg_over_time(w.samples)), false),
        "sum_over_time" => (0, |w| Some(kahan_sum(&mut w.samples.iter().map(|p| p.v))), false),
        "count_over_time" => (0, |w| Some(w.samples.len() as f64), false),
        "min_over_time" => (0, |w| Some(fold_extreme(w.samples, |cur, v| v < cur)), false),
        "max_over_time" => (0, |w| Some(fold_extreme(w.samples, |cur, v| v > cur)), false),
        "stddev_over_time" => (0, |w| Some(variance_over_time(w.samples).sqrt()), false),
        "stdvar_over_time" => (0, |w| Some(variance_over_time(w.samples)), false),
        "last_over_time" => (0, |w| w.samples.last().map(|p| p.v), true),
        "first_over_time" => (0, |w| w.samples.first().map(|p| p.v), true),
        "present_over_time" => (0, |_| Some(1.0), false),
        "ts_of_last_over_time" => (0, |w| w.samples.last().map(|p| p.t as f64 / 1000.0), false),
        "ts_of_first_over_time" => (0, |w| w.samples.first().map(|p| p.t as f64 / 1000.0), false),
        "ts_of_max_over_time" => (0, |w| ts_of_extreme(w.samples, |cur, v| v >= cur), false),
        "ts_of_min_over_time" => (0, |w| ts_of_extreme(w.samples, |cur, v| v <= cur), false),
        "quantile_over_time" => (
            1,
            |w| {
                let mut vals: Vec<f64> = w.samples.iter().map(|p| p.v).collect();
                Some(quantile(w.p0, &mut vals))
            },
            false,
        ),
        "mad_over_time" => (
            0,
            |w| {
                let mut vals: Vec<f64> = w.samples.iter().map(|p| p.v).collect();
                if vals.iter().any(|v| v.is_nan()) {
                    return Some(f64::NAN);
                }
                let median = quantile(0.5, &mut vals);
                let mut dev: Vec<f64> = vals.iter().map(|v| (v - median).abs()).collect();
                Some(quantile(0.5, &mut dev))
            },
            false,
        ),
        "double_exponential_smoothing" => (0, double_exponential_smoothing, false),
        _ => return None,
    })
}

fn eval_range_function(ev: &mut Evaluator, name: &str, args: &[&Expr]) -> Result<Val, PromqlError> {
    let mut out = Vec::new();
    let may_collide = each_range_function_series(ev, name, args, &mut |s| {
        out.push(s);
        Ok(())
    })?;
    // Without delayed name removal Prometheus rejects two results that share a label set
    // once the name is gone, even when they never share a step.
    if !ev.opts.delayed_name_removal && may_collide {
        let mut seen = rustc_hash::FxHashSet::default();
        for s in &out {
            let labels = if s.drop_name { s.labels.without(&METADATA_LABELS) } else { s.labels.clone() };
            if !seen.insert(labels) {
                return Err(PromqlError::execution("vector cannot contain metrics with the same labelset"));
            }
        }
    }
    Ok(Val::Vector(out))
}

/// Whether `expr` is a range function over a selector (`rate(x[5m])`), which
/// [`each_range_function_series`] can hand over series by series.
pub(crate) fn is_range_function_of_selector(expr: &Expr) -> bool {
    let Expr::Call(call) = strip_parens(expr) else { return false };
    let Some((matrix_idx, _, _)) = range_kernel(call.func.name) else { return false };
    call.args.args.get(matrix_idx).is_some_and(|a| matches!(strip_parens(a), Expr::MatrixSelector(_)))
}

/// Evaluates a range function, handing each result series to `sink` as soon as it is
/// computed (names not yet dropped: `drop_name` says which are to lose them). Returns
/// whether two results may share a label set once their names are dropped.
pub(crate) fn each_range_function_series(
    ev: &mut Evaluator,
    name: &str,
    args: &[&Expr],
    sink: &mut dyn FnMut(StepSeries) -> Result<(), PromqlError>,
) -> Result<bool, PromqlError> {
    let Some((matrix_idx, f, keep_name)) = range_kernel(name) else {
        return Err(PromqlError::bad_data(format!("function {name:?} is not supported by this engine")));
    };
    let n = ev.range.len();
    // Scalar parameters come before (quantile_over_time) or after the range argument.
    let scalar_args: Vec<&Expr> = args.iter().enumerate().filter(|(i, _)| *i != matrix_idx).map(|(_, a)| *a).collect();
    let mut params = Vec::new();
    for a in &scalar_args {
        params.push(ev.eval_scalar(a)?);
    }
    let p0 = params.first().cloned().unwrap_or_else(|| vec![0.0; n]);
    let p1 = params.get(1).cloned().unwrap_or_else(|| vec![0.0; n]);
    validate_params(ev, name, &p0, &p1)?;
    // Prometheus reads start timestamps for these functions only.
    let with_starts = matches!(name, "rate" | "increase" | "irate" | "resets");
    let mut parts = ev.range_arg_parts(args[matrix_idx], with_starts)?;
    if let Some(modifier) = parts.modifier() {
        modifier.check_function(name)?;
    }
    let kernel = SeriesKernel {
        name,
        f,
        range: ev.range,
        p0: &p0,
        p1: &p1,
        handles_histograms: crate::native::handles_histograms(name),
        // `rate`/`increase` skip their search for counter resets in windows without a decrease.
        counts_decreases: matches!(name, "rate" | "increase"),
    };
    // Scanning the query text for the argument's position is per query, not per series.
    let pos = arg_pos(ev.query, name, matrix_idx);
    let mut metadata = MetadataVariety::default();
    // Samples in each step's windows, over all series: what Prometheus would hold at once.
    let mut window_samples = vec![0usize; n];
    while let Some(mut arg) = ev.next_range_arg(&mut parts)? {
        ev.check_deadline()?;
        if matches!(name, "rate" | "increase") {
            non_counter_info(ev, &arg, name);
        }
        metadata.observe(&arg.series);
        let outs = kernel.eval_batch(&arg, &mut window_samples);
        for (s, out) in arg.series.iter_mut().zip(outs) {
            report_notes(ev, &out.notes, &s.labels, &pos);
            if !out.points.is_empty() || !out.hists.is_empty() {
                // Moved into the output series rather than cloned.
                let labels = std::mem::take(&mut s.labels);
                let (points, hists) = (out.points, out.hists);
                sink(StepSeries { labels, drop_name: s.drop_name || !keep_name, points, hists })?;
            }
        }
        ev.account(window_samples.iter().copied().max().unwrap_or(0))?;
    }
    Ok(metadata.varies)
}

/// A range function applied to the series of a range-vector argument, one series at a time.
struct SeriesKernel<'k> {
    name: &'k str,
    f: fn(&WindowCtx) -> Option<f64>,
    range: EvalRange,
    p0: &'k [f64],
    p1: &'k [f64],
    handles_histograms: bool,
    counts_decreases: bool,
}

/// One series' result, and what it noticed for annotations.
struct SeriesOut {
    points: Vec<Sample>,
    hists: Vec<HistogramSample>,
    notes: Notes,
}

/// Windows plus samples a batch must hold for its series to be computed on several threads:
/// below that, starting threads costs more than it saves.
const PARALLEL_WORK: usize = 1 << 15;

impl SeriesKernel<'_> {
    /// Every series of a batch, in order, adding each step's window sizes to `window_samples`.
    /// A large batch is split across the machine's cores: series are independent.
    fn eval_batch(&self, arg: &MatrixArg, window_samples: &mut [usize]) -> Vec<SeriesOut> {
        let series = arg.series.len();
        let samples: usize = arg.series.iter().map(|s| s.points.len() + s.hists.len()).sum();
        let work = series.saturating_mul(self.range.len()).saturating_add(samples);
        let threads = parallelism().min(work / PARALLEL_WORK).max(1);
        if threads == 1 {
            let mut decreases = Vec::new();
            return (0..series).map(|si| self.eval_series(arg, si, window_samples, &mut decreases)).collect();
        }
        let per_thread = series.div_ceil(threads);
        let parts: Vec<(Vec<SeriesOut>, Vec<usize>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..series)
                .step_by(per_thread)
                .map(|from| {
                    scope.spawn(move || {
                        let mut counts = vec![0usize; self.range.len()];
                        let mut decreases = Vec::new();
                        let to = (from + per_thread).min(series);
                        let outs =
                            (from..to).map(|si| self.eval_series(arg, si, &mut counts, &mut decreases)).collect();
                        (outs, counts)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        });
        let mut outs = Vec::with_capacity(series);
        for (part, counts) in parts {
            outs.extend(part);
            for (total, c) in window_samples.iter_mut().zip(counts) {
                *total += c;
            }
        }
        outs
    }

    fn eval_series(
        &self,
        arg: &MatrixArg,
        si: usize,
        window_samples: &mut [usize],
        decreases: &mut Vec<u32>,
    ) -> SeriesOut {
        let s = &arg.series[si];
        // A point per step at most, as the batch's memory accounting assumes: sized once
        // rather than grown (growing took an eighth of a range query's time).
        let points = if s.points.is_empty() { Vec::new() } else { Vec::with_capacity(self.range.len()) };
        let mut out = SeriesOut { points, hists: Vec::new(), notes: Notes::default() };
        if self.counts_decreases {
            decreases_before(&s.points, decreases);
        }
        for (i, (fr, hr)) in arg.window_indices(s, self.range).enumerate() {
            let ts = self.range.ts(i);
            window_samples[i] += fr.len() + hr.len();
            let no_decrease = self.counts_decreases && fr.len() > 1 && decreases[fr.end] == decreases[fr.start + 1];
            let starts = arg.window_starts(si, fr.clone(), hr.clone());
            let (samples, hw) = (&s.points[fr], &s.hists[hr]);
            if !hw.is_empty() {
                if self.handles_histograms {
                    let end = arg.window_end(ts);
                    let start = end - arg.range_ms;
                    let notes = &mut out.notes;
                    match crate::native::eval_window(self.name, samples, hw, starts, start, end, arg.modifier, notes) {
                        Some(NativeOut::F(v)) => out.points.push(Sample::new(ts, v)),
                        Some(NativeOut::H(h)) => out.hists.push(HistogramSample { t: ts, h }),
                        None => {}
                    }
                    continue;
                }
                if !samples.is_empty() {
                    out.notes.ignored_histograms = true;
                }
            }
            if samples.is_empty() {
                continue;
            }
            if matches!(self.name, "rate" | "increase") && arg.modifier == Modifier::None {
                out.notes.start_time_overlap |= start::any_overlap(samples.iter().map(|p| p.t), starts.floats);
            }
            let w = WindowCtx {
                samples,
                no_decrease,
                starts: starts.floats,
                end: arg.window_end(ts),
                ts,
                modifier: arg.modifier,
                range_ms: arg.range_ms,
                p0: self.p0[i],
                p1: self.p1[i],
            };
            if let Some(v) = (self.f)(&w) {
                out.points.push(Sample::new(ts, v));
            }
        }
        out
    }
}

/// The cores a query may use for one batch of series.
fn parallelism() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// `out[k]`: how many samples among the first `k` are lower than the sample before them, so
/// that the decreases between samples `a` and `b - 1` are `out[b] - out[a + 1]`.
fn decreases_before(samples: &[Sample], out: &mut Vec<u32>) {
    out.clear();
    out.push(0);
    let mut count = 0;
    for (i, p) in samples.iter().enumerate() {
        if i > 0 && p.v < samples[i - 1].v {
            count += 1;
        }
        out.push(count);
    }
}

/// Turns what a function or selector noticed about histograms into annotations.
pub(crate) fn report_notes(ev: &mut Evaluator, notes: &Notes, labels: &Labels, pos: &str) {
    let metric = labels.get(METRIC_NAME).unwrap_or("");
    if notes.mixed_floats_histograms {
        ev.warn(format!("encountered a mix of histograms and floats for metric name {metric:?} {pos}"));
    }
    if notes.mixed_exponential_custom {
        ev.warn(format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?} {pos}"
        ));
    }
    if notes.not_counter {
        ev.warn(format!("this native histogram metric is not a counter: {metric:?} {pos}"));
    }
    if notes.not_gauge {
        ev.warn(format!("this native histogram metric is not a gauge: {metric:?} {pos}"));
    }
    if notes.counter_reset_collision {
        ev.warn(format!("conflicting counter resets during histogram aggregation {pos}"));
    }
    for op in &notes.reconciled {
        ev.info(format!("mismatched custom buckets were reconciled during {op} {pos}"));
    }
    if notes.ignored_histograms {
        ev.info(format!(
            "ignored histograms in a range containing both floats and histograms for metric name {metric:?} {pos}"
        ));
    }
    if notes.start_time_overlap {
        ev.warn(format!(
            "sample has start time that overlaps with previous sample timestamp for metric {metric:?} {pos}"
        ));
    }
}

fn validate_params(ev: &mut Evaluator, name: &str, p0: &[f64], p1: &[f64]) -> Result<(), PromqlError> {
    match name {
        "quantile_over_time" => {
            if let Some(q) = p0.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
                let pos = arg_pos(ev.query, name, 0);
                ev.warn(format!("quantile value should be between 0 and 1, got {} {pos}", format_float(*q)));
            }
        }
        "double_exponential_smoothing" => {
            for (&sf, &tf) in p0.iter().zip(p1) {
                if sf <= 0.0 || sf >= 1.0 {
                    return Err(PromqlError::execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                    )));
                }
                if tf <= 0.0 || tf >= 1.0 {
                    return Err(PromqlError::execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                    )));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Prometheus notes when `rate`/`increase` read a metric whose name does not look like a counter.
fn non_counter_info(ev: &mut Evaluator, arg: &MatrixArg, func: &str) {
    for s in &arg.series {
        if let Some(name) = s.labels.get(METRIC_NAME) {
            let counter_like = ["_total", "_sum", "_count", "_bucket"].iter().any(|suf| name.ends_with(suf));
            // Only series that produce a result are noted (a rate needs two samples).
            if !counter_like && (0..ev.range.len()).any(|i| arg.window(s, ev.range.ts(i)).len() >= 2) {
                let pos = arg_pos(ev.query, func, 0);
                ev.info(format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?} {pos}"
                ));
            }
        }
    }
}

/// `rate`, `increase` and `delta`: extrapolated, or from the edges of an anchored or
/// smoothed window.
fn rate_like(w: &WindowCtx, is_counter: bool, is_rate: bool) -> Option<f64> {
    match w.modifier {
        Modifier::None => extrapolated_rate(w, is_counter, is_rate),
        m => extended_rate(w.samples, w.end - w.range_ms, w.end, m == Modifier::Smoothed, is_counter, is_rate),
    }
}

/// The samples `changes` and `resets` compare: for an anchored window, from the last sample
/// at or before the window start on.
fn anchored_or_all<'w>(w: &WindowCtx<'w>) -> Option<&'w [Sample]> {
    match w.modifier {
        Modifier::Anchored => anchored_samples(w.samples, w.end - w.range_ms),
        _ => Some(w.samples),
    }
}

/// `rate`, `increase` and `delta` with Prometheus's extrapolation to the window's edges.
/// A counter's start timestamps add resets, and one inside the window before the first
/// sample replaces the extrapolation to the left (then one sample is enough).
fn extrapolated_rate(w: &WindowCtx, is_counter: bool, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    let first = *s.first()?;
    let range_start = w.end - w.range_ms;
    let range_end = w.end;
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    let starts = if is_counter { w.starts } else { &[] };
    if is_counter {
        if starts.is_empty() {
            // Without a decrease in the window the search would add nothing.
            if !w.no_decrease {
                let mut prev = 0.0;
                for p in s {
                    if p.v < prev {
                        result += prev;
                    }
                    prev = p.v;
                }
            }
        } else {
            for (i, p) in s.windows(2).enumerate() {
                if p[1].v < p[0].v || start::is_reset(starts[i], p[0].t, starts[i + 1], p[1].t) {
                    result += p[0].v;
                }
            }
        }
    }
    let zero_at = start::zero_at(starts, range_start, first.t);
    if zero_at.is_some() {
        result += first.v;
    } else if s.len() < 2 {
        return None;
    }
    let edges = Edges { first_t: first.t, last_t: last.t, samples: s.len(), range_start, range_end, zero_at };
    let zero_point = (is_counter && result > 0.0 && first.v >= 0.0).then(|| first.v / result);
    Some(result * extrapolation_factor(&edges, zero_point, is_rate))
}

/// `resets`: decreases, and with start timestamps, samples that start a new count.
fn resets(w: &WindowCtx) -> Option<f64> {
    let s = anchored_or_all(w)?;
    let starts = start::suffix(w.starts, s.len());
    let n = s
        .windows(2)
        .enumerate()
        .filter(|(i, p)| p[1].v < p[0].v || start::is_reset_at(starts, *i, p[0].t, p[1].t))
        .count();
    Some(n as f64)
}

/// Where a window's samples lie within it, for extrapolating to its edges.
pub(crate) struct Edges {
    pub(crate) first_t: i64,
    pub(crate) last_t: i64,
    pub(crate) samples: usize,
    pub(crate) range_start: i64,
    pub(crate) range_end: i64,
    /// A counter's start time inside the window before the first sample (see
    /// [`start::zero_at`]): the data then covers the window from there on.
    pub(crate) zero_at: Option<i64>,
}

/// Prometheus's extrapolation of a delta over `edges` to the window's edges, by at most half
/// a sample interval past the data; for a counter, never past the point where it would have
/// been zero (`zero_point`: first value / delta), and not at all to the left when its start
/// time is known (`zero_at`, then the delta includes the first value). Needs two samples,
/// or one with `zero_at` (which then is not extrapolated to the right either). Divided by
/// the range in seconds for a rate. Shared by float and native histogram rates.
pub(crate) fn extrapolation_factor(edges: &Edges, zero_point: Option<f64>, is_rate: bool) -> f64 {
    let mut to_start = (edges.first_t - edges.range_start) as f64 / 1000.0;
    let mut to_end = (edges.range_end - edges.last_t) as f64 / 1000.0;
    let mut sampled = (edges.last_t - edges.first_t) as f64 / 1000.0;
    let avg = if edges.samples > 1 { sampled / (edges.samples - 1) as f64 } else { 0.0 };
    let threshold = avg * 1.1;
    match edges.zero_at {
        Some(st) => {
            to_start = 0.0;
            sampled = (edges.last_t - st) as f64 / 1000.0;
        }
        None => {
            if to_start >= threshold {
                to_start = avg / 2.0;
            }
            if let Some(fraction) = zero_point {
                to_start = to_start.min(sampled * fraction);
            }
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 { (sampled + to_start + to_end) / sampled } else { 1.0 };
    if is_rate {
        factor /= (edges.range_end - edges.range_start) as f64 / 1000.0;
    }
    factor
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(w: &WindowCtx, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let (a, b) = (s[s.len() - 2], s[s.len() - 1]);
    let interval = b.t - a.t;
    if interval == 0 {
        return None;
    }
    let reset = b.v < a.v || start::is_reset_at(start::suffix(w.starts, 2), 0, a.t, b.t);
    let mut v = if is_rate && reset { b.v } else { b.v - a.v };
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept with x in seconds relative to `intercept_time`.
fn linear_regression(samples: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = samples[0].v;
    let mut const_y = true;
    for (i, s) in samples.iter().enumerate() {
        if const_y && i > 0 && s.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(s.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * s.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn avg_over_time(s: &[Sample]) -> f64 {
    mean(&mut s.iter().map(|p| p.v))
}

/// Kahan-compensated sum; an infinite sum is returned as is.
pub(crate) fn kahan_sum(values: &mut dyn Iterator<Item = f64>) -> f64 {
    let (s, c) = values.fold((0.0, 0.0), |(s, c), v| kahan_inc(v, s, c));
    if s.is_infinite() {
        s
    } else {
        s + c
    }
}

/// Prometheus's mean: a Kahan sum divided by the count, switching to an incremental mean
/// when the sum would overflow. NaN for no values.
pub(crate) fn mean(values: &mut dyn Iterator<Item = f64>) -> f64 {
    let Some(first) = values.next() else { return f64::NAN };
    let (mut sum, mut count) = (first, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, v) in values.enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Min or max where a NaN is replaced by any later number.
fn fold_extreme(s: &[Sample], better: fn(f64, f64) -> bool) -> f64 {
    let mut cur = s[0].v;
    for p in &s[1..] {
        if better(cur, p.v) || cur.is_nan() {
            cur = p.v;
        }
    }
    cur
}

/// Timestamp of the (last) extreme sample.
fn ts_of_extreme(s: &[Sample], better_or_equal: fn(f64, f64) -> bool) -> Option<f64> {
    let mut cur = s[0];
    for p in &s[1..] {
        if better_or_equal(cur.v, p.v) || cur.v.is_nan() {
            cur = *p;
        }
    }
    Some(cur.t as f64 / 1000.0)
}

fn variance_over_time(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn double_exponential_smoothing(w: &WindowCtx) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let (sf, tf) = (w.p0, w.p1);
    let mut s0 = 0.0;
    let mut s1 = s[0].v;
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}
