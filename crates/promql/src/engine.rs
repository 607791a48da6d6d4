//! The engine's public face: options, the per-query context, results and the two entry points.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osprey_model::{FloatHistogram, HistogramSample, Labels, MetricsQuerier, Sample, TenantId};
use promql_parser::parser::{self, Expr};

use crate::durexpr::{self, DurationParams};
use crate::error::{PromqlError, PromqlErrorKind};
use crate::eval::{EvalRange, Evaluator};
use crate::memo::Memo;

/// Engine settings, fixed for the engine's lifetime.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample.
    pub lookback_delta_ms: i64,
    /// The most samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Default per-query timeout (callers build a [`QueryContext`] from it).
    pub timeout: Duration,
    /// Step of subqueries written without one (`[5m:]`); `None` means the query's step for
    /// range queries and 60s for instant queries, as Prometheus's default evaluation interval.
    pub default_subquery_step_ms: Option<i64>,
    /// Prometheus's `promql-delayed-name-removal` feature (off by default there too): keep
    /// `__name__` through the query and drop it only from the final result, so that
    /// `label_replace` and `by (__name__)` above a function still see it. When off, functions
    /// and operators drop it at once, as Prometheus 2.x and 3.x do by default.
    pub delayed_name_removal: bool,
    /// Prometheus's "use start timestamps" (experimental there, off by default): `rate`,
    /// `increase`, `irate` and `resets` over a selector read the samples' start timestamps
    /// from storage ([`osprey_model::MetricsQuerier::select_start_timestamps`]) and take a
    /// start after the previous sample as a counter reset (deltas, restarts), and a start
    /// inside the window as a zero value there instead of extrapolating; `start_timestamp()`
    /// returns them. Off, start timestamps are ignored and `start_timestamp()` is empty.
    pub use_start_timestamps: bool,
    /// Raw samples (plus result points) a range function over a selector reads from storage
    /// and computes at a time: enough series per batch that per-batch work is amortised and
    /// can be split across cores, few enough that a long range over many series is never
    /// decoded at once. Results do not depend on it.
    pub range_batch_samples: usize,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: None,
            delayed_name_removal: false,
            use_start_timestamps: false,
            // 4 MiB of floats.
            range_batch_samples: 1 << 18,
        }
    }
}

/// Deadline and cancellation for one query. The deadline is the only clock the engine reads.
#[derive(Debug, Clone)]
pub struct QueryContext {
    started: Instant,
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
}

impl QueryContext {
    pub fn new(timeout: Duration) -> QueryContext {
        QueryContext {
            started: Instant::now(),
            deadline: Instant::now() + timeout,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag that cancels the query when set to `true`.
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }

    /// Time since the context was created (for query statistics only).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn check(&self) -> Result<(), PromqlError> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(PromqlError::new(PromqlErrorKind::Canceled, "query was canceled in expression evaluation"));
        }
        if Instant::now() >= self.deadline {
            return Err(PromqlError::new(PromqlErrorKind::Timeout, "query timed out in expression evaluation"));
        }
        Ok(())
    }
}

/// One sample of an instant vector: a float `v`, or a native histogram `h` (then `v` is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    pub h: Option<FloatHistogram>,
}

/// One series of a matrix result: float points and native-histogram points (at other
/// timestamps), each in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
}

/// A query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
}

/// Counters about one evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStats {
    /// Samples read from storage.
    pub total_samples: u64,
    /// The most samples one selector or one step's range windows held (what `max_samples`
    /// limits).
    pub peak_samples: u64,
    /// Time from the query context's creation to the result (read from the context's
    /// clock, never used for results).
    pub eval_time: Duration,
}

