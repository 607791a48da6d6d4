//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, …) with `by` / `without`.

// Label-set keys hash with Fx: SipHash's DoS resistance buys nothing for data already stored.
use rustc_hash::FxHashMap as HashMap;

use osprey_model::{FloatHistogram, Label, Labels, Sample, METRIC_NAME};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::error::PromqlError;
use crate::eval::{by_step, by_step_h, intern, Collector, EvalRange, Evaluator, StepSeries, Val};
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

    /// Whether the aggregate of floats is a running value ([`Acc`]) rather than a list.
    fn accumulates(self) -> bool {
        matches!(self, Agg::Sum | Agg::Avg | Agg::Count | Agg::Min | Agg::Max | Agg::Group | Agg::Stddev | Agg::Stdvar)
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
    acc: Acc,
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
    let modifier = agg.modifier.as_ref();
    let input = if op.accumulates() && crate::functions::is_range_function_of_selector(&agg.expr) {
        match aggregate_streamed(ev, op, &agg.expr, modifier)? {
            Some(out) => return Ok(Val::Vector(out)),
            None => ev.eval_vector(&agg.expr)?,
        }
    } else {
        ev.eval_vector(&agg.expr)?
    };
    if op.accumulates() {
        let mut by_series = SeriesMajor::new(op, ev.range, modifier);
        if input.iter().all(|s| by_series.add(s)) {
            return Ok(Val::Vector(by_series.finish()));
        }
    }
    let range = ev.range;
    let keys: Vec<Labels> = input.iter().map(|s| group_key(&s.labels, modifier)).collect();
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
            group.acc.count += 1.0;
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

/// Aggregates a range function over a selector as its series are computed, so that only
/// the groups are held, never the function's whole result. `None` when [`SeriesMajor`]
/// declines the input (histograms, sparse groups): the caller then evaluates it whole.
fn aggregate_streamed(
    ev: &mut Evaluator,
    op: Agg,
    expr: &promql_parser::parser::Expr,
    modifier: Option<&LabelModifier>,
) -> Result<Option<Vec<StepSeries>>, PromqlError> {
    let stats = ev.stats.clone();
    let mut by_series = SeriesMajor::new(op, ev.range, modifier);
    let mut declined = false;
    let res = ev.eval_vector_each(expr, &mut |s| {
        if by_series.add(&s) {
            Ok(())
        } else {
            // Stops the evaluation; `declined` tells this stop from a real error.
            declined = true;
            Err(PromqlError::execution("aggregation declined series-major evaluation"))
        }
    });
    if declined {
        // The whole evaluation follows; its reads are counted once.
        ev.stats = stats;
        return Ok(None);
    }
    res?;
    Ok(Some(by_series.finish()))
}

/// A float aggregation (`sum`, `avg`, `count`, …) computed series by series rather than step
/// by step: each series' points go straight into its group's row of accumulators, so no
/// per-step view of millions of points is built. Each group's values are still added in
/// series order at every step, the same floating-point result as the per-step path, and
/// groups come out in the order that path creates them: by the first step with a point,
/// then by series.
struct SeriesMajor<'m> {
    op: Agg,
    range: EvalRange,
    modifier: Option<&'m LabelModifier>,
    /// Groups by their key's hash ([`group_hash`]).
    ids: HashMap<u64, Vec<usize>>,
    keys: Vec<Labels>,
    /// `accs[g * steps + i]`: group `g` at step `i`.
    accs: Vec<Acc>,
    drop_name: Vec<bool>,
    /// Per group: the first step with a point and the first series with a point there.
    first_seen: Vec<(usize, usize)>,
    points: usize,
    series: usize,
}

