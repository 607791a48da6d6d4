//! Binary operators: arithmetic, comparison (filtering or `bool`), `atan2`, and the set
//! operators, with `on`/`ignoring` matching and `group_left`/`group_right`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use osprey_model::{CounterResetHint, FloatHistogram, HistogramError, Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::error::PromqlError;
use crate::eval::{by_step_any, intern, Collector, Evaluator, Operand, StepSeries, Val, METADATA_LABELS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
    /// `</`: keep a histogram's observations below the value.
    TrimUpper,
    /// `>/`: keep those above it.
    TrimLower,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }

    fn is_trim(self) -> bool {
        matches!(self, Op::TrimUpper | Op::TrimLower)
    }

    /// Arithmetic results lose the metric name; comparisons filter and keep it, and so
    /// do trims.
    fn drops_name(self) -> bool {
        !self.is_comparison() && !self.is_set() && !self.is_trim()
    }
}

/// The result of an operator on one pair of samples.
enum Elem {
    /// The value (or the histogram) and whether a comparison keeps the sample.
    Value(Option<FloatHistogram>, f64, bool),
    /// The pair is dropped with an info annotation.
    DropInfo(String),
    /// The pair is dropped with a warning.
    DropWarn(String),
}

/// `lhs op rhs` on floats or histograms, as Prometheus's `vectorElemBinop`. `reconciled`
/// is set when custom buckets had to be reconciled (an info, the result is kept).
fn apply_any(op: Op, op_text: &str, l: Operand, r: Operand, reconciled: &mut Option<&'static str>) -> Elem {
    use Operand::{F, H};
    let incompatible = |lt: &str, rt: &str| {
        Elem::DropInfo(format!(
            "incompatible sample types encountered for binary operator {op_text:?}: {lt} {op_text} {rt}"
        ))
    };
    match (l, r) {
        (F(_), F(_)) if op.is_trim() => incompatible("float", "float"),
        (F(l), F(r)) => {
            let (v, keep) = apply(op, l, r);
            Elem::Value(None, v, keep)
        }
        (F(l), H(h)) => match op {
            Op::Mul => Elem::Value(Some(scaled(h, l, false)), 0.0, true),
            _ => incompatible("float", "histogram"),
        },
        (H(h), F(r)) => match op {
            Op::Mul => Elem::Value(Some(scaled(h, r, false)), 0.0, true),
            Op::Div => Elem::Value(Some(scaled(h, r, true)), 0.0, true),
            Op::TrimUpper | Op::TrimLower => {
                let mut h = h.clone();
                h.trim_buckets(r, op == Op::TrimUpper);
                Elem::Value(Some(h), 0.0, true)
            }
            _ => incompatible("histogram", "float"),
        },
        (H(a), H(b)) => match op {
            Op::Add | Op::Sub => {
                let mut res = a.clone();
                let (outcome, what) =
                    if op == Op::Add { (res.add(b), "addition") } else { (res.sub(b), "subtraction") };
                match outcome {
                    Err(HistogramError::IncompatibleSchema) => {
                        Elem::DropWarn(format!("incompatible bucket layout encountered for binary operator {op_text}"))
                    }
                    Ok(notes) if notes.counter_reset_collision => {
                        Elem::DropWarn(format!("conflicting counter resets during histogram {what}"))
                    }
                    Ok(notes) => {
                        if notes.nhcb_bounds_reconciled {
                            *reconciled = Some(what);
                        }
                        if op == Op::Sub {
                            res.counter_reset_hint = CounterResetHint::Gauge;
                        }
                        res.compact();
                        Elem::Value(Some(res), 0.0, true)
                    }
                }
            }
            Op::Eq | Op::Ne => {
                let eq = crate::native::histograms_equal(a, b);
                Elem::Value(Some(a.clone()), 0.0, eq == (op == Op::Eq))
            }
            _ => incompatible("histogram", "histogram"),
        },
    }
}

fn scaled(h: &FloatHistogram, by: f64, divide: bool) -> FloatHistogram {
    let mut h = h.clone();
    if divide {
        h.div(by);
    } else {
        h.mul(by);
    }
    h.compact();
    h
}

