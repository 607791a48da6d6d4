//! The evaluator: every node is evaluated over all steps of its range at once (as Prometheus's
//! `rangeEval` does), so a range query and an instant query share one code path; an instant
//! query is a range of one step.

// Label-set keys hash with Fx: SipHash's DoS resistance buys nothing for data already stored.
use rustc_hash::FxHashMap as HashMap;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use osprey_model::{
    is_stale_nan, CounterResetHint, FloatHistogram, HistogramSample, Labels, MatchOp, Matcher, MetricsQuerier, Sample,
    SelectRequest, Series, SeriesIter, SeriesStartTimestamps, TenantId, METRIC_NAME,
};
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};

use crate::engine::{EngineOptions, MatrixSeries, QueryContext, QueryOutput, QueryStats, Value, VectorSample};
use crate::error::PromqlError;
use crate::extended::{extend_floats, modifier_of, smoothed_value, take_modifier, Modifier};
use crate::memo::Memo;
use crate::start::{start_at, SeriesStarts, WindowStarts};

/// The steps a node is evaluated at: `start, start+step, …, end`. `step == 0` means one step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EvalRange {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl EvalRange {
    pub fn len(&self) -> usize {
        if self.step == 0 {
            1
        } else {
            ((self.end - self.start) / self.step) as usize + 1
        }
    }

    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// The step index of a timestamp known to be on the grid.
    pub fn index(&self, t: i64) -> usize {
        if self.step == 0 {
            0
        } else {
            ((t - self.start) / self.step) as usize
        }
    }
}

/// A series of an instant-vector expression: one point per step at which it has a value.
/// `drop_name` marks series whose `__name__` is to be removed: by [`Evaluator::eval`] as soon
/// as the node returns, or, with delayed name removal, at the end of evaluation, so that
/// `label_replace` and `by (__name__)` can still see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub points: Vec<Sample>,
    /// Native-histogram points, at steps where the series has no float point.
    pub hists: Vec<HistogramSample>,
}

impl StepSeries {
    /// A series of float points only.
    pub fn floats(labels: Labels, drop_name: bool, points: Vec<Sample>) -> StepSeries {
        StepSeries { labels, drop_name, points, hists: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.hists.is_empty()
    }
}

/// The value of an expression over the evaluation range.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    /// Points at step timestamps.
    Vector(Vec<StepSeries>),
    /// A range vector (only as the result of an instant query or a function argument).
    Matrix(Vec<StepSeries>),
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::String(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }
}

/// A range-vector argument: series with their raw samples, and how to find each step's window.
pub(crate) struct MatrixArg {
    pub series: Vec<StepSeries>,
    /// Start timestamps aligned with `series` when asked for and any series has them
    /// (else empty); `None` for a series without any.
    pub starts: Vec<Option<SeriesStarts>>,
    pub range_ms: i64,
    offset_ms: i64,
    at_ms: Option<i64>,
    /// `anchored` windows also hold the lookback delta before the range; `smoothed` ones
    /// the lookback delta on both sides.
    pub modifier: Modifier,
    lookback_ms: i64,
}

impl MatrixArg {
    /// The right end of the window at step time `ts` (the window is `(end - range, end]`).
    pub fn window_end(&self, ts: i64) -> i64 {
        self.at_ms.unwrap_or(ts) - self.offset_ms
    }

    /// The window's time bounds `(lo, hi]`.
    fn bounds(&self, ts: i64) -> (i64, i64) {
        let end = self.window_end(ts);
        let (before, after) = match self.modifier {
            Modifier::None => (0, 0),
            Modifier::Anchored => (self.lookback_ms, 0),
            Modifier::Smoothed => (self.lookback_ms, self.lookback_ms),
        };
        (end - self.range_ms - before, end + after)
    }

    pub fn window<'s>(&self, series: &'s StepSeries, ts: i64) -> &'s [Sample] {
        let (lo_t, hi_t) = self.bounds(ts);
        let lo = series.points.partition_point(|s| s.t <= lo_t);
        let hi = series.points.partition_point(|s| s.t <= hi_t);
        &series.points[lo..hi]
    }

    /// The float and histogram windows of every step of `range`, in step order. Cheaper than
    /// [`MatrixArg::window`] per step: two forward cursors per kind, O(steps + samples).
    pub fn windows<'s>(
        &'s self,
        series: &'s StepSeries,
        range: EvalRange,
    ) -> impl Iterator<Item = (&'s [Sample], &'s [HistogramSample])> + 's {
        self.window_indices(series, range).map(|(f, h)| (&series.points[f], &series.hists[h]))
    }

    /// As [`MatrixArg::windows`], the windows as index ranges into the series' points and
    /// histograms (to cut data aligned with them, such as start timestamps).
    pub fn window_indices<'s>(
        &'s self,
        series: &'s StepSeries,
        range: EvalRange,
    ) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + 's {
        let (mut floats, mut hists) = (Cursor { lo: 0, hi: 0 }, Cursor { lo: 0, hi: 0 });
        (0..range.len()).map(move |i| {
            let (lo_t, hi_t) = self.bounds(range.ts(i));
            let f = floats.advance(&series.points, |p| p.t, lo_t, hi_t);
            let h = hists.advance(&series.hists, |p| p.t, lo_t, hi_t);
            (f, h)
        })
    }

    /// The start timestamps of series `i` within a window given by index ranges; empty when
    /// it has none.
    pub fn window_starts(&self, i: usize, floats: Range<usize>, hists: Range<usize>) -> WindowStarts<'_> {
        match self.starts.get(i) {
            Some(Some(st)) => WindowStarts { floats: &st.floats[floats], hists: &st.hists[hists] },
            _ => WindowStarts::default(),
        }
    }

    /// The histogram samples of the window at step time `ts`.
    pub fn window_h<'s>(&self, series: &'s StepSeries, ts: i64) -> &'s [HistogramSample] {
        let (lo_t, hi_t) = self.bounds(ts);
        let lo = series.hists.partition_point(|s| s.t <= lo_t);
        let hi = series.hists.partition_point(|s| s.t <= hi_t);
        &series.hists[lo..hi]
    }
}