impl<'m> SeriesMajor<'m> {
    fn new(op: Agg, range: EvalRange, modifier: Option<&'m LabelModifier>) -> SeriesMajor<'m> {
        SeriesMajor {
            op,
            range,
            modifier,
            ids: HashMap::default(),
            keys: Vec::new(),
            accs: Vec::new(),
            drop_name: Vec::new(),
            first_seen: Vec::new(),
            points: 0,
            series: 0,
        }
    }

    /// Adds the next input series. `false` declines it, and the aggregation is to be done
    /// step by step: native histograms are summed per step, and a new group whose row of
    /// accumulators would make them much larger than the points seen so far means sparse
    /// series in many groups, which the per-step path holds in less memory.
    fn add(&mut self, s: &StepSeries) -> bool {
        let j = self.series;
        self.series += 1;
        if !s.hists.is_empty() {
            return false;
        }
        let Some(first) = s.points.first() else { return true };
        self.points += s.points.len();
        let n = self.range.len();
        // Groups are found by their key's hash and compared with the borrowed labels: a key
        // is built once per group, not once per series.
        let hash = group_hash(&s.labels, self.modifier);
        let found = self.ids.get(&hash).and_then(|groups| {
            groups.iter().copied().find(|&g| self.keys[g].iter().eq(group_labels(&s.labels, self.modifier)))
        });
        let g = match found {
            Some(g) => g,
            None => {
                if (self.keys.len() + 1).saturating_mul(n) > self.points.saturating_mul(2).saturating_add(n) {
                    return false;
                }
                let g = self.keys.len();
                self.ids.entry(hash).or_default().push(g);
                self.keys.push(group_key(&s.labels, self.modifier));
                self.accs.resize(self.accs.len() + n, Acc::default());
                self.drop_name.push(false);
                self.first_seen.push((usize::MAX, usize::MAX));
                g
            }
        };
        self.drop_name[g] |= s.drop_name;
        self.first_seen[g] = self.first_seen[g].min((self.range.index(first.t), j));
        let row = &mut self.accs[g * n..(g + 1) * n];
        // Points are on the step grid and in time order: walk it rather than divide per point.
        let mut i = 0;
        for p in &s.points {
            while i < n && self.range.ts(i) < p.t {
                i += 1;
            }
            if let Some(acc) = row.get_mut(i) {
                acc.add(self.op, p.v);
            }
        }
        true
    }

    fn finish(self) -> Vec<StepSeries> {
        let n = self.range.len();
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_unstable_by_key(|&g| self.first_seen[g]);
        let mut keys: Vec<Option<Labels>> = self.keys.into_iter().map(Some).collect();
        order
            .into_iter()
            .map(|g| {
                let points = self.accs[g * n..(g + 1) * n]
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.count > 0.0)
                    .map(|(i, a)| Sample::new(self.range.ts(i), a.result(self.op)))
                    .collect();
                StepSeries::floats(keys[g].take().unwrap_or_default(), self.drop_name[g], points)
            })
            .collect()
    }
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
    Labels::from_sorted(group_labels(labels, modifier).cloned().collect())
}

/// The labels of `labels` that make its group's key, borrowed, in order.
fn group_labels<'l>(labels: &'l Labels, modifier: Option<&'l LabelModifier>) -> impl Iterator<Item = &'l Label> + 'l {
    labels.iter().filter(move |l| match modifier {
        None => false,
        Some(LabelModifier::Include(m)) => m.labels.contains(&l.name),
        Some(LabelModifier::Exclude(m)) => l.name != METRIC_NAME && !m.labels.contains(&l.name),
    })
}

/// A hash of a series' group key, computed from its borrowed labels.
fn group_hash(labels: &Labels, modifier: Option<&LabelModifier>) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    for l in group_labels(labels, modifier) {
        l.hash(&mut h);
    }
    h.finish()
}

fn accumulate(op: Agg, g: &mut Group, j: usize, v: f64) {
    if matches!(op, Agg::Topk | Agg::Bottomk | Agg::Limitk | Agg::LimitRatio | Agg::Quantile | Agg::CountValues) {
        g.acc.count += 1.0;
        g.values.push((j, v));
    } else {
        g.acc.add(op, v);
    }
}

/// The running value of a float aggregation that needs no list of its inputs (`sum`, `avg`,
/// `count`, `min`, `max`, `group`, `stddev`, `stdvar`) for one group at one step.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental_mean: bool,
}

impl Acc {
    fn add(&mut self, op: Agg, v: f64) {
        let first = self.count == 0.0;
        self.count += 1.0;
        match op {
            Agg::Sum => (self.value, self.kahan) = kahan_inc(v, self.value, self.kahan),
            Agg::Avg => {
                if first {
                    self.value = v;
                    return;
                }
                if !self.incremental_mean {
                    let (nv, nc) = kahan_inc(v, self.value, self.kahan);
                    if !nv.is_infinite() {
                        (self.value, self.kahan) = (nv, nc);
                        return;
                    }
                    self.incremental_mean = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.kahan /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.kahan) = kahan_inc(v / self.count, q * self.mean, q * self.kahan);
            }
            Agg::Min if first || self.value > v || self.value.is_nan() => self.value = v,
            Agg::Max if first || self.value < v || self.value.is_nan() => self.value = v,
            Agg::Stddev | Agg::Stdvar => {
                if first {
                    self.mean = v;
                    self.value = if v.is_finite() { 0.0 } else { f64::NAN };
                    return;
                }
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            _ => {}
        }
    }

    /// The aggregate of the values added so far.
    fn result(&self, op: Agg) -> f64 {
        match op {
            Agg::Sum => self.value + self.kahan,
            Agg::Avg if self.incremental_mean => self.mean + self.kahan,
            Agg::Avg => self.value / self.count + self.kahan / self.count,
            Agg::Count => self.count,
            Agg::Group => 1.0,
            Agg::Stdvar => self.value / self.count,
            Agg::Stddev => (self.value / self.count).sqrt(),
            _ => self.value,
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
        Agg::Sum | Agg::Avg | Agg::Count | Agg::Group | Agg::Min | Agg::Max | Agg::Stdvar | Agg::Stddev => {
            g.acc.result(op)
        }
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
