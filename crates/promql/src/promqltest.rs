//! A runner for Prometheus's PromQL test scripts (`*.test`, the `promqltest` language), so
//! the engine is checked against upstream's own expectations. The format and the comparison
//! rules are documented in the conformance corpus's README; this module is self-contained so
//! the CLI (`osprey promql-test PATH...`) can call [`run_paths`] directly.

pub(crate) mod script;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use osprey_model::{
    is_stale_nan, FloatHistogram, HistogramSample, Labels, Sample, TenantId, CUSTOM_BUCKETS_SCHEMA, METRIC_NAME,
};
use promql_parser::parser::{AtModifier, Expr};
use std::time::UNIX_EPOCH;

use crate::engine::{Engine, EngineOptions, MatrixSeries, QueryContext, QueryOutput, Value};
use crate::histogram::almost_equal;
use crate::memstore::MemStore;
use script::{Command, Eval, EvalKind, Item, SeriesDef};

/// How to run the scripts.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Also run upstream's extra checks on instant evals (range consistency).
    pub strict: bool,
}

/// Case counts; a case is one `eval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Cases skipped, with a printed reason, for a feature the engine lacks. The corpus
    /// report format always states the count; every feature the corpus uses is supported
    /// today, so it is 0.
    pub skipped: usize,
}

impl Summary {
    fn add(&mut self, o: Summary) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// Runs every `*.test` file in `paths` (files, or directories searched one level deep) and
/// prints failures, one line per file and a total line.
pub fn run_paths(paths: &[PathBuf], opts: &RunOptions, out: &mut dyn Write) -> Summary {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            found.retain(|f| f.extension().is_some_and(|e| e == "test"));
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut total = Summary::default();
    for f in &files {
        let display = display_name(f);
        let summary = match std::fs::read_to_string(f) {
            Ok(text) => run_script(&display, &text, opts, out),
            Err(e) => {
                let _ = writeln!(out, "{display}: cannot read: {e}");
                Summary { failed: 1, ..Summary::default() }
            }
        };
        let _ = writeln!(
            out,
            "{display}: {} passed, {} failed, {} skipped",
            summary.passed, summary.failed, summary.skipped
        );
        total.add(summary);
    }
    let _ = writeln!(out, "total: {} passed, {} failed, {} skipped", total.passed, total.failed, total.skipped);
    total
}

fn display_name(p: &Path) -> String {
    let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match p.parent().and_then(|d| d.file_name()) {
        Some(dir) => format!("{}/{file}", dir.to_string_lossy()),
        None => file,
    }
}

/// The settings the corpus assumes.
fn engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta_ms: 300_000,
        max_samples: 10_000,
        timeout: Duration::from_secs(60),
        default_subquery_step_ms: Some(60_000),
        delayed_name_removal: true,
        use_start_timestamps: true,
        // Tiny batches, so that the corpus also proves range functions read in many parts.
        range_batch_samples: 8,
    })
}

struct State {
    store: MemStore,
    /// Set when a load failed: evals fail until the next `clear`.
    broken_load: Option<String>,
}

fn run_script(name: &str, text: &str, opts: &RunOptions, out: &mut dyn Write) -> Summary {
    let engine = engine();
    let mut st = State { store: MemStore::new(), broken_load: None };
    let mut sum = Summary::default();
    for cmd in script::parse_script(text) {
        match cmd {
            Command::Clear => {
                st.store.clear();
                st.broken_load = None;
            }
            Command::Load { step, nhcb, series } => {
                if let Err(e) = load(&mut st, step, nhcb, series) {
                    st.broken_load = Some(e);
                }
            }
            Command::Invalid { line, message, evals } => {
                let _ = writeln!(out, "{name}:{line}: cannot parse block: {message}");
                sum.failed += evals;
                if evals == 0 {
                    st.broken_load = Some(message);
                }
            }
            Command::Eval(ev) => {
                let result = match &st.broken_load {
                    Some(e) => Err(format!("load failed: {e}")),
                    None => run_eval(&engine, &st.store, &ev, opts),
                };
                match result {
                    Ok(()) => sum.passed += 1,
                    Err(e) => {
                        sum.failed += 1;
                        let _ = writeln!(out, "{name}:{}: {}\n    {}", ev.line, ev.query, e.replace('\n', "\n    "));
                    }
                }
            }
        }
    }
    sum
}