/// `lhs op rhs` on floats: the value and whether a comparison keeps the sample.
fn apply(op: Op, l: f64, r: f64) -> (f64, bool) {
    match op {
        Op::Add => (l + r, true),
        Op::Sub => (l - r, true),
        Op::Mul => (l * r, true),
        Op::Div => (l / r, true),
        Op::Mod => (l % r, true),
        Op::Pow => (l.powf(r), true),
        Op::Atan2 => (l.atan2(r), true),
        Op::Eq => (l, l == r),
        Op::Ne => (l, l != r),
        Op::Gt => (l, l > r),
        Op::Lt => (l, l < r),
        Op::Ge => (l, l >= r),
        Op::Le => (l, l <= r),
        Op::And | Op::Or | Op::Unless => (l, true),
        // Trims are defined on histograms only; pairs of floats are dropped.
        Op::TrimUpper | Op::TrimLower => (l, false),
    }
}

pub(crate) fn eval_binary(ev: &mut Evaluator, b: &BinaryExpr) -> Result<Val, PromqlError> {
    let mut op_text = b.op.to_string();
    let mut op =
        Op::parse(&op_text).ok_or_else(|| PromqlError::bad_data(format!("unsupported binary operator {op_text:?}")))?;
    if ev.trims.contains(&(b as *const BinaryExpr as usize)) {
        (op, op_text) = if op == Op::Lt { (Op::TrimUpper, "</".into()) } else { (Op::TrimLower, ">/".into()) };
    }
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = apply(op, l, r);
                    if op.is_comparison() {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => {
            Ok(Val::Vector(vector_scalar(op, &op_text, v, &s, false, return_bool, ev, &binary_pos(ev.query, b))))
        }
        (Val::Scalar(s), Val::Vector(v)) => {
            Ok(Val::Vector(vector_scalar(op, &op_text, v, &s, true, return_bool, ev, &binary_pos(ev.query, b))))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let matching = Matching::from_expr(b, op);
            if op.is_set() {
                set_op(ev, op, &matching, l, r)
            } else {
                let pos = binary_pos(ev.query, b);
                vector_vector(ev, (op, &op_text, &pos), &matching, return_bool, l, r)
            }
        }
        (l, r) => Err(PromqlError::bad_data(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

/// `(line:col)` of a binary expression: where its left operand's text starts, or the
/// query's start.
fn binary_pos(query: &str, b: &BinaryExpr) -> String {
    let lhs = b.lhs.to_string();
    let off = query.find(&lhs).unwrap_or(0);
    let before = &query[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("({line}:{col})")
}

#[allow(clippy::too_many_arguments)]
fn vector_scalar(
    op: Op,
    op_text: &str,
    mut series: Vec<StepSeries>,
    scalar: &[f64],
    swap: bool,
    return_bool: bool,
    ev: &mut Evaluator,
    pos: &str,
) -> Vec<StepSeries> {
    if op.is_trim() {
        for s in &mut series {
            if !s.points.is_empty() {
                ev.info(format!(
                    "incompatible sample types encountered for binary operator {op_text:?}: float {op_text} float {pos}"
                ));
                s.points.clear();
            }
        }
    }
    for s in &mut series {
        s.points.retain_mut(|p| {
            let sv = scalar[ev.range.index(p.t)];
            let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
            let (mut v, keep) = apply(op, l, r);
            if op.is_comparison() && swap {
                v = r;
            }
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            }
            p.v = v;
            keep || return_bool
        });
        if op.drops_name() || return_bool {
            s.drop_name = true;
        }
    }
    // Histograms after floats, so that `bool` results from histograms are not re-evaluated.
    let range = ev.range;
    for s in &mut series {
        let hists = std::mem::take(&mut s.hists);
        for p in hists {
            let sv = Operand::F(scalar[range.index(p.t)]);
            let (l, r) = if swap { (sv, Operand::H(&p.h)) } else { (Operand::H(&p.h), sv) };
            let mut reconciled = None;
            match apply_any(op, op_text, l, r, &mut reconciled) {
                Elem::Value(h, v, keep) => {
                    if return_bool {
                        s.points.push(osprey_model::Sample::new(p.t, if keep { 1.0 } else { 0.0 }));
                    } else if keep {
                        match h {
                            Some(h) => s.hists.push(osprey_model::HistogramSample { t: p.t, h }),
                            None => s.points.push(osprey_model::Sample::new(p.t, v)),
                        }
                    }
                }
                Elem::DropInfo(m) => ev.info(format!("{m} {pos}")),
                Elem::DropWarn(m) => ev.warn(format!("{m} {pos}")),
            }
        }
        s.points.sort_by_key(|p| p.t);
    }
    series.retain(|s| !s.is_empty());
    series
}

/// How two vectors' series are paired.
struct Matching {
    card: VectorMatchCardinality,
    on: bool,
    labels: Vec<String>,
    /// Value for a missing "one"-side sample (`fill_right`, or `fill_left` with group_right).
    fill_one: Option<f64>,
    /// Value for a missing "many"-side sample.
    fill_many: Option<f64>,
}

impl Matching {
    fn from_expr(b: &BinaryExpr, op: Op) -> Matching {
        let default_card =
            if op.is_set() { VectorMatchCardinality::ManyToMany } else { VectorMatchCardinality::OneToOne };
        match &b.modifier {
            None => Matching { card: default_card, on: false, labels: Vec::new(), fill_one: None, fill_many: None },
            Some(m) => {
                let (on, labels) = match &m.matching {
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                    None => (false, Vec::new()),
                };
                let card = if op.is_set() { VectorMatchCardinality::ManyToMany } else { m.card.clone() };
                Matching { card, on, labels, fill_one: m.fill_values.rhs, fill_many: m.fill_values.lhs }
            }
        }
    }

    /// The labels two series must agree on.
    fn signature(&self, labels: &Labels) -> Labels {
        let names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        if self.on {
            labels.only(&names)
        } else {
            let mut names = names;
            names.push(METRIC_NAME);
            labels.without(&names)
        }
    }

    fn include(&self) -> &[String] {
        match &self.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => &l.labels,
            _ => &[],
        }
    }
}

fn set_op(
    ev: &mut Evaluator,
    op: Op,
    matching: &Matching,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
) -> Result<Val, PromqlError> {
    let range = ev.range;
    let lsig_labels: Vec<Labels> = lhs.iter().map(|s| matching.signature(&s.labels)).collect();
    let rsig_labels: Vec<Labels> = rhs.iter().map(|s| matching.signature(&s.labels)).collect();
    let mut ids = rustc_hash::FxHashMap::default();
    let lsig = intern(lsig_labels.iter(), &mut ids);
    let rsig = intern(rsig_labels.iter(), &mut ids);
    let lsteps = by_step_any(&lhs, &range);
    let rsteps = by_step_any(&rhs, &range);
    let mut out = Collector::new();
    let lslots: Vec<usize> = lhs.iter().map(|s| out.slot(s.labels.clone(), s.drop_name)).collect();
    let rslots: Vec<usize> = rhs.iter().map(|s| out.slot(s.labels.clone(), s.drop_name)).collect();
    // Per signature: the last step at which the other side had it (a stamp, so the vector
    // needs no clearing between steps).
    let mut seen = vec![usize::MAX; ids.len()];
    for (i, (ls, rs)) in lsteps.iter().zip(rsteps.iter()).enumerate() {
        ev.check_deadline()?;
        let t = range.ts(i);
        match op {
            Op::And | Op::Unless => {
                for &(j, _) in rs {
                    seen[rsig[j]] = i;
                }
                for &(j, v) in ls {
                    if (seen[lsig[j]] == i) == (op == Op::And) {
                        out.push_operand(lslots[j], t, v)?;
                    }
                }
            }
            _ => {
                for &(j, v) in ls {
                    seen[lsig[j]] = i;
                    out.push_operand(lslots[j], t, v)?;
                }
                for &(j, v) in rs {
                    if seen[rsig[j]] != i {
                        out.push_operand(rslots[j], t, v)?;
                    }
                }
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

fn vector_vector(
    ev: &mut Evaluator,
    (op, op_text, pos): (Op, &str, &str),
    matching: &Matching,
    return_bool: bool,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
) -> Result<Val, PromqlError> {
    let range = ev.range;
    let one_to_many = matches!(matching.card, VectorMatchCardinality::OneToMany(_));
    // The "one" side is always called `one` below; for group_right the sides are swapped
    // (and so are the fill values, as in Prometheus).
    let (many, one) = if one_to_many { (&rhs, &lhs) } else { (&lhs, &rhs) };
    let many_sig_labels: Vec<Labels> = many.iter().map(|s| matching.signature(&s.labels)).collect();
    let one_sig_labels: Vec<Labels> = one.iter().map(|s| matching.signature(&s.labels)).collect();
    let mut ids = rustc_hash::FxHashMap::default();
    let many_sig = intern(many_sig_labels.iter(), &mut ids);
    let one_sig = intern(one_sig_labels.iter(), &mut ids);
    let sig_count = ids.len();
    let many_steps = by_step_any(many, &range);
    let one_steps = by_step_any(one, &range);
    let no_fill = matching.fill_one.is_none() && matching.fill_many.is_none();
    let mut step = StepMatch {
        op,
        op_text,
        infos: Vec::new(),
        warnings: Vec::new(),
        matching,
        return_bool,
        one_to_many,
        one_to_one: matches!(matching.card, VectorMatchCardinality::OneToOne),
        results: HashMap::default(),
        matched: vec![(usize::MAX, Vec::new()); sig_count],
        out: Collector::new(),
    };
    // Per signature at the current step: the "one"-side series and value (stamped).
    let mut one_by_sig: Vec<(usize, usize, Operand)> = vec![(usize::MAX, 0, Operand::F(0.0)); sig_count];
    for (i, (ms, os)) in many_steps.iter().zip(one_steps.iter()).enumerate() {
        ev.check_deadline()?;
        let t = range.ts(i);
        if (ms.is_empty() && os.is_empty()) || ((ms.is_empty() || os.is_empty()) && no_fill) {
            continue;
        }
        for &(j, v) in os {
            let (stamp, dup, _) = one_by_sig[one_sig[j]];
            if stamp == i {
                let side = if one_to_many { "left" } else { "right" };
                // Sorted, so the message does not depend on the input order.
                let mut pair = [one[j].labels.to_string(), one[dup].labels.to_string()];
                pair.sort();
                return Err(PromqlError::execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: \
                     [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    one_sig_labels[j], pair[0], pair[1]
                )));
            }
            one_by_sig[one_sig[j]] = (i, j, v);
        }
        for &(j, v) in ms {
            let sig = many_sig[j];
            match one_by_sig[sig] {
                (stamp, k, ov) if stamp == i => {
                    step.apply(i, t, Side::Series(j), v, Side::Series(k), ov, sig, many, one)?;
                }
                _ => {
                    if let Some(fill) = matching.fill_one {
                        step.apply(i, t, Side::Series(j), v, Side::Filled(j), Operand::F(fill), sig, many, one)?;
                    }
                }
            }
        }
        if let Some(fill) = matching.fill_many {
            for &(k, ov) in os {
                let sig = one_sig[k];
                if step.matched[sig].0 != i {
                    step.apply(i, t, Side::Filled(k), Operand::F(fill), Side::Series(k), ov, sig, one, one)?;
                }
            }
        }
    }
    for m in std::mem::take(&mut step.warnings) {
        ev.warn(format!("{m} {pos}"));
    }
    for m in std::mem::take(&mut step.infos) {
        ev.info(format!("{m} {pos}"));
    }
    Ok(Val::Vector(step.out.finish()))
}

/// One operand of a vector-vector pair: a series of that side, or a fill value standing in
/// for a missing one (labelled with the matching labels of the series at that index).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Series(usize),
    Filled(usize),
}

/// A multiplicative (Fx-style) hash for the series-index keys looked up at every step and
/// pair: SipHash's flooding resistance buys nothing for indices the engine makes itself, and
/// it was 7% of a one-to-one vector-matching query.
#[derive(Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Applies the operator to matched (or filled) pairs, enforces the matching rules and
/// caches each pair's result labels and output slot across steps.
struct StepMatch<'m> {
    op: Op,
    op_text: &'m str,
    /// Annotation texts (without position) raised by pairs of samples.
    infos: Vec<String>,
    warnings: Vec<String>,
    matching: &'m Matching,
    return_bool: bool,
    one_to_many: bool,
    one_to_one: bool,
    /// Output slot per (many, one) pair.
    results: HashMap<(Side, Side), usize, BuildHasherDefault<IndexHasher>>,
    /// Per signature: the step it was last matched at and the output slots produced then.
    matched: Vec<(usize, Vec<usize>)>,
    out: Collector,
}

impl StepMatch<'_> {
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        step: usize,
        t: i64,
        many_side: Side,
        mv: Operand,
        one_side: Side,
        ov: Operand,
        sig: usize,
        many_series: &[StepSeries],
        one_series: &[StepSeries],
    ) -> Result<(), PromqlError> {
        let (l, r) = if self.one_to_many { (ov, mv) } else { (mv, ov) };
        let mut reconciled = None;
        let (mut hist, mut value, keep) = match apply_any(self.op, self.op_text, l, r, &mut reconciled) {
            Elem::Value(h, v, keep) => (h, v, keep),
            Elem::DropInfo(m) => {
                self.infos.push(m);
                return Ok(());
            }
            Elem::DropWarn(m) => {
                self.warnings.push(m);
                return Ok(());
            }
        };
        if let Some(what) = reconciled {
            self.infos.push(format!("mismatched custom buckets were reconciled during {what}"));
        }
        if self.return_bool {
            hist = None;
            value = if keep { 1.0 } else { 0.0 };
        }
        let slot = match self.results.get(&(many_side, one_side)) {
            Some(&slot) => slot,
            None => {
                let labels_of = |side: Side, series: &[StepSeries]| match side {
                    Side::Series(i) => series[i].labels.clone(),
                    Side::Filled(i) => self.matching.signature(&series[i].labels),
                };
                // A filled "many" side is labelled from the "one" series it stands in for.
                let many_labels = match many_side {
                    Side::Filled(_) => labels_of(many_side, one_series),
                    Side::Series(_) => labels_of(many_side, many_series),
                };
                let one_labels = match one_side {
                    Side::Filled(_) => labels_of(one_side, many_series),
                    Side::Series(_) => labels_of(one_side, one_series),
                };
                let labels =
                    result_labels(&many_labels, &one_labels, self.matching, self.one_to_one, self.op.drops_name());
                // A filter keeps the "many" series' labels, so also its pending name removal.
                let many_drops = matches!(many_side, Side::Series(i) if many_series[i].drop_name);
                let slot = self.out.slot(labels, self.return_bool || many_drops);
                self.results.insert((many_side, one_side), slot);
                slot
            }
        };
        // Matching errors are raised before filtering, as Prometheus does.
        let group = &mut self.matched[sig];
        if group.0 != step {
            *group = (step, Vec::new());
        } else if self.one_to_one {
            return Err(PromqlError::execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        } else if group.1.contains(&slot) {
            return Err(PromqlError::execution(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        group.1.push(slot);
        if keep || self.return_bool {
            match hist {
                Some(h) => self.out.push_hist_at(slot, t, h)?,
                None => self.out.push_at(slot, t, value)?,
            }
        }
        Ok(())
    }
}

/// The labels of a vector-vector result: the "many" side's, reduced to the matching labels
/// for one-to-one `on`, without the `ignoring` ones otherwise, plus `group_x` labels from the
/// "one" side. Arithmetic drops the metric name and the other metadata labels at once.
fn result_labels(many: &Labels, one: &Labels, matching: &Matching, one_to_one: bool, drop_metadata: bool) -> Labels {
    let names: Vec<&str> = matching.labels.iter().map(String::as_str).collect();
    let mut base = many.clone();
    if drop_metadata {
        base = base.without(&METADATA_LABELS);
    }
    if one_to_one {
        base = if matching.on { base.only(&names) } else { base.without(&names) };
    }
    if matching.include().is_empty() {
        return base;
    }
    let mut b: LabelsBuilder = base.to_builder();
    for name in matching.include() {
        match one.get(name) {
            Some(v) => b.set(name.clone(), v),
            None => b.del(name),
        };
    }
    b.build()
}