/// A range-vector argument read in parts (see [`Evaluator::range_arg_parts`]).
pub(crate) enum RangeArgParts<'a> {
    Batches(MatrixBatches<'a>),
    Whole(Option<MatrixArg>),
}

impl RangeArgParts<'_> {
    pub fn modifier(&self) -> Option<Modifier> {
        match self {
            RangeArgParts::Batches(b) => Some(b.modifier),
            RangeArgParts::Whole(arg) => arg.as_ref().map(|a| a.modifier),
        }
    }
}

/// A matrix selector being read in batches of series (see [`Evaluator::next_matrix_batch`]).
pub(crate) struct MatrixBatches<'a> {
    stream: RawStream<'a>,
    range_ms: i64,
    offset_ms: i64,
    at_ms: Option<i64>,
    modifier: Modifier,
    lookback_ms: i64,
}

impl MatrixBatches<'_> {
    fn arg(&self, series: Vec<StepSeries>, starts: Vec<Option<SeriesStarts>>) -> MatrixArg {
        MatrixArg {
            series,
            starts,
            range_ms: self.range_ms,
            offset_ms: self.offset_ms,
            at_ms: self.at_ms,
            modifier: self.modifier,
            lookback_ms: self.lookback_ms,
        }
    }
}

/// Collects per-step outputs into series keyed by label set, as Prometheus does, and by
/// whether the name is to be dropped: `x or rate(x[1m])` keeps the named left series apart
/// from the right one whose name goes, so they do not merge under the left one's name.
pub(crate) struct Collector {
    index: HashMap<(Labels, bool), usize>,
    out: Vec<StepSeries>,
}

impl Collector {
    pub fn new() -> Collector {
        Collector { index: HashMap::default(), out: Vec::new() }
    }

    pub fn push(&mut self, labels: Labels, drop_name: bool, t: i64, v: f64) -> Result<(), PromqlError> {
        let slot = self.slot(labels, drop_name);
        self.push_at(slot, t, v)
    }

    /// The output series for a label set, created on first use; callers that produce the
    /// same label set at every step cache the slot instead of hashing labels each time.
    pub fn slot(&mut self, labels: Labels, drop_name: bool) -> usize {
        let key = (labels, drop_name);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let labels = key.0.clone();
        self.index.insert(key, self.out.len());
        self.out.push(StepSeries::floats(labels, drop_name, Vec::new()));
        self.out.len() - 1
    }

    /// Marks an output series for delayed name removal.
    pub fn set_drop_name(&mut self, slot: usize) {
        self.out[slot].drop_name = true;
    }

    /// Adds a point to an output series; two points at one step mean two inputs produced
    /// the same label set.
    pub fn push_at(&mut self, slot: usize, t: i64, v: f64) -> Result<(), PromqlError> {
        let s = &mut self.out[slot];
        if s.points.last().is_some_and(|p| p.t == t) || s.hists.last().is_some_and(|p| p.t == t) {
            return Err(PromqlError::execution("vector cannot contain metrics with the same labelset"));
        }
        s.points.push(Sample::new(t, v));
        Ok(())
    }

    /// Adds `v` to the point of a series at `t`, or adds the point: `count_values` groups
    /// that differ only in the label it overwrites are one group in Prometheus.
    pub fn add(&mut self, labels: Labels, drop_name: bool, t: i64, v: f64) {
        let slot = self.slot(labels, drop_name);
        match self.out[slot].points.last_mut() {
            Some(p) if p.t == t => p.v += v,
            _ => self.out[slot].points.push(Sample::new(t, v)),
        }
    }

    pub fn push_hist(&mut self, labels: Labels, drop_name: bool, t: i64, h: FloatHistogram) -> Result<(), PromqlError> {
        let slot = self.slot(labels, drop_name);
        self.push_hist_at(slot, t, h)
    }

    pub fn push_hist_at(&mut self, slot: usize, t: i64, h: FloatHistogram) -> Result<(), PromqlError> {
        let s = &mut self.out[slot];
        if s.points.last().is_some_and(|p| p.t == t) || s.hists.last().is_some_and(|p| p.t == t) {
            return Err(PromqlError::execution("vector cannot contain metrics with the same labelset"));
        }
        s.hists.push(HistogramSample { t, h });
        Ok(())
    }

    /// Adds a float or a histogram point.
    pub fn push_operand(&mut self, slot: usize, t: i64, v: Operand) -> Result<(), PromqlError> {
        match v {
            Operand::F(f) => self.push_at(slot, t, f),
            Operand::H(h) => self.push_hist_at(slot, t, h.clone()),
        }
    }

    /// The output, without series that never received a point.
    pub fn finish(mut self) -> Vec<StepSeries> {
        self.out.retain(|s| !s.is_empty());
        self.out
    }
}

/// Numbers each distinct label set (e.g. matching signatures) so that per-step work
/// indexes vectors instead of hashing labels.
pub(crate) fn intern<'l>(sets: impl Iterator<Item = &'l Labels>, ids: &mut HashMap<&'l Labels, usize>) -> Vec<usize> {
    sets.map(|l| {
        let next = ids.len();
        *ids.entry(l).or_insert(next)
    })
    .collect()
}

/// Points regrouped by step: for each step, the (series index, value) pairs of the series
/// with a point there, in series order. One flat allocation filled by counting sort, rather
/// than a vector per step grown point by point (range queries regroup millions of points).
pub(crate) struct Steps<T> {
    /// `items[offsets[i]..offsets[i + 1]]` are step `i`'s points.
    offsets: Vec<usize>,
    items: Vec<(usize, T)>,
}

