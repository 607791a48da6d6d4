//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, …) with `by` / `without`.

// Label-set keys hash with Fx: SipHash's DoS resistance buys nothing for data already stored.
use rustc_hash::FxHashMap as HashMap;

use osprey_model::{FloatHistogram, Labels, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::error::PromqlError;
use crate::eval::{by_step, by_step_h, intern, Collector, Evaluator, StepSeries, Val};
use crate::functions::{format_float, is_valid_label_name_utf8, kahan_inc, quantile};
use crate::native::{fieldwise, Fieldwise, Notes};
use crate::scan::{arg_pos, call_pos};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl Agg {
    fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "count" => Agg::Count,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "group" => Agg::Group,
            "stddev" => Agg::Stddev,
            "stdvar" => Agg::Stdvar,
            "topk" => Agg::Topk,
            "bottomk" => Agg::Bottomk,
            "count_values" => Agg::CountValues,
            "quantile" => Agg::Quantile,
            "limitk" => Agg::Limitk,
            "limit_ratio" => Agg::LimitRatio,
            _ => return None,
        })
    }

    /// Whether the result keeps the input series (and their labels) rather than one per group.
    fn selects_series(self) -> bool {
        matches!(self, Agg::Topk | Agg::Bottomk | Agg::Limitk | Agg::LimitRatio)
    }
}

/// The running state of one group at one step.
#[derive(Default)]
struct Group {
    /// Whether any input series has its name dropped at the end; the group inherits it
    /// (so `sum by (__name__) (rate(…))` loses the name, as in Prometheus).
    drop_name: bool,
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental_mean: bool,
    values: Vec<(usize, f64)>,
    /// Native histograms (for `sum` and `avg`, with the series they came from), how many,
    /// and whether floats were seen too.
    hists: Vec<(usize, FloatHistogram)>,
    hist_count: f64,
    has_float: bool,
    /// Series indices of histogram samples (for `limitk` and `limit_ratio`).
    hist_members: Vec<usize>,
    /// Histograms as `count_values` labels them.
    hist_values: Vec<String>,
}