/// A result with its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub value: Value,
    /// `PromQL warning: …` annotations, as the HTTP API renders them.
    pub warnings: Vec<String>,
    /// `PromQL info: …` annotations.
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// A PromQL engine. Holds only options; every query is independent.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at one instant.
    pub fn instant_query(
        &self,
        storage: &dyn MetricsQuerier,
        tenant: &TenantId,
        query: &str,
        time_ms: i64,
        ctx: &QueryContext,
    ) -> Result<QueryOutput, PromqlError> {
        let (expr, trims) = parse_with_params(query, DurationParams { step_ms: 0, range_ms: 0 })?;
        let range = EvalRange { start: time_ms, end: time_ms, step: 0 };
        let mut ev = Evaluator::new(storage, tenant, &self.opts, ctx, query, range);
        ev.trims = crate::trim::trim_nodes(&expr, &trims);
        let value = ev.eval_instant(&expr)?;
        Ok(ev.finish(value))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    #[allow(clippy::too_many_arguments)] // the signature other crates code against
    pub fn range_query(
        &self,
        storage: &dyn MetricsQuerier,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        ctx: &QueryContext,
    ) -> Result<QueryOutput, PromqlError> {
        if step_ms <= 0 {
            return Err(PromqlError::bad_data(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end_ms < start_ms {
            return Err(PromqlError::bad_data("end timestamp must not be before start time"));
        }
        let (expr, trims) = parse_with_params(query, DurationParams { step_ms, range_ms: end_ms - start_ms })?;
        let range = EvalRange { start: start_ms, end: end_ms, step: step_ms };
        let mut ev = Evaluator::new(storage, tenant, &self.opts, ctx, query, range);
        ev.trims = crate::trim::trim_nodes(&expr, &trims);
        let value = ev.eval_range(&expr)?;
        Ok(ev.finish(value))
    }
}

/// Parses a query as an instant query would (duration expressions with `step()` = 0).
/// Trim operators (`</`, `>/`) appear as `<` and `>`; see [`crate::trim`].
pub(crate) fn parse_instant(query: &str) -> Result<Expr, PromqlError> {
    parse_with_params(query, DurationParams { step_ms: 0, range_ms: 0 }).map(|(e, _)| e)
}

/// Parses a query whose duration expressions (`[5m+step()]`) are evaluated with the
/// query's step and range; also says which `<`/`>` operators are trims.
fn parse_with_params(query: &str, params: DurationParams) -> Result<(Expr, crate::trim::Trims), PromqlError> {
    let query = durexpr::rewrite(query, params)?;
    let (text, trims) = crate::trim::rewrite(&crate::info::rewrite_selectors(&crate::extended::rewrite(&query)));
    Ok((parse(&text)?, trims))
}

/// Parses a query, mapping the parser's message to Prometheus's `parse error` form.
pub(crate) fn parse(query: &str) -> Result<Expr, PromqlError> {
    static PARSED: Memo<String, Expr> = Memo::new();
    PARSED.get_or_try_insert(query.to_string(), || {
        // promql-parser panics on some out-of-range literals (e.g. `x offset 1e400`); a query
        // must never take the process down, so such a panic becomes a parse error.
        let decoded = crate::scan::decode_byte_escapes(query);
        match std::panic::catch_unwind(|| parser::parse(&decoded)) {
            Ok(Ok(expr)) => Ok(expr),
            Ok(Err(e)) => Err(PromqlError::bad_data(parse_error_message(query, &e))),
            Err(_) => Err(PromqlError::bad_data("1:1: parse error: number or duration out of range")),
        }
    })
}

/// Prometheus's `line:col: parse error: …` form. promql-parser reports no positions, so
/// the position is the start of the query unless the message names a function, and its
/// wording is translated where it differs from Prometheus's.
fn parse_error_message(query: &str, e: &str) -> String {
    if let Some(rest) = e.strip_prefix("expected type ") {
        // "expected type matrix in call to function 'rate', got vector"
        let parts: Vec<&str> = rest.splitn(2, " in call to function '").collect();
        if let [want, tail] = parts.as_slice() {
            if let Some((func, got)) = tail.split_once("', got ") {
                let pos = crate::scan::arg_pos(query, func, 0);
                let pos = pos.trim_matches(|c| c == '(' || c == ')');
                return format!(
                    "{pos}: parse error: expected type {} in call to function \"{func}\", got {}",
                    type_name(want),
                    type_name(got)
                );
            }
        }
    }
    if e.starts_with("unexpected end of input") || e == "unclosed left parenthesis" {
        // Prometheus reports these at the end of the input.
        let line = query.matches('\n').count() + 1;
        let col = query.len() - query.rfind('\n').map_or(0, |i| i + 1) + 1;
        return format!("{line}:{col}: parse error: {e}");
    }
    format!("1:1: parse error: {e}")
}

fn type_name(parser_name: &str) -> &str {
    match parser_name {
        "matrix" => "range vector",
        "vector" => "instant vector",
        other => other,
    }
}

/// Pretty-prints a query the way `/api/v1/format_query` answers.
pub fn format_query(query: &str) -> Result<String, PromqlError> {
    let (text, trims) = crate::trim::rewrite(query);
    Ok(crate::trim::restore(&parse(&text)?.prettify(), &trims))
}

/// The parsed query as JSON, in the shape of Prometheus's `/api/v1/parse_query` answer
/// (`{"type": "vectorSelector", …}`). Duration expressions appear evaluated.
pub fn parse_query_json(query: &str) -> Result<serde_json::Value, PromqlError> {
    let (expr, trims) = parse_with_params(query, DurationParams { step_ms: 0, range_ms: 0 })?;
    let mut json = crate::ast_json::translate(&expr);
    crate::trim::restore_json(&mut json, &trims);
    Ok(json)
}