impl<T: Copy> Steps<T> {
    /// Regroups `points(series)` (each `(time on the grid, value)`) of every series.
    fn build<'s, I>(series: &'s [StepSeries], range: &EvalRange, points: impl Fn(&'s StepSeries) -> I) -> Steps<T>
    where
        I: Iterator<Item = (i64, T)>,
    {
        let mut offsets = vec![0usize; range.len() + 1];
        let mut first = None;
        for s in series {
            for (t, v) in points(s) {
                offsets[range.index(t) + 1] += 1;
                first.get_or_insert(v);
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let Some(first) = first else { return Steps { offsets, items: Vec::new() } };
        // Every slot is overwritten below; `first` only gives them an initial value.
        let mut items = vec![(0, first); offsets[range.len()]];
        let mut next = offsets.clone();
        for (j, s) in series.iter().enumerate() {
            for (t, v) in points(s) {
                let slot = &mut next[range.index(t)];
                items[*slot] = (j, v);
                *slot += 1;
            }
        }
        Steps { offsets, items }
    }

    pub fn iter(&self) -> impl Iterator<Item = &[(usize, T)]> + '_ {
        (0..self.offsets.len() - 1).map(|i| &self[i])
    }
}

impl<T> std::ops::Index<usize> for Steps<T> {
    type Output = [(usize, T)];

    fn index(&self, i: usize) -> &[(usize, T)] {
        match self.items.get(self.offsets[i]..self.offsets[i + 1]) {
            Some(step) => step,
            None => &[],
        }
    }
}

/// For each step, the (series index, value) pairs of the series that have a point there.
pub(crate) fn by_step(series: &[StepSeries], range: &EvalRange) -> Steps<f64> {
    Steps::build(series, range, |s| s.points.iter().map(|p| (p.t, p.v)))
}

/// For each step, the (series index, histogram) pairs of the series with a histogram there.
pub(crate) fn by_step_h<'s>(series: &'s [StepSeries], range: &EvalRange) -> Steps<&'s FloatHistogram> {
    Steps::build(series, range, |s| s.hists.iter().map(|p| (p.t, &p.h)))
}

/// A value at one step: a float or a native histogram.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operand<'a> {
    F(f64),
    H(&'a FloatHistogram),
}

/// For each step, the (series index, value) pairs of every series with a point there,
/// floats and histograms alike, in series order.
pub(crate) fn by_step_any<'s>(series: &'s [StepSeries], range: &EvalRange) -> Steps<Operand<'s>> {
    Steps::build(series, range, |s| {
        s.points.iter().map(|p| (p.t, Operand::F(p.v))).chain(s.hists.iter().map(|p| (p.t, Operand::H(&p.h))))
    })
}

/// A series read from storage: float samples (with staleness markers) and histogram samples,
/// and, when asked for, the `(sample time, start time)` pairs of samples with a start.
pub(crate) struct RawSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub hists: Vec<HistogramSample>,
    pub starts: Vec<(i64, i64)>,
}

/// A selector's read in progress: its series one at a time, and their start timestamps
/// (read whole, in label order; empty unless asked for).
pub(crate) struct RawStream<'a> {
    series: SeriesIter<'a>,
    starts: std::iter::Peekable<std::vec::IntoIter<SeriesStartTimestamps>>,
}

/// Which samples of each series a selector reads in its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Newest {
    /// The newest alone.
    Only,
    /// All of them.
    AndOlder,
}

/// What an instant selector's points hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// The sample's value.
    Value,
    /// The sample's timestamp in seconds (`timestamp()`).
    SampleTime,
    /// The sample's start timestamp in seconds, 0 for none (`start_timestamp()`).
    StartTime,
}