/// One timestamp of a classic histogram being turned into a custom-buckets one.
#[derive(Default)]
struct ClassicAt {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
}

fn load(st: &mut State, step: i64, nhcb: bool, series: Vec<SeriesDef>) -> Result<(), String> {
    // Classic histograms by base labels, then by timestamp (for `load_with_nhcb`).
    let mut classic: BTreeMap<Labels, BTreeMap<i64, ClassicAt>> = BTreeMap::new();
    for s in series {
        let name = s.labels.get(METRIC_NAME).unwrap_or("").to_string();
        let mut samples = Vec::new();
        let mut hists = Vec::new();
        let mut starts = Vec::new();
        for (i, item) in s.items.iter().enumerate() {
            let t = i as i64 * step;
            match item {
                Item::Gap => continue,
                Item::Float(v) => samples.push(Sample::new(t, *v)),
                Item::Histogram(h, _) => hists.push(HistogramSample { t, h: (**h).clone() }),
            }
            if let Some(offset) = s.starts.as_ref().and_then(|o| o[i]) {
                starts.push((t, t + offset));
            }
        }
        if nhcb {
            for suffix in ["_bucket", "_count", "_sum"] {
                let Some(base) = name.strip_suffix(suffix) else { continue };
                let le = s.labels.get("le").and_then(|le| le.parse::<f64>().ok());
                if suffix == "_bucket" && le.is_none_or(f64::is_nan) {
                    break;
                }
                let mut b = s.labels.without(&["le"]).to_builder();
                b.set(METRIC_NAME, base);
                let by_t = classic.entry(b.build()).or_default();
                for p in &samples {
                    let at = by_t.entry(p.t).or_default();
                    match suffix {
                        "_bucket" => at.buckets.push((le.unwrap_or(f64::INFINITY), p.v)),
                        "_count" => at.count = Some(p.v),
                        _ => at.sum = p.v,
                    }
                }
                break;
            }
        }
        if !hists.is_empty() {
            st.store.set_histograms(s.labels.clone(), hists);
        }
        // A series loaded twice in one block keeps the last definition.
        st.store.set_start_timestamps(s.labels.clone(), starts);
        st.store.set(s.labels, samples);
    }
    for (labels, by_t) in classic {
        let mut hists = Vec::new();
        for (t, at) in by_t {
            hists.push(HistogramSample { t, h: classic_to_nhcb(at)? });
        }
        st.store.set_histograms(labels, hists);
    }
    Ok(())
}

/// Prometheus's `convertnhcb`: cumulative `le` buckets to a custom-buckets histogram.
fn classic_to_nhcb(mut at: ClassicAt) -> Result<FloatHistogram, String> {
    at.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    at.buckets.dedup_by(|a, b| a.0 == b.0);
    for w in at.buckets.windows(2) {
        if w[1].1 < w[0].1 {
            return Err(format!("histogram counts are not cumulative: {} < {}", w[1].1, w[0].1));
        }
    }
    if at.buckets.iter().any(|b| b.1 < 0.0) || at.count.is_some_and(|c| c < 0.0) {
        return Err("negative histogram count".into());
    }
    let count = at.count.or(at.buckets.last().map(|b| b.1)).unwrap_or(0.0);
    if at.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        at.buckets.push((f64::INFINITY, count));
    }
    let last = at.buckets[at.buckets.len() - 1].1;
    if count != last {
        return Err(format!("histogram count mismatch: count={count} != le=+Inf count={last}"));
    }
    let mut h = FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count, sum: at.sum, ..Default::default() };
    let mut prev = 0.0;
    for (i, &(le, c)) in at.buckets.iter().enumerate() {
        h.positive.push((i as i32, c - prev));
        prev = c;
        if le != f64::INFINITY {
            h.custom_values.push(le);
        }
    }
    h.compact();
    Ok(h)
}