pub(crate) fn eval_aggregate(ev: &mut Evaluator, agg: &AggregateExpr) -> Result<Val, PromqlError> {
    let name = agg.op.to_string();
    let op = Agg::parse(&name).ok_or_else(|| PromqlError::bad_data(format!("unknown aggregation {name:?}")))?;
    let n = ev.range.len();
    let mut scalar_param = vec![0.0; n];
    let mut string_param = String::new();
    if let Some(p) = &agg.param {
        if op == Agg::CountValues {
            string_param = ev.eval_string(p)?;
            if !is_valid_label_name_utf8(&string_param) {
                return Err(PromqlError::execution(format!(
                    "invalid label name {}",
                    go_quoted_arg(ev.query, &string_param)
                )));
            }
        } else {
            scalar_param = ev.eval_scalar(p)?;
        }
    }
    match op {
        Agg::Topk | Agg::Bottomk | Agg::Limitk => {
            for &k in &scalar_param {
                if k.is_nan() {
                    return Err(PromqlError::execution("Parameter value is NaN"));
                }
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                    return Err(PromqlError::execution(format!("Scalar value {} overflows int64", format_float(k))));
                }
            }
        }
        Agg::LimitRatio => {
            if scalar_param.iter().any(|r| r.is_nan()) {
                return Err(PromqlError::execution("Ratio value is NaN"));
            }
            let pos = arg_pos(ev.query, &name, 0);
            let (min, max) = min_max(&scalar_param);
            if max > 1.0 {
                ev.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to 1 {pos}",
                    format_float(max)
                ));
            }
            if min < -1.0 {
                ev.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to -1 {pos}",
                    format_float(min)
                ));
            }
            for r in &mut scalar_param {
                *r = r.clamp(-1.0, 1.0);
            }
        }
        Agg::Quantile => {
            let pos = arg_pos(ev.query, &name, 0);
            let (min, max) = min_max(&scalar_param);
            if scalar_param.iter().any(|q| q.is_nan()) {
                ev.warn(format!("quantile value should be between 0 and 1, got NaN {pos}"));
            }
            if max > 1.0 {
                ev.warn(format!("quantile value should be between 0 and 1, got {} {pos}", format_float(max)));
            }
            if min < 0.0 {
                ev.warn(format!("quantile value should be between 0 and 1, got {} {pos}", format_float(min)));
            }
        }
        _ => {}
    }
    let input = ev.eval_vector(&agg.expr)?;
    let range = ev.range;
    let keys: Vec<Labels> = input.iter().map(|s| group_key(&s.labels, agg.modifier.as_ref())).collect();
    let mut ids = HashMap::default();
    let group_of = intern(keys.iter(), &mut ids);
    // Ids are handed out in order of first appearance.
    let mut group_keys: Vec<&Labels> = Vec::with_capacity(ids.len());
    for (j, &g) in group_of.iter().enumerate() {
        if g == group_keys.len() {
            group_keys.push(&keys[j]);
        }
    }
    // Output slot per group, found once rather than by hashing labels at every step.
    let mut slots: Vec<Option<usize>> = vec![None; ids.len()];
    let mut groups: Vec<Option<Group>> = (0..ids.len()).map(|_| None).collect();
    let steps = by_step(&input, &range);
    let hsteps = by_step_h(&input, &range);
    let expr_pos = arg_pos(ev.query, &name, usize::from(agg.param.is_some()));
    let mut out = Collector::new();
    for (i, step) in steps.iter().enumerate() {
        ev.check_deadline()?;
        let t = range.ts(i);
        let mut order: Vec<usize> = Vec::new();
        for &(j, v) in step {
            let g = group_of[j];
            let group = groups[g].get_or_insert_with(|| {
                order.push(g);
                Group::default()
            });
            group.drop_name |= input[j].drop_name;
            group.has_float = true;
            accumulate(op, group, j, v);
        }
        for &(j, h) in &hsteps[i] {
            match op {
                Agg::Min | Agg::Max | Agg::Stddev | Agg::Stdvar | Agg::Quantile => {
                    ev.info(format!("ignored histogram in {name} aggregation {expr_pos}"));
                    continue;
                }
                Agg::Topk | Agg::Bottomk => {
                    ev.info(format!("ignored histogram in {name} aggregation {}", call_pos(ev.query, &name)));
                    continue;
                }
                _ => {}
            }
            let g = group_of[j];
            let group = groups[g].get_or_insert_with(|| {
                order.push(g);
                Group::default()
            });
            group.drop_name |= input[j].drop_name;
            group.count += 1.0;
            group.hist_count += 1.0;
            match op {
                Agg::Sum | Agg::Avg => group.hists.push((j, h.clone())),
                Agg::Limitk | Agg::LimitRatio => group.hist_members.push(j),
                Agg::CountValues => group.hist_values.push(crate::histogram::histogram_string(h)),
                _ => {}
            }
        }
        for g in order {
            let mut group = groups[g].take().unwrap_or_default();
            let mut hist = None;
            if matches!(op, Agg::Sum | Agg::Avg) && !group.hists.is_empty() {
                let hs: Vec<&FloatHistogram> = group.hists.iter().map(|(_, h)| h).collect();
                let how = if op == Agg::Sum { Fieldwise::Sum } else { Fieldwise::Mean };
                let mut notes = Notes::default();
                hist = fieldwise(&hs, how, &mut notes);
                if notes.counter_reset_collision {
                    ev.warn(format!("conflicting counter resets during histogram aggregation {expr_pos}"));
                }
                if group.has_float {
                    ev.warn(format!("encountered a mix of histograms and floats for aggregation {expr_pos}"));
                    continue;
                }
                if notes.mixed_exponential_custom {
                    // Named after the first series whose buckets do not match the first one's.
                    let custom = hs[0].uses_custom_buckets();
                    let j = group.hists.iter().find(|(_, h)| h.uses_custom_buckets() != custom).map_or(0, |x| x.0);
                    let metric = input[j].labels.get(METRIC_NAME).unwrap_or("");
                    ev.warn(format!(
                        "vector contains a mix of histograms with exponential and custom buckets schemas for metric \
                         name {metric:?} {expr_pos}"
                    ));
                    continue;
                }
                if !notes.reconciled.is_empty() {
                    ev.info(format!("mismatched custom buckets were reconciled during aggregation {expr_pos}"));
                }
            }
            group.hists.clear();
            let target = Target { key: group_keys[g], slot: &mut slots[g] };
            emit(op, group, hist, target, &input, scalar_param[i], &string_param, t, &mut out)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// The label name as Go's `%q` prints it. Invalid UTF-8 (decoded as U+FFFD) can only come
/// from `\x` escapes, which `%q` prints back as written, so the literal's own text is used.
fn go_quoted_arg(query: &str, decoded: &str) -> String {
    if decoded.contains('\u{FFFD}') {
        let raw = crate::scan::find_call(query, "count_values")
            .and_then(|start| crate::scan::find_arg(query, start + "count_values".len(), 0))
            .map(|i| &query[i..(crate::scan::skip_string(query.as_bytes(), i) + 1).min(query.len())]);
        if let Some(raw) = raw.filter(|r| r.starts_with('"')) {
            return raw.to_string();
        }
    }
    format!("{decoded:?}")
}

/// The smallest and largest non-NaN values.
fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().filter(|x| !x.is_nan()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

fn group_key(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(l)) => {
            let names: Vec<&str> = l.labels.iter().map(String::as_str).collect();
            labels.only(&names)
        }
        Some(LabelModifier::Exclude(l)) => {
            let mut names: Vec<&str> = l.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            labels.without(&names)
        }
    }
}

fn accumulate(op: Agg, g: &mut Group, j: usize, v: f64) {
    let first = g.count == 0.0;
    g.count += 1.0;
    match op {
        Agg::Sum => (g.value, g.kahan) = kahan_inc(v, g.value, g.kahan),
        Agg::Avg => {
            if first {
                g.value = v;
                return;
            }
            if !g.incremental_mean {
                let (nv, nc) = kahan_inc(v, g.value, g.kahan);
                if !nv.is_infinite() {
                    (g.value, g.kahan) = (nv, nc);
                    return;
                }
                g.incremental_mean = true;
                g.mean = g.value / (g.count - 1.0);
                g.kahan /= g.count - 1.0;
            }
            let q = (g.count - 1.0) / g.count;
            (g.mean, g.kahan) = kahan_inc(v / g.count, q * g.mean, q * g.kahan);
        }
        Agg::Min => {
            if first || g.value > v || g.value.is_nan() {
                g.value = v;
            }
        }
        Agg::Max => {
            if first || g.value < v || g.value.is_nan() {
                g.value = v;
            }
        }
        Agg::Stddev | Agg::Stdvar => {
            if first {
                g.mean = v;
                g.value = if v.is_finite() { 0.0 } else { f64::NAN };
                return;
            }
            let delta = v - g.mean;
            g.mean += delta / g.count;
            g.value += delta * (v - g.mean);
        }
        Agg::Count | Agg::Group => {}
        Agg::Topk | Agg::Bottomk | Agg::Limitk | Agg::LimitRatio | Agg::Quantile | Agg::CountValues => {
            g.values.push((j, v))
        }
    }
}

/// Where a group's result goes: its labels, and its output slot once known.
struct Target<'a> {
    key: &'a Labels,
    slot: &'a mut Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn emit(
    op: Agg,
    mut g: Group,
    hist: Option<FloatHistogram>,
    target: Target,
    input: &[StepSeries],
    param: f64,
    label: &str,
    t: i64,
    out: &mut Collector,
) -> Result<(), PromqlError> {
    if let Some(mut h) = hist {
        h.compact();
        let slot = *target.slot.get_or_insert_with(|| out.slot(target.key.clone(), g.drop_name));
        if g.drop_name {
            out.set_drop_name(slot);
        }
        return out.push_hist_at(slot, t, h);
    }
    let value = match op {
        Agg::Sum => g.value + g.kahan,
        Agg::Avg if g.incremental_mean => g.mean + g.kahan,
        Agg::Avg => g.value / g.count + g.kahan / g.count,
        Agg::Count => g.count,
        Agg::Group => 1.0,
        Agg::Min | Agg::Max => g.value,
        Agg::Stdvar => g.value / g.count,
        Agg::Stddev => (g.value / g.count).sqrt(),
        Agg::Quantile => {
            let mut vals: Vec<f64> = g.values.iter().map(|&(_, v)| v).collect();
            quantile(param, &mut vals)
        }
        Agg::CountValues => {
            let mut counts: Vec<(String, f64)> = Vec::new();
            let floats = g.values.iter().map(|&(_, v)| format_float(v));
            for s in floats.chain(g.hist_values.iter().cloned()) {
                match counts.iter_mut().find(|(k, _)| *k == s) {
                    Some(c) => c.1 += 1.0,
                    None => counts.push((s, 1.0)),
                }
            }
            for (s, c) in counts {
                let mut b = target.key.to_builder();
                b.set(label, s);
                out.add(b.build(), g.drop_name, t, c);
            }
            return Ok(());
        }
        Agg::Topk | Agg::Bottomk | Agg::Limitk | Agg::LimitRatio => {
            // Histograms take part in limitk/limit_ratio; NaN marks them among the values.
            let hist_members = std::mem::take(&mut g.hist_members);
            g.values.extend(hist_members.iter().map(|&j| (j, f64::NAN)));
            if op == Agg::Limitk {
                g.values.sort_by_key(|x| x.0);
            }
            let selected = select_series(op, &mut g.values, input, param);
            for (j, v) in selected {
                if hist_members.contains(&j) {
                    let h = input[j].hists.iter().find(|p| p.t == t).map(|p| p.h.clone()).unwrap_or_default();
                    out.push_hist(input[j].labels.clone(), input[j].drop_name, t, h)?;
                } else {
                    out.push(input[j].labels.clone(), input[j].drop_name, t, v)?;
                }
            }
            return Ok(());
        }
    };
    debug_assert!(!op.selects_series());
    let slot = *target.slot.get_or_insert_with(|| out.slot(target.key.clone(), g.drop_name));
    if g.drop_name {
        out.set_drop_name(slot);
    }
    out.push_at(slot, t, value)
}

fn select_series(op: Agg, values: &mut [(usize, f64)], input: &[StepSeries], param: f64) -> Vec<(usize, f64)> {
    match op {
        Agg::LimitRatio => values
            .iter()
            .copied()
            .filter(|&(j, _)| {
                let offset = input[j].labels.stable_hash() as f64 / u64::MAX as f64;
                if param >= 0.0 {
                    offset < param
                } else {
                    offset >= 1.0 + param
                }
            })
            .collect(),
        _ => {
            let k = param as i64;
            if k < 1 {
                return Vec::new();
            }
            let k = (k as usize).min(values.len());
            match op {
                // NaN ranks last for topk and bottomk alike; ties keep input order.
                Agg::Topk => values.sort_by(|a, b| cmp_nan_last(b.1, a.1, true)),
                Agg::Bottomk => values.sort_by(|a, b| cmp_nan_last(a.1, b.1, false)),
                _ => {}
            }
            values[..k].to_vec()
        }
    }
}

fn cmp_nan_last(a: f64, b: f64, reversed: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) if reversed => Ordering::Less,
        (false, true) if reversed => Ordering::Greater,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}