pub(crate) struct Evaluator<'a> {
    storage: &'a dyn MetricsQuerier,
    tenant: &'a TenantId,
    pub opts: &'a EngineOptions,
    ctx: &'a QueryContext,
    pub query: &'a str,
    pub range: EvalRange,
    /// The outermost query's range and step, which `@ start()` / `@ end()`, `start()`,
    /// `end()`, `step()` and `range()` refer to (also inside subqueries).
    pub query_range: EvalRange,
    pub(crate) stats: QueryStats,
    /// Set while evaluating the argument of `histogram_count/sum/avg` (outside subqueries):
    /// Prometheus then reads histograms through its stats iterator, which turns
    /// "unknown" counter-reset hints into definite ones by comparing with the previous
    /// sample read. Selectors emulate that so hint-dependent annotations match.
    pub stats_decoding: bool,
    /// Addresses of the binary nodes that are trim operators (`</`, `>/`).
    pub trims: std::collections::HashSet<usize>,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    d.as_millis() as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(
        storage: &'a dyn MetricsQuerier,
        tenant: &'a TenantId,
        opts: &'a EngineOptions,
        ctx: &'a QueryContext,
        query: &'a str,
        range: EvalRange,
    ) -> Evaluator<'a> {
        Evaluator {
            storage,
            tenant,
            opts,
            ctx,
            query,
            range,
            query_range: range,
            stats: QueryStats::default(),
            stats_decoding: false,
            trims: Default::default(),
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    pub fn finish(self, value: Value) -> QueryOutput {
        let mut stats = self.stats;
        stats.eval_time = self.ctx.elapsed();
        let mut warnings = self.warnings;
        let mut infos = self.infos;
        warnings.dedup();
        infos.sort();
        infos.dedup();
        QueryOutput { value, warnings, infos, stats }
    }

    pub fn warn(&mut self, text: String) {
        let w = format!("PromQL warning: {text}");
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    pub fn info(&mut self, text: String) {
        let i = format!("PromQL info: {text}");
        if !self.infos.contains(&i) {
            self.infos.push(i);
        }
    }

    /// Fails once the query is cancelled or past its deadline; called in long loops.
    pub fn check_deadline(&self) -> Result<(), PromqlError> {
        self.ctx.check()
    }

    /// Counts samples held by a value against `max_samples`.
    pub fn account(&mut self, n: usize) -> Result<(), PromqlError> {
        self.stats.peak_samples = self.stats.peak_samples.max(n as u64);
        if n > self.opts.max_samples {
            return Err(PromqlError::too_many_samples());
        }
        self.ctx.check()
    }

    pub fn eval_instant(&mut self, expr: &Expr) -> Result<Value, PromqlError> {
        let t = self.range.start;
        Ok(match self.eval(expr)? {
            Val::Scalar(v) => Value::Scalar { t, v: v[0] },
            Val::String(s) => Value::String { t, v: s },
            Val::Vector(series) => {
                let series = finalize_names(series)?;
                Value::Vector(
                    series
                        .into_iter()
                        .filter_map(|s| match (s.points.first(), s.hists.first()) {
                            (Some(p), _) => Some(VectorSample { labels: s.labels.clone(), t, v: p.v, h: None }),
                            (None, Some(h)) => {
                                Some(VectorSample { labels: s.labels.clone(), t, v: 0.0, h: Some(h.h.clone()) })
                            }
                            (None, None) => None,
                        })
                        .collect(),
                )
            }
            Val::Matrix(series) => {
                let series = finalize_names(series)?;
                Value::Matrix(
                    series
                        .into_iter()
                        .map(|s| MatrixSeries { labels: s.labels, samples: s.points, histograms: s.hists })
                        .collect(),
                )
            }
        })
    }

    pub fn eval_range(&mut self, expr: &Expr) -> Result<Value, PromqlError> {
        let val = self.eval(expr)?;
        let mut series = match val {
            Val::Scalar(v) => vec![MatrixSeries {
                labels: Labels::empty(),
                samples: v.iter().enumerate().map(|(i, v)| Sample::new(self.range.ts(i), *v)).collect(),
                histograms: Vec::new(),
            }],
            Val::Vector(series) => finalize_names(series)?
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| MatrixSeries { labels: s.labels, samples: s.points, histograms: s.hists })
                .collect(),
            other => {
                return Err(PromqlError::bad_data(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other.type_name()
                )))
            }
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Value::Matrix(series))
    }

    /// Evaluates a node. Without delayed name removal, a name the node dropped is removed
    /// here, before any parent node sees the series (Prometheus's default).
    pub fn eval(&mut self, expr: &Expr) -> Result<Val, PromqlError> {
        match self.eval_node(expr)? {
            Val::Vector(series) if !self.opts.delayed_name_removal => {
                let mut series = finalize_names(series)?;
                for s in &mut series {
                    s.drop_name = false;
                }
                Ok(Val::Vector(series))
            }
            other => Ok(other),
        }
    }

    fn eval_node(&mut self, expr: &Expr) -> Result<Val, PromqlError> {
        self.ctx.check()?;
        let n = self.range.len();
        match expr {
            Expr::NumberLiteral(l) => Ok(Val::Scalar(vec![l.val; n])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
                Val::Vector(mut series) => {
                    for s in &mut series {
                        s.drop_name = true;
                        for p in &mut s.points {
                            p.v = -p.v;
                        }
                        for p in &mut s.hists {
                            p.h.mul(-1.0);
                        }
                    }
                    Ok(Val::Vector(series))
                }
                other => Err(PromqlError::execution(format!("unary minus on {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, Reading::Value)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let arg = self.eval_matrix_arg(expr, false)?;
                let ts = self.range.start;
                let series = arg
                    .series
                    .iter()
                    .filter_map(|s| {
                        let w = arg.window(s, ts);
                        let points = match arg.modifier {
                            Modifier::None => w.to_vec(),
                            m => {
                                let end = arg.window_end(ts);
                                extend_floats(w, end - arg.range_ms, end, m == Modifier::Smoothed)
                            }
                        };
                        let hists = arg.window_h(s, ts).to_vec();
                        (!points.is_empty() || !hists.is_empty()).then(|| StepSeries {
                            labels: s.labels.clone(),
                            drop_name: s.drop_name,
                            points,
                            hists,
                        })
                    })
                    .collect();
                Ok(Val::Matrix(series))
            }
            Expr::Call(call) => crate::functions::eval_call(self, call),
            Expr::Aggregate(agg) => crate::aggregate::eval_aggregate(self, agg),
            Expr::Binary(b) => crate::binary::eval_binary(self, b),
            Expr::Extension(_) => Err(PromqlError::bad_data("extension expressions are not supported")),
        }
    }

    /// Evaluates an argument that must be a scalar (one value per step).
    pub fn eval_scalar(&mut self, expr: &Expr) -> Result<Vec<f64>, PromqlError> {
        match self.eval(expr)? {
            Val::Scalar(v) => Ok(v),
            other => Err(PromqlError::bad_data(format!("expected scalar, got {}", other.type_name()))),
        }
    }

    pub fn eval_vector(&mut self, expr: &Expr) -> Result<Vec<StepSeries>, PromqlError> {
        match self.eval(expr)? {
            Val::Vector(v) => Ok(v),
            other => Err(PromqlError::bad_data(format!("expected instant vector, got {}", other.type_name()))),
        }
    }

    /// Evaluates an instant-vector expression and hands its series to `sink` one at a time,
    /// named as [`Evaluator::eval`] returns them. A range function over a selector is
    /// evaluated series by series, so its whole result is never held at once (an aggregation
    /// over it keeps only its groups); other expressions are evaluated whole first.
    pub fn eval_vector_each(
        &mut self,
        expr: &Expr,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), PromqlError>,
    ) -> Result<(), PromqlError> {
        let call = match expr {
            Expr::Paren(p) => return self.eval_vector_each(&p.expr, sink),
            Expr::Call(call) if crate::functions::is_range_function_of_selector(expr) => call,
            _ => return self.eval_vector(expr)?.into_iter().try_for_each(sink),
        };
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        let drop_now = !self.opts.delayed_name_removal;
        // As `eval` would: names go at once, and two results left with one label set fail.
        // Label sets are remembered by their 64-bit hash, as Prometheus's engine keys its
        // results: copies of every label set took a tenth of an instant query over 4k series.
        let mut seen = rustc_hash::FxHashSet::default();
        crate::functions::each_range_function_series(self, call.func.name, &args, &mut |mut s| {
            if drop_now && s.drop_name {
                s.labels.remove(&METADATA_LABELS);
                s.drop_name = false;
                if !seen.insert(s.labels.stable_hash()) {
                    return Err(PromqlError::execution("vector cannot contain metrics with the same labelset"));
                }
            }
            sink(s)
        })?;
        Ok(())
    }

    pub fn eval_string(&mut self, expr: &Expr) -> Result<String, PromqlError> {
        match self.eval(expr)? {
            Val::String(s) => Ok(s),
            other => Err(PromqlError::bad_data(format!("expected string, got {}", other.type_name()))),
        }
    }

    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_range.start,
            AtModifier::End => self.query_range.end,
            AtModifier::At(t) => system_time_ms(t),
        })
    }

    /// The reference times (after `@` and offset) of every step.
    fn ref_times(&self, at: Option<i64>, offset: i64) -> (i64, i64) {
        match at {
            Some(t) => (t - offset, t - offset),
            None => (self.range.start - offset, self.range.end - offset),
        }
    }

    /// Starts reading the float and histogram samples of the series a selector matches in
    /// `[start, end]`, and with `with_starts` (when the engine uses them) their start
    /// timestamps; [`Evaluator::next_raw`] hands the series over one at a time, so a
    /// selector holds one series' samples rather than every matching one's.
    fn select(
        &mut self,
        vs: &VectorSelector,
        start: i64,
        end: i64,
        with_starts: bool,
        newest: Newest,
    ) -> Result<RawStream<'a>, PromqlError> {
        let request = SelectRequest { matchers: convert_matchers(vs)?, start, end };
        let starts = if with_starts && self.opts.use_start_timestamps {
            self.storage.select_start_timestamps(self.tenant, &request)?
        } else {
            Vec::new()
        };
        let series = match newest {
            Newest::Only => self.storage.select_newest(self.tenant, &request)?,
            Newest::AndOlder => self.storage.select_series(self.tenant, &request)?,
        };
        Ok(RawStream { series, starts: starts.into_iter().peekable() })
    }

    /// The next series of a selector's read, in label order.
    fn next_raw(&mut self, stream: &mut RawStream) -> Result<Option<RawSeries>, PromqlError> {
        let Some(s) = stream.series.next().transpose()? else { return Ok(None) };
        self.ctx.check()?;
        self.stats.total_samples += (s.floats.len() + s.histograms.len()) as u64;
        while stream.starts.next_if(|st| st.labels < s.labels).is_some() {}
        let starts = stream.starts.next_if(|st| st.labels == s.labels).map(|st| st.starts).unwrap_or_default();
        let mut hists = s.histograms;
        if self.stats_decoding {
            for i in 1..hists.len() {
                let (before, after) = hists.split_at_mut(i);
                let (prev, cur) = (&before[i - 1].h, &mut after[0].h);
                if cur.counter_reset_hint == CounterResetHint::Unknown {
                    cur.counter_reset_hint = if cur.detect_reset(prev) {
                        CounterResetHint::CounterReset
                    } else {
                        CounterResetHint::NotCounterReset
                    };
                }
            }
        }
        Ok(Some(RawSeries { labels: s.labels, samples: s.floats, hists, starts }))
    }

    /// Reads the series matching `matchers` with samples in `[start, end]`.
    pub fn select_matchers(
        &mut self,
        matchers: Vec<Matcher>,
        start: i64,
        end: i64,
    ) -> Result<Vec<Series>, PromqlError> {
        let series = self.storage.select(self.tenant, &SelectRequest { matchers, start, end })?;
        // Raw samples are statistics only: like Prometheus, the limit applies to what
        // evaluation holds per step (selector points, range windows), so long ranges at a
        // coarse step are not refused for samples they never keep.
        self.stats.total_samples += series.iter().map(|s| s.samples.len() as u64).sum::<u64>();
        self.ctx.check()?;
        Ok(series)
    }

    /// Whether series matching `matchers` have native-histogram samples in `[start, end]`.
    pub fn has_histograms(&mut self, matchers: Vec<Matcher>, start: i64, end: i64) -> Result<bool, PromqlError> {
        let series = self.storage.select_histograms(self.tenant, &SelectRequest { matchers, start, end })?;
        Ok(series.iter().any(|s| !s.samples.is_empty()))
    }

    /// The sample an instant selector sees at step time `ts`: the latest one in
    /// `(t - lookback, t]` (t after `@` and offset), unless it is a staleness marker.
    pub fn sample_at(&self, samples: &[Sample], at: Option<i64>, offset: i64, ts: i64) -> Option<Sample> {
        let rt = at.unwrap_or(ts) - offset;
        let idx = samples.partition_point(|x| x.t <= rt);
        let sample = *samples.get(idx.checked_sub(1)?)?;
        (sample.t > rt - self.opts.lookback_delta_ms && !is_stale_nan(sample.v)).then_some(sample)
    }

    /// An instant selector: per step, the latest sample in `(t - lookback, t]` unless it is a
    /// staleness marker. Points carry what `reading` says: the value, or the sample's own
    /// timestamp (`timestamp()`) or start timestamp (`start_timestamp()`).
    pub fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        reading: Reading,
    ) -> Result<Vec<StepSeries>, PromqlError> {
        let at = self.at_ms(&vs.at);
        let offset = offset_ms(&vs.offset);
        let lookback = self.opts.lookback_delta_ms;
        let smoothed = modifier_of(vs) == Modifier::Smoothed;
        let (min_ref, max_ref) = self.ref_times(at, offset);
        let ahead = if smoothed { lookback } else { 0 };
        let (lo, hi) = (min_ref - lookback + 1, max_ref + ahead);
        // `timestamp(x offset o @ t)`: Prometheus replaces the offset by `step - t` (its fix
        // for issue 8433), so it looks up the latest sample at `t` itself, among the samples
        // its storage read for the selector's own window.
        let at_own_time = reading != Reading::Value && at.is_some();
        // One step at the window's end reads each series' newest sample alone, which storage
        // finds without decoding its older samples; unless histograms are read as
        // Prometheus's statistics iterator reads them, whose counter-reset hints compare each
        // sample with the one before.
        let one_step = self.range.len() == 1 && !smoothed && !at_own_time && !self.stats_decoding;
        let newest = if one_step { Newest::Only } else { Newest::AndOlder };
        let mut stream = self.select(vs, lo, hi, reading == Reading::StartTime, newest)?;
        let offset = if at_own_time { 0 } else { offset };
        let mut out = Vec::new();
        let mut total = 0;
        while let Some(mut s) = self.next_raw(&mut stream)? {
            if at_own_time {
                s.samples.retain(|x| (lo..=hi).contains(&x.t));
                s.hists.retain(|x| (lo..=hi).contains(&x.t));
            }
            // A sample gives a point to at most the steps within the lookback after it.
            let per_sample = (lookback / self.range.step.max(1)) as usize + 1;
            let mut points = Vec::with_capacity(self.range.len().min(s.samples.len().saturating_mul(per_sample)));
            let mut hists = Vec::new();
            if smoothed {
                s.samples.retain(|x| !is_stale_nan(x.v));
            }
            // Reference times only grow with the step, so the latest sample is found by
            // forward cursors rather than binary searches per step.
            let (mut fcur, mut hcur) = (Cursor { lo: 0, hi: 0 }, Cursor { lo: 0, hi: 0 });
            for i in 0..self.range.len() {
                let ts = self.range.ts(i);
                let sample = if smoothed {
                    let t = at.unwrap_or(ts) - offset;
                    let lo = s.samples.partition_point(|x| x.t <= t - lookback);
                    let hi = s.samples.partition_point(|x| x.t <= t + lookback);
                    let hlo = s.hists.partition_point(|x| x.t <= t - lookback);
                    let hhi = s.hists.partition_point(|x| x.t <= t + lookback);
                    if hlo < hhi {
                        let mut notes = crate::native::Notes::default();
                        if lo < hi {
                            notes.mixed_floats_histograms = true;
                        } else if let Some(h) = crate::native::smoothed_histogram(&s.hists[hlo..hhi], t, &mut notes) {
                            hists.push(HistogramSample { t: ts, h });
                        }
                        // The annotation points at the selector, found by its metric name.
                        let at_name = vs.name.as_deref().and_then(|n| self.query.find(n)).unwrap_or(0);
                        let pos = crate::scan::format_pos(self.query, at_name);
                        crate::functions::report_notes(self, &notes, &s.labels, &pos);
                        continue;
                    }
                    smoothed_value(&s.samples[lo..hi], t).map(|v| Sample::new(t, v))
                } else {
                    let rt = at.unwrap_or(ts) - offset;
                    // The latest sample of either kind wins; a later staleness marker hides
                    // a histogram as it hides a float.
                    let hi = hcur.upto(&s.hists, |x| x.t, rt);
                    let last_float = fcur.upto(&s.samples, |x| x.t, rt).checked_sub(1).map(|i| s.samples[i]);
                    match hi.checked_sub(1).map(|i| &s.hists[i]) {
                        Some(h) if h.t > rt - lookback && last_float.is_none_or(|f| f.t < h.t) => {
                            match reading {
                                Reading::Value => hists.push(HistogramSample { t: ts, h: h.h.clone() }),
                                Reading::SampleTime => points.push(Sample::new(ts, h.t as f64 / 1000.0)),
                                Reading::StartTime => {
                                    points.push(Sample::new(ts, start_at(&s.starts, h.t) as f64 / 1000.0))
                                }
                            }
                            continue;
                        }
                        _ => last_float.filter(|x| x.t > rt - lookback && !is_stale_nan(x.v)),
                    }
                };
                if let Some(sample) = sample {
                    let v = match reading {
                        Reading::Value => sample.v,
                        Reading::SampleTime => sample.t as f64 / 1000.0,
                        Reading::StartTime => start_at(&s.starts, sample.t) as f64 / 1000.0,
                    };
                    points.push(Sample::new(ts, v));
                }
            }
            total += points.len() + hists.len();
            if total > self.opts.max_samples {
                // Fails before reading further.
                self.account(total)?;
            }
            if !points.is_empty() || !hists.is_empty() {
                out.push(StepSeries { labels: s.labels, drop_name: false, points, hists });
            }
        }
        self.account(total)?;
        Ok(out)
    }

    /// A range-vector argument: a matrix selector or a subquery (possibly parenthesised).
    /// `with_starts` asks for the selector's start timestamps (subqueries have none).
    pub fn eval_matrix_arg(&mut self, expr: &Expr, with_starts: bool) -> Result<MatrixArg, PromqlError> {
        match expr {
            Expr::Paren(p) => self.eval_matrix_arg(&p.expr, with_starts),
            Expr::MatrixSelector(ms) => self.eval_matrix_selector(ms, with_starts),
            Expr::Subquery(sq) => self.eval_subquery(sq),
            _ => Err(PromqlError::bad_data(format!(
                "expected type range vector in call to function, got {}",
                self.eval(expr)?.type_name()
            ))),
        }
    }

    /// A range-vector argument to be read in parts: a matrix selector batch by batch (so the
    /// raw samples of its whole range are never all held), a subquery at once.
    pub fn range_arg_parts(&mut self, expr: &Expr, with_starts: bool) -> Result<RangeArgParts<'a>, PromqlError> {
        match expr {
            Expr::Paren(p) => self.range_arg_parts(&p.expr, with_starts),
            Expr::MatrixSelector(ms) => Ok(RangeArgParts::Batches(self.matrix_batches(ms, with_starts)?)),
            _ => Ok(RangeArgParts::Whole(Some(self.eval_matrix_arg(expr, with_starts)?))),
        }
    }

    /// The next part of a range-vector argument; `None` once all are read.
    pub fn next_range_arg(&mut self, parts: &mut RangeArgParts) -> Result<Option<MatrixArg>, PromqlError> {
        match parts {
            RangeArgParts::Batches(b) => self.next_matrix_batch(b, self.opts.range_batch_samples),
            RangeArgParts::Whole(arg) => Ok(arg.take()),
        }
    }

    fn eval_matrix_selector(&mut self, ms: &MatrixSelector, with_starts: bool) -> Result<MatrixArg, PromqlError> {
        let mut batches = self.matrix_batches(ms, with_starts)?;
        let arg =
            self.next_matrix_batch(&mut batches, usize::MAX)?.unwrap_or_else(|| batches.arg(Vec::new(), Vec::new()));
        self.account_windows(&arg)?;
        Ok(arg)
    }

    /// Starts reading a matrix selector's series for [`Evaluator::next_matrix_batch`].
    fn matrix_batches(&mut self, ms: &MatrixSelector, with_starts: bool) -> Result<MatrixBatches<'a>, PromqlError> {
        let vs = &ms.vs;
        let at = self.at_ms(&vs.at);
        let offset = offset_ms(&vs.offset);
        let range_ms = duration_ms(&ms.range);
        let (min_ref, max_ref) = self.ref_times(at, offset);
        let modifier = modifier_of(vs);
        let lookback_ms = self.opts.lookback_delta_ms;
        let (before, after) = match modifier {
            Modifier::None => (0, 0),
            Modifier::Anchored => (lookback_ms, 0),
            Modifier::Smoothed => (lookback_ms, lookback_ms),
        };
        let stream =
            self.select(vs, min_ref - range_ms - before + 1, max_ref + after, with_starts, Newest::AndOlder)?;
        Ok(MatrixBatches { stream, range_ms, offset_ms: offset, at_ms: at, modifier, lookback_ms })
    }

    /// The next series of a matrix selector, as many as hold about `max_raw` raw samples and
    /// result points (at least one series); `None` once all are read. The caller counts the windows
    /// against `max_samples`.
    fn next_matrix_batch(
        &mut self,
        batches: &mut MatrixBatches,
        max_raw: usize,
    ) -> Result<Option<MatrixArg>, PromqlError> {
        let mut raw = Vec::new();
        let mut held = 0usize;
        while held < max_raw {
            let Some(s) = self.next_raw(&mut batches.stream)? else { break };
            // A histogram holds its buckets: weigh it as several floats. The series' result
            // (a point per step at most) is held with the batch too.
            held += s.samples.len() + 8 * s.hists.len() + self.range.len();
            raw.push(s);
        }
        if raw.is_empty() {
            return Ok(None);
        }
        let any_starts = raw.iter().any(|s| !s.starts.is_empty());
        let mut starts = Vec::new();
        let mut series = Vec::with_capacity(raw.len());
        for s in raw {
            let step_series = StepSeries {
                labels: s.labels,
                drop_name: false,
                points: s.samples.into_iter().filter(|x| !is_stale_nan(x.v)).collect(),
                hists: s.hists,
            };
            if any_starts {
                starts.push(SeriesStarts::align(&s.starts, &step_series));
            }
            series.push(step_series);
        }
        Ok(Some(batches.arg(series, starts)))
    }

    /// Counts the samples each step's windows hold, the memory Prometheus would need.
    fn account_windows(&mut self, arg: &MatrixArg) -> Result<(), PromqlError> {
        // Window bounds only grow with the step time, so one forward sweep per series with two
        // cursors counts every window (O(steps + samples) instead of four binary searches per
        // step and series, which dominated range queries over many series).
        let mut counts = vec![0usize; self.range.len()];
        for s in &arg.series {
            for (count, (w, wh)) in counts.iter_mut().zip(arg.windows(s, self.range)) {
                *count += w.len() + wh.len();
            }
        }
        self.account(counts.iter().copied().max().unwrap_or(0))
    }

    fn eval_subquery(&mut self, sq: &SubqueryExpr) -> Result<MatrixArg, PromqlError> {
        let at = self.at_ms(&sq.at);
        let offset = offset_ms(&sq.offset);
        let range_ms = duration_ms(&sq.range);
        let step = match &sq.step {
            Some(d) if !d.is_zero() => duration_ms(d),
            _ => self.opts.default_subquery_step_ms.unwrap_or(60_000),
        };
        let (min_ref, max_ref) = self.ref_times(at, offset);
        // Inner steps are absolute multiples of the subquery step, as in Prometheus.
        let lower = min_ref - range_ms;
        let mut start = lower.div_euclid(step) * step;
        if start <= lower {
            start += step;
        }
        let inner_range = EvalRange { start, end: max_ref.max(start), step };
        let mut series = if start > max_ref {
            Vec::new()
        } else {
            let saved = (self.range, self.stats_decoding);
            self.range = inner_range;
            self.stats_decoding = false;
            let res = self.eval_vector(&sq.expr);
            (self.range, self.stats_decoding) = saved;
            res?
        };
        // As Prometheus: definite counter-reset hints become "unknown", since the subquery
        // may skip the sample with a reset or return it several times.
        for s in &mut series {
            for p in &mut s.hists {
                if matches!(p.h.counter_reset_hint, CounterResetHint::NotCounterReset | CounterResetHint::CounterReset)
                {
                    p.h.counter_reset_hint = CounterResetHint::Unknown;
                }
            }
        }
        let arg = MatrixArg {
            series,
            starts: Vec::new(),
            range_ms,
            offset_ms: offset,
            at_ms: at,
            modifier: Modifier::None,
            lookback_ms: self.opts.lookback_delta_ms,
        };
        self.account_windows(&arg)?;
        Ok(arg)
    }
}