fn run_eval(engine: &Engine, store: &MemStore, ev: &Eval, opts: &RunOptions) -> Result<(), String> {
    let EvalKind::Instant { at } = ev.kind else {
        return run_case(engine, store, ev, &ev.query, None, false);
    };
    run_case(engine, store, ev, &ev.query, Some(at), opts.strict)?;
    if opts.strict {
        if let Some((query, times)) = at_variants(&ev.query, at) {
            for t in times {
                run_case(engine, store, ev, &query, Some(t), true)
                    .map_err(|e| format!("strict: {query} evaluated at {t}ms: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Runs one query against the eval's expectations: as an instant query at `at`, or as the
/// eval's range query. `strict` adds the range-consistency check to instant queries.
/// Annotations are checked for the original query only (a rewritten one has other positions).
fn run_case(
    engine: &Engine,
    store: &MemStore,
    ev: &Eval,
    query: &str,
    at: Option<i64>,
    strict: bool,
) -> Result<(), String> {
    let tenant = TenantId::default_tenant();
    let ctx = QueryContext::new(Duration::from_secs(60));
    let res = match (at, &ev.kind) {
        (Some(at), _) => engine.instant_query(store, &tenant, query, at, &ctx),
        (None, EvalKind::Range { start, end, step }) => {
            engine.range_query(store, &tenant, query, *start, *end, *step, &ctx)
        }
        (None, EvalKind::Instant { at }) => engine.instant_query(store, &tenant, query, *at, &ctx),
    };
    let output = match res {
        Err(e) => return check_failure(ev, &e.message),
        Ok(o) => o,
    };
    if ev.fail {
        return Err(format!("expected an error, got result {}", show_value(&output.value)));
    }
    if query == ev.query {
        check_annotations("warning", &output.warnings, &ev.warn)?;
        check_annotations("info", &output.infos, &ev.info)?;
    }
    check_value(ev, &output)?;
    if let (true, Some(at)) = (strict, at) {
        check_range_consistency(engine, store, ev, query, at, &output)?;
    }
    Ok(())
}

fn check_failure(ev: &Eval, message: &str) -> Result<(), String> {
    if !ev.fail {
        return Err(format!("unexpected error: {message}"));
    }
    if let Some(m) = &ev.fail_msg {
        if m != message {
            return Err(format!("expected error {m:?}, got {message:?}"));
        }
    }
    if let Some(r) = &ev.fail_regex {
        let re = regex::Regex::new(r).map_err(|e| format!("bad regex in test: {e}"))?;
        if !re.is_match(message) {
            return Err(format!("expected error matching {r:?}, got {message:?}"));
        }
    }
    Ok(())
}

/// Functions whose result depends on the evaluation time even with step-invariant
/// arguments (Prometheus's `AtModifierUnsafeFunctions`).
const AT_UNSAFE_FUNCTIONS: [&str; 15] = [
    "days_in_month",
    "end",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

/// Upstream's step-invariance check: the query with `@ <t>` on every selector and subquery
/// that lacks one, and the other times to evaluate it at.
fn at_variants(query: &str, t: i64) -> Option<(String, Vec<i64>)> {
    // A rewritten query is printed from the parsed form, where a `\x` escape of invalid
    // UTF-8 has become U+FFFD; the variants could not say the same thing.
    if crate::scan::decode_byte_escapes(query).contains('\u{FFFD}') {
        return None;
    }
    let mut expr = crate::engine::parse_instant(query).ok()?;
    let mut unsafe_call = false;
    set_at(&mut expr, t, &mut unsafe_call);
    if unsafe_call || t < 0 {
        return None;
    }
    let times = if t == 0 { vec![-1000, 0, 1000] } else { vec![-10 * t, 0, t / 5, t, 10 * t] };
    let (_, trims) = crate::trim::rewrite(query);
    Some((crate::trim::restore(&expr.to_string(), &trims), times))
}

fn set_at(e: &mut Expr, t: i64, unsafe_call: &mut bool) {
    let at = || Some(AtModifier::At(UNIX_EPOCH + std::time::Duration::from_millis(t as u64)));
    match e {
        Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = at(),
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = at(),
        // A subquery gets the `@`; selectors inside it keep evaluating relative to it.
        Expr::Subquery(sq) if sq.at.is_none() => sq.at = at(),
        Expr::Paren(p) => set_at(&mut p.expr, t, unsafe_call),
        Expr::Unary(u) => set_at(&mut u.expr, t, unsafe_call),
        Expr::Binary(b) => {
            set_at(&mut b.lhs, t, unsafe_call);
            set_at(&mut b.rhs, t, unsafe_call);
        }
        Expr::Aggregate(a) => {
            set_at(&mut a.expr, t, unsafe_call);
            if let Some(p) = &mut a.param {
                set_at(p, t, unsafe_call);
            }
        }
        Expr::Call(c) => {
            *unsafe_call |= AT_UNSAFE_FUNCTIONS.contains(&c.func.name);
            for a in &mut c.args.args {
                set_at(a, t, unsafe_call);
            }
        }
        _ => {}
    }
}

fn check_annotations(kind: &str, got: &[String], exp: &script::AnnotationExpect) -> Result<(), String> {
    if exp.none && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    if !exp.any {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind} annotations, got none"));
    }
    if exp.msgs.is_empty() && exp.regexes.is_empty() {
        return Ok(());
    }
    let regexes: Vec<regex::Regex> = exp.regexes.iter().filter_map(|r| regex::Regex::new(r).ok()).collect();
    let matches = |a: &String| exp.msgs.iter().any(|m| m == a) || regexes.iter().any(|r| r.is_match(a));
    if let Some(bad) = got.iter().find(|a| !matches(a)) {
        return Err(format!("unexpected {kind} annotation {bad:?}; expected {:?} {:?}", exp.msgs, exp.regexes));
    }
    for m in &exp.msgs {
        if !got.contains(m) {
            return Err(format!("expected {kind} annotation {m:?}, got {got:?}"));
        }
    }
    Ok(())
}

/// Test-script float equality (`util/almost.Equal` with ε = 1e-6; a staleness marker only
/// equals a staleness marker).
fn float_eq(exp: f64, got: f64) -> bool {
    if is_stale_nan(exp) || is_stale_nan(got) {
        return is_stale_nan(exp) && is_stale_nan(got);
    }
    almost_equal(exp, got, 1e-6)
}

fn check_value(ev: &Eval, out: &QueryOutput) -> Result<(), String> {
    if let Some(s) = &ev.string {
        return match &out.value {
            Value::String { v, .. } if v == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {}", show_value(other))),
        };
    }
    if let Some(exp) = ev.scalar {
        return match &out.value {
            Value::Scalar { v, .. } if float_eq(exp, *v) => Ok(()),
            other => Err(format!("expected scalar {exp}, got {}", show_value(other))),
        };
    }
    match (&ev.kind, &out.value) {
        (_, Value::Scalar { v, .. }) => Err(format!("expected vector or matrix result, got scalar {v}")),
        (_, Value::String { v, .. }) => Err(format!("expected vector or matrix result, got string {v:?}")),
        (EvalKind::Instant { .. }, Value::Vector(samples)) => {
            if ev.range_vector.is_some() {
                return Err("expected a range vector, got an instant vector".into());
            }
            let got: Vec<(Labels, Pt)> = samples.iter().map(|s| (s.labels.clone(), Pt::of(s.v, &s.h))).collect();
            compare_instant(ev, &got)
        }
        (EvalKind::Instant { .. }, Value::Matrix(series)) => match ev.range_vector {
            Some((start, end, step)) => compare_matrix(ev, series, start, end, step, false),
            None => Err("expected an instant vector, got a range vector".into()),
        },
        (EvalKind::Range { start, end, step }, Value::Matrix(series)) => {
            if ev.ordered {
                return Err("expect ordered is not valid for range queries".into());
            }
            compare_matrix(ev, series, *start, *end, *step, true)
        }
        (EvalKind::Range { .. }, Value::Vector(_)) => Err("range query returned an instant vector".into()),
    }
}

/// A result point: a float or a native histogram.
#[derive(Debug, Clone)]
enum Pt {
    F(f64),
    H(Box<FloatHistogram>),
}

impl Pt {
    fn of(v: f64, h: &Option<FloatHistogram>) -> Pt {
        match h {
            Some(h) => Pt::H(Box::new(h.clone())),
            None => Pt::F(v),
        }
    }

    /// Whether `self` (a result) matches an expected item.
    fn matches(&self, exp: &Item) -> bool {
        match (exp, self) {
            (Item::Float(e), Pt::F(g)) => float_eq(*e, *g),
            (Item::Histogram(e, hint_set), Pt::H(g)) => histogram_eq(e, g, *hint_set),
            _ => false,
        }
    }
}

impl std::fmt::Display for Pt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pt::F(v) => write!(f, "{v}"),
            Pt::H(h) => write!(f, "{}", show_histogram(h)),
        }
    }
}

fn show_histogram(h: &FloatHistogram) -> String {
    format!(
        "{{{{schema:{} count:{} sum:{} z_bucket:{} z_bucket_w:{} buckets:{:?} n_buckets:{:?} custom:{:?} hint:{:?}}}}}",
        h.schema,
        h.count,
        h.sum,
        h.zero_count,
        h.zero_threshold,
        h.positive,
        h.negative,
        h.custom_values,
        h.counter_reset_hint
    )
}

/// Test-script histogram equality: both compacted; counts within ε; the hint only when
/// the expected literal states it.
fn histogram_eq(exp: &FloatHistogram, got: &FloatHistogram, hint_set: bool) -> bool {
    let (mut e, mut g) = (exp.clone(), got.clone());
    e.compact();
    g.compact();
    let buckets_eq = |a: &[(i32, f64)], b: &[(i32, f64)]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1, 1e-6))
    };
    e.schema == g.schema
        && almost_equal(e.count, g.count, 1e-6)
        && almost_equal(e.sum, g.sum, 1e-6)
        && (!e.uses_custom_buckets() || e.custom_values == g.custom_values)
        && e.zero_threshold == g.zero_threshold
        && almost_equal(e.zero_count, g.zero_count, 1e-6)
        && buckets_eq(&e.negative, &g.negative)
        && buckets_eq(&e.positive, &g.positive)
        && (!hint_set || e.counter_reset_hint == g.counter_reset_hint)
}