/// A forward-only window over samples sorted by time: since window bounds never decrease
/// from one step to the next, each step moves two cursors instead of binary-searching.
struct Cursor {
    lo: usize,
    hi: usize,
}

impl Cursor {
    /// The indices of `items` in `(lo_t, hi_t]`; bounds must not decrease between calls.
    fn advance<T>(&mut self, items: &[T], time: impl Fn(&T) -> i64, lo_t: i64, hi_t: i64) -> std::ops::Range<usize> {
        while self.lo < items.len() && time(&items[self.lo]) <= lo_t {
            self.lo += 1;
        }
        self.hi = self.hi.max(self.lo);
        self.upto(items, time, hi_t);
        self.lo..self.hi
    }

    /// How many of `items` are at or before `t`; `t` must not decrease between calls.
    fn upto<T>(&mut self, items: &[T], time: impl Fn(&T) -> i64, t: i64) -> usize {
        while self.hi < items.len() && time(&items[self.hi]) <= t {
            self.hi += 1;
        }
        self.hi
    }
}

/// The labels removed together with the metric name (Prometheus's metadata labels).
pub(crate) const METADATA_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// Whether dropping the metadata labels of these series (distinct label sets per `drop_name`,
/// as a selector's or a subquery's) could make two of them equal: that takes a difference in
/// `drop_name` or in the metadata labels' values. Most vectors hold one metric, so the check
/// for collisions, which hashes every label set, can usually be skipped.
fn metadata_varies(series: &[StepSeries]) -> bool {
    let Some(first) = series.first().map(metadata_key) else { return false };
    series.iter().any(|s| metadata_key(s) != first)
}