fn show_item(i: &Item) -> String {
    match i {
        Item::Gap => "_".into(),
        Item::Float(v) => format!("{v}"),
        Item::Histogram(h, _) => show_histogram(h),
    }
}

fn compare_instant(ev: &Eval, got: &[(Labels, Pt)]) -> Result<(), String> {
    let mut expected = Vec::new();
    for s in &ev.series {
        match s.items.as_slice() {
            [item @ (Item::Float(_) | Item::Histogram(..))] => expected.push((s.labels.clone(), item.clone())),
            _ => return Err(format!("expected series {} must have exactly one value", s.labels)),
        }
    }
    if got.len() != expected.len() {
        return Err(format!(
            "expected {} series, got {}:\n{}",
            expected.len(),
            got.len(),
            diff_vectors(&expected, got)
        ));
    }
    for (i, (labels, v)) in expected.iter().enumerate() {
        let found =
            if ev.ordered { got.get(i).filter(|(l, _)| l == labels) } else { got.iter().find(|(l, _)| l == labels) };
        match found {
            None => {
                let what = if ev.ordered { "at this position" } else { "in the result" };
                return Err(format!("expected series {labels} {what}:\n{}", diff_vectors(&expected, got)));
            }
            Some((_, g)) if !g.matches(v) => {
                return Err(format!("series {labels}: expected {}, got {g}", show_item(v)));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn diff_vectors(expected: &[(Labels, Item)], got: &[(Labels, Pt)]) -> String {
    let e: Vec<String> = expected.iter().map(|(l, v)| format!("  {l} {}", show_item(v))).collect();
    let g: Vec<String> = got.iter().map(|(l, v)| format!("  {l} {v}")).collect();
    format!("expected:\n{}\ngot:\n{}", e.join("\n"), g.join("\n"))
}

fn compare_matrix(
    ev: &Eval,
    got: &[MatrixSeries],
    start: i64,
    end: i64,
    step: i64,
    require_sorted: bool,
) -> Result<(), String> {
    if require_sorted && got.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("range query result is not sorted by labels".into());
    }
    let steps = if step <= 0 { 1 } else { ((end - start) / step) as usize + 1 };
    let mut expected: Vec<(Labels, Vec<(i64, &Item)>)> = Vec::new();
    for s in &ev.series {
        let points = s
            .items
            .iter()
            .take(steps)
            .enumerate()
            .filter(|(_, item)| !matches!(item, Item::Gap))
            .map(|(i, item)| (start + i as i64 * step, item))
            .collect();
        expected.push((s.labels.clone(), points));
    }
    let got_points: Vec<Vec<(i64, Pt)>> = got.iter().map(matrix_points).collect();
    let show = || {
        let e: Vec<String> = expected
            .iter()
            .map(|(l, p)| {
                let p: Vec<String> = p.iter().map(|(t, v)| format!("{}@{t}", show_item(v))).collect();
                format!("  {l} [{}]", p.join(" "))
            })
            .collect();
        let g: Vec<String> = got
            .iter()
            .zip(&got_points)
            .map(|(s, p)| {
                let p: Vec<String> = p.iter().map(|(t, v)| format!("{v}@{t}")).collect();
                format!("  {} [{}]", s.labels, p.join(" "))
            })
            .collect();
        format!("expected:\n{}\ngot:\n{}", e.join("\n"), g.join("\n"))
    };
    if expected.len() != got.len() {
        return Err(format!("expected {} series, got {}:\n{}", expected.len(), got.len(), show()));
    }
    for (labels, points) in &expected {
        let Some(gi) = got.iter().position(|s| &s.labels == labels) else {
            return Err(format!("expected series {labels} not found:\n{}", show()));
        };
        let g = &got_points[gi];
        let same = g.len() == points.len() && g.iter().zip(points).all(|(a, b)| a.0 == b.0 && a.1.matches(b.1));
        if !same {
            return Err(format!("series {labels} differs:\n{}", show()));
        }
    }
    Ok(())
}

/// A matrix series' floats and histograms as one time-ordered list.
fn matrix_points(s: &MatrixSeries) -> Vec<(i64, Pt)> {
    let mut p: Vec<(i64, Pt)> = s.samples.iter().map(|x| (x.t, Pt::F(x.v))).collect();
    p.extend(s.histograms.iter().map(|x| (x.t, Pt::H(Box::new(x.h.clone())))));
    p.sort_by_key(|x| x.0);
    p
}

fn show_points(p: &[Sample]) -> String {
    let v: Vec<String> = p.iter().map(|s| format!("{}@{}", s.v, s.t)).collect();
    format!("[{}]", v.join(" "))
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Scalar { v, .. } => format!("scalar {v}"),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(s) => {
            let items: Vec<String> = s.iter().map(|s| format!("{} {}", s.labels, Pt::of(s.v, &s.h))).collect();
            format!("vector [{}]", items.join(", "))
        }
        Value::Matrix(s) => {
            let items: Vec<String> = s.iter().map(|s| format!("{} {}", s.labels, show_points(&s.samples))).collect();
            format!("matrix [{}]", items.join(", "))
        }
    }
}

/// Upstream's range-consistency check: the query run as a range query from t-1m to t+1m
/// must agree with the instant result at t.
fn check_range_consistency(
    engine: &Engine,
    store: &MemStore,
    ev: &Eval,
    q: &str,
    at: i64,
    instant: &QueryOutput,
) -> Result<(), String> {
    if ev.string.is_some() || ev.range_vector.is_some() {
        return Ok(());
    }
    if ["start()", "end()", "range()", "step()"].iter().any(|f| q.contains(f)) {
        return Ok(());
    }
    let tenant = TenantId::default_tenant();
    let ctx = QueryContext::new(Duration::from_secs(60));
    let out = engine
        .range_query(store, &tenant, q, at - 60_000, at + 60_000, 60_000, &ctx)
        .map_err(|e| format!("strict: range query failed: {}", e.message))?;
    let Value::Matrix(series) = out.value else {
        return Err("strict: range query returned no matrix".into());
    };
    if !ev.ordered && series.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("strict: range query result is not sorted".into());
    }
    let mut at_t: Vec<(Labels, Pt)> = series
        .iter()
        .filter_map(|s| matrix_points(s).into_iter().find(|p| p.0 == at).map(|p| (s.labels.clone(), p.1)))
        .collect();
    let mut inst: Vec<(Labels, Item)> = match &instant.value {
        Value::Vector(v) => v
            .iter()
            .map(|s| {
                let item = match &s.h {
                    Some(h) => Item::Histogram(Box::new(h.clone()), true),
                    None => Item::Float(s.v),
                };
                (s.labels.clone(), item)
            })
            .collect(),
        Value::Scalar { v, .. } => vec![(Labels::empty(), Item::Float(*v))],
        _ => return Ok(()),
    };
    at_t.sort_by(|a, b| a.0.cmp(&b.0));
    inst.sort_by(|a, b| a.0.cmp(&b.0));
    let same = at_t.len() == inst.len() && at_t.iter().zip(&inst).all(|(a, b)| a.0 == b.0 && a.1.matches(&b.1));
    if same {
        Ok(())
    } else {
        Err(format!("strict: range query at t differs from instant result:\n{}", diff_vectors(&inst, &at_t)))
    }
}