/// [`metadata_varies`] over series that come in batches.
#[derive(Default)]
pub(crate) struct MetadataVariety {
    first: Option<(bool, [Option<String>; 3])>,
    pub varies: bool,
}

impl MetadataVariety {
    pub fn observe(&mut self, series: &[StepSeries]) {
        let Some(first) = series.first() else { return };
        if self.varies {
            return;
        }
        let (drop_name, values) = metadata_key(first);
        let key = (drop_name, values.map(|v| v.map(str::to_string)));
        match &self.first {
            None => self.first = Some(key),
            Some(f) if *f != key => self.varies = true,
            Some(_) => {}
        }
        self.varies |= metadata_varies(series);
    }
}

fn metadata_key(s: &StepSeries) -> (bool, [Option<&str>; 3]) {
    (s.drop_name, METADATA_LABELS.map(|n| s.labels.get(n)))
}

/// Applies delayed `__name__` removal. Series that end up with the same labels are merged
/// when their points do not overlap (a range result), and rejected otherwise.
fn finalize_names(mut series: Vec<StepSeries>) -> Result<Vec<StepSeries>, PromqlError> {
    let mut any = false;
    for s in &mut series {
        if s.drop_name && METADATA_LABELS.iter().any(|n| s.labels.get(n).is_some()) {
            s.labels.remove(&METADATA_LABELS);
            any = true;
        }
    }
    if !any {
        return Ok(series);
    }
    let distinct = {
        let mut seen = rustc_hash::FxHashSet::default();
        series.iter().all(|s| seen.insert(&s.labels))
    };
    if distinct {
        return Ok(series);
    }
    let mut index: HashMap<Labels, usize> = HashMap::default();
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let target = &mut out[i];
                let times = |s: &StepSeries| s.hists.iter().map(|h| h.t).collect::<Vec<_>>();
                let clash = |a: &StepSeries, b: &StepSeries| {
                    let tb = times(b);
                    times(a).iter().any(|t| tb.contains(t) || b.points.iter().any(|p| p.t == *t))
                };
                if clash(target, &s) || clash(&s, target) {
                    return Err(PromqlError::execution("vector cannot contain metrics with the same labelset"));
                }
                target.hists.extend(s.hists.iter().cloned());
                target.hists.sort_by_key(|h| h.t);
                let mut merged = Vec::with_capacity(target.points.len() + s.points.len());
                let (mut a, mut b) = (target.points.iter().peekable(), s.points.iter().peekable());
                loop {
                    let next = match (a.peek(), b.peek()) {
                        (Some(x), Some(y)) if x.t == y.t => {
                            return Err(PromqlError::execution("vector cannot contain metrics with the same labelset"))
                        }
                        (Some(x), Some(y)) => {
                            if x.t < y.t {
                                a.next()
                            } else {
                                b.next()
                            }
                        }
                        (Some(_), None) => a.next(),
                        (None, Some(_)) => b.next(),
                        (None, None) => break,
                    };
                    merged.extend(next.copied());
                }
                target.points = merged;
            }
        }
    }
    Ok(out)
}

/// The parser's matchers as storage matchers, with the metric name as a `__name__` matcher.
/// A matcher with its regex compiled once per process rather than once per evaluation.
fn compiled_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher, PromqlError> {
    static COMPILED: Memo<(MatchOp, String, String), Matcher> = Memo::new();
    if matches!(op, MatchOp::Equal | MatchOp::NotEqual) {
        return Matcher::new(op, name, value).map_err(|e| PromqlError::bad_data(e.to_string()));
    }
    COMPILED.get_or_try_insert((op, name.to_string(), value.to_string()), || {
        Matcher::new(op, name, value).map_err(|e| PromqlError::bad_data(e.to_string()))
    })
}

pub(crate) fn convert_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, PromqlError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(PromqlError::bad_data("1:1: parse error: unexpected \"or\" in label matching"));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::RegexMatch,
            ParserMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        out.push(compiled_matcher(op, &m.name, &m.value)?);
    }
    take_modifier(&mut out);
    Ok(out)
}
