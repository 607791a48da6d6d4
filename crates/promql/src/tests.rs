//! Engine tests through data: load series in the test-script syntax, run a query, compare
//! a rendering of the result. The conformance corpus covers breadth; these pin the cases
//! Osprey depends on and each bug fixed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use osprey_model::{FloatHistogram, HistogramSample, Labels, Sample, TenantId};

use crate::memstore::MemStore;
use crate::promqltest::script::{parse_script, Command, Item};
use crate::{Engine, EngineOptions, PromqlErrorKind, QueryContext, Value};

/// A store from `load <step>` blocks (the test-script syntax).
fn db(script: &str) -> MemStore {
    let store = MemStore::new();
    for cmd in parse_script(script) {
        let Command::Load { step, series, .. } = cmd else { panic!("only load blocks in test data") };
        for s in series {
            let samples = s
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Item::Float(v) => Some(Sample::new(i as i64 * step, *v)),
                    _ => None,
                })
                .collect();
            // `name@st` lines: start timestamps as offsets from each sample's time.
            let starts = s.starts.iter().flatten().enumerate();
            let starts = starts.filter_map(|(i, o)| o.map(|o| (i as i64 * step, i as i64 * step + o))).collect();
            store.set_start_timestamps(s.labels.clone(), starts);
            store.set(s.labels, samples);
        }
    }
    store
}

fn engine() -> Engine {
    engine_with(false)
}

fn engine_with(delayed_name_removal: bool) -> Engine {
    // Range functions read a few series at a time, as they do over much larger data.
    let range_batch_samples = 16;
    Engine::new(EngineOptions {
        max_samples: 10_000,
        delayed_name_removal,
        range_batch_samples,
        ..EngineOptions::default()
    })
}

/// An engine that uses start timestamps, as the conformance corpus runs.
fn engine_with_starts() -> Engine {
    Engine::new(EngineOptions { max_samples: 10_000, use_start_timestamps: true, ..EngineOptions::default() })
}

/// Results as sorted text lines: `labels value` (vector), `labels v@t …` (matrix),
/// `scalar v`, `string "s"`, or `error(kind): message`.
fn render(res: Result<crate::QueryOutput, crate::PromqlError>) -> String {
    let out = match res {
        Ok(o) => o,
        Err(e) => return format!("error({:?}): {}", e.kind, e.message),
    };
    let mut lines = match out.value {
        Value::Scalar { v, .. } => vec![format!("scalar {v}")],
        Value::String { v, .. } => vec![format!("string {v:?}")],
        Value::Vector(samples) => samples.iter().map(|s| format!("{} {}", s.labels, s.v)).collect(),
        Value::Matrix(series) => series
            .iter()
            .map(|s| {
                let points: Vec<String> = s.samples.iter().map(|p| format!("{}@{}", p.v, p.t / 1000)).collect();
                format!("{} {}", s.labels, points.join(" "))
            })
            .collect(),
    };
    lines.sort();
    lines.extend(out.warnings);
    lines.extend(out.infos);
    lines.join("\n")
}

/// Instant query at `at_s` seconds.
fn check(store: &MemStore, query: &str, at_s: i64, expected: &str) {
    check_in(&engine(), store, query, at_s, expected);
}

fn check_in(engine: &Engine, store: &MemStore, query: &str, at_s: i64, expected: &str) {
    let ctx = QueryContext::new(Duration::from_secs(10));
    let got = render(engine.instant_query(store, &TenantId::default_tenant(), query, at_s * 1000, &ctx));
    assert_eq!(got.trim(), expected.trim(), "query: {query}");
}

/// Range query from `start_s` to `end_s` seconds.
fn check_range(store: &MemStore, query: &str, range: (i64, i64, i64), expected: &str) {
    check_range_in(&engine(), store, query, range, expected);
}

fn check_range_in(
    engine: &Engine,
    store: &MemStore,
    query: &str,
    (start_s, end_s, step_s): (i64, i64, i64),
    expected: &str,
) {
    let ctx = QueryContext::new(Duration::from_secs(10));
    let tenant = TenantId::default_tenant();
    let got = render(engine.range_query(store, &tenant, query, start_s * 1000, end_s * 1000, step_s * 1000, &ctx));
    assert_eq!(got.trim(), expected.trim(), "query: {query}");
}

/// An instant query whose answer must not depend on delayed name removal.
fn check_both(store: &MemStore, query: &str, at_s: i64, expected: &str) {
    for delayed in [false, true] {
        check_in(&engine_with(delayed), store, query, at_s, expected);
    }
}

/// A range query whose answer must not depend on delayed name removal.
fn check_range_both(store: &MemStore, query: &str, range: (i64, i64, i64), expected: &str) {
    for delayed in [false, true] {
        check_range_in(&engine_with(delayed), store, query, range, expected);
    }
}

fn requests() -> MemStore {
    db(r#"
load 1m
    http_requests_total{job="api", instance="a"} 0+10x10
    http_requests_total{job="api", instance="b"} 0+20x10
    http_requests_total{job="db", instance="a"} 5 stale 7
"#)
}

#[test]
fn selectors_use_lookback_and_staleness() {
    let s = requests();
    check(
        &s,
        "http_requests_total",
        120,
        r#"
{__name__="http_requests_total", instance="a", job="api"} 20
{__name__="http_requests_total", instance="a", job="db"} 7
{__name__="http_requests_total", instance="b", job="api"} 40
"#,
    );
    // A staleness marker ends the series until the next sample.
    check(&s, r#"http_requests_total{job="db"}"#, 60, "");
    // The lookback delta (5m) runs out after the last sample.
    check(&s, r#"http_requests_total{job="db"}"#, 120 + 300, "");
    check(
        &s,
        r#"http_requests_total{job="db"}"#,
        120 + 299,
        r#"{__name__="http_requests_total", instance="a", job="db"} 7"#,
    );
    check(
        &s,
        r#"http_requests_total{job="db"} offset 2m"#,
        120,
        r#"{__name__="http_requests_total", instance="a", job="db"} 5"#,
    );
    check(
        &s,
        r#"http_requests_total{instance="b"} @ 60"#,
        600,
        r#"{__name__="http_requests_total", instance="b", job="api"} 20"#,
    );
}

#[test]
fn matrix_ranges_are_left_open() {
    let s = requests();
    check(
        &s,
        r#"http_requests_total{instance="b"}[2m]"#,
        180,
        r#"{__name__="http_requests_total", instance="b", job="api"} 40@120 60@180"#,
    );
    check(&s, r#"count_over_time(http_requests_total{instance="b"}[2m])"#, 180, r#"{instance="b", job="api"} 2"#);
}

#[test]
fn rates_extrapolate_like_prometheus() {
    let s = requests();
    check(
        &s,
        r#"rate(http_requests_total{job="api"}[5m])"#,
        300,
        "{instance=\"a\", job=\"api\"} 0.16666666666666666\n{instance=\"b\", job=\"api\"} 0.3333333333333333",
    );
    check(&s, r#"increase(http_requests_total{instance="a",job="api"}[5m])"#, 300, r#"{instance="a", job="api"} 50"#);
    check(
        &s,
        r#"irate(http_requests_total{instance="a",job="api"}[5m])"#,
        300,
        r#"{instance="a", job="api"} 0.16666666666666666"#,
    );
}

#[test]
fn aggregations_group_and_select() {
    let s = requests();
    check(&s, "sum by (job) (http_requests_total)", 120, "{job=\"api\"} 60\n{job=\"db\"} 7");
    check(&s, "count without (instance) (http_requests_total)", 120, "{job=\"api\"} 2\n{job=\"db\"} 1");
    check(&s, "topk(1, http_requests_total)", 120, r#"{__name__="http_requests_total", instance="b", job="api"} 40"#);
    check(&s, "quantile(0.5, http_requests_total)", 120, "{} 20");
    check(&s, "count_values(\"v\", http_requests_total)", 120, "{v=\"20\"} 1\n{v=\"40\"} 1\n{v=\"7\"} 1");
}

#[test]
fn binary_operators_match_and_drop_names() {
    let s = requests();
    check(
        &s,
        r#"http_requests_total{job="api"} / on(instance) group_left http_requests_total{job="db"}"#,
        120,
        "{instance=\"a\", job=\"api\"} 2.857142857142857",
    );
    check(&s, "http_requests_total > 30", 120, r#"{__name__="http_requests_total", instance="b", job="api"} 40"#);
    check(&s, r#"http_requests_total{job="db"} > bool 30"#, 120, r#"{instance="a", job="db"} 0"#);
    check(&s, "1 + 2 * 3 ^ 2", 0, "scalar 19");
    check(
        &s,
        r#"http_requests_total{job="api"} + on(instance) http_requests_total"#,
        120,
        r#"error(Execution): found duplicate series for the match group {instance="a"} on the right hand-side of the operation: [{__name__="http_requests_total", instance="a", job="api"}, {__name__="http_requests_total", instance="a", job="db"}];many-to-many matching not allowed: matching labels must be unique on one side"#,
    );
    check(&s, r#"http_requests_total{job="db"} or http_requests_total{instance="a"}"#, 120, "{__name__=\"http_requests_total\", instance=\"a\", job=\"api\"} 20\n{__name__=\"http_requests_total\", instance=\"a\", job=\"db\"} 7");
}

#[test]
fn delayed_name_removal_keeps_name_for_label_replace() {
    let s = requests();
    check(
        &s,
        r#"label_replace(rate(http_requests_total{instance="b"}[5m]), "__name__", "rate_$1", "job", "(.*)")"#,
        300,
        r#"{__name__="rate_api", instance="b", job="api"} 0.3333333333333333"#,
    );
}

#[test]
fn comparison_filters_keep_a_dropped_name_dropped() {
    let s = requests();
    check_both(
        &s,
        r#"abs(http_requests_total{job="api"}) >= http_requests_total"#,
        120,
        "{instance=\"a\", job=\"api\"} 20\n{instance=\"b\", job=\"api\"} 40",
    );
    check_both(
        &s,
        r#"http_requests_total{job="db"} >= on(job, instance) group_right() abs(http_requests_total)"#,
        120,
        r#"{instance="a", job="db"} 7"#,
    );
}

#[test]
fn or_keeps_a_named_series_apart_from_a_nameless_one() {
    // The left side is there only at the first step; the right side's name is dropped, so it
    // is another series, not a continuation of the left one.
    check_range_both(
        &requests(),
        r#"http_requests_total{instance="b"} offset -5m or on(job, instance) max_over_time(http_requests_total{instance="b"}[5m])"#,
        (540, 660, 60),
        "{__name__=\"http_requests_total\", instance=\"b\", job=\"api\"} 200@540\n{instance=\"b\", job=\"api\"} 200@600 200@660",
    );
}

#[test]
fn count_values_merges_groups_its_label_overwrites() {
    check_both(
        &requests(),
        r#"count_values without (sensor) ("value", count_values("value", http_requests_total{job="api"}))"#,
        120,
        r#"{value="1"} 2"#,
    );
}

#[test]
fn series_that_collide_once_a_function_drops_the_name_are_an_error() {
    // At the subquery's first steps rate() has the series (without a name), at the last ones
    // only last_over_time() (with it); deriv() drops the name, so both become one label set.
    let err = "error(Execution): vector cannot contain metrics with the same labelset";
    for delayed in [false, true] {
        check_in(
            &engine_with(delayed),
            &requests(),
            r#"deriv((rate(http_requests_total{instance="b"}[2m]) or last_over_time(http_requests_total{instance="b"}[30m]))[5m:1m])"#,
            720,
            err,
        );
    }
}

#[test]
fn range_function_results_collide_without_delayed_name_removal() {
    let s = db(r#"
load 1m
    a_total{job="x"} 0 1 2 _ _ _ _ _ _ _
    b_total{job="x"} _ _ _ _ _ _ _ 3 4 5
"#);
    let q = r#"count_over_time({__name__=~"a_total|b_total"}[1m])"#;
    // Prometheus's default rejects the two results even though they never share a step…
    check_range_in(
        &engine_with(false),
        &s,
        q,
        (60, 540, 60),
        "error(Execution): vector cannot contain metrics with the same labelset",
    );
    // …while delayed name removal merges them into one series.
    check_range_in(&engine_with(true), &s, q, (60, 540, 60), r#"{job="x"} 1@60 1@120 1@420 1@480 1@540"#);
}

#[test]
fn aggregations_over_range_functions_stream_with_the_same_results() {
    // Dense, gapped and sparse series: `op(rate(x_total))` aggregates the function's series as
    // they are computed, by series; with `* 1` the function's result is evaluated whole
    // first. The sparse single-group query declines the by-series accumulators (a row per
    // group larger than its points) and goes step by step.
    let s = db(r#"
load 1m
    x_total{job="a", i="1"} 0+1x30
    x_total{job="a", i="2"} 0+3x10 _x10 30+3x10
    x_total{job="b", i="1"} 1 _x25 2 3 4
    x_total{job="c", i="1"} _x28 5 6
    y_total{job="a", i="1"} 0+2x30
"#);
    for op in ["sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"] {
        for grouping in ["by (job)", "without (job)", "by (i)", ""] {
            let streamed = format!("{op} {grouping} (rate(x_total[3m]))");
            let whole = format!("{op} {grouping} (rate(x_total[3m]) * 1)");
            for range in [(0, 1800, 60), (30, 1790, 7), (1700, 1800, 100)] {
                let ctx = QueryContext::new(Duration::from_secs(10));
                let tenant = TenantId::default_tenant();
                let (start, end, step) = (range.0 * 1000, range.1 * 1000, range.2 * 1000);
                let run = |q: &str| render(engine().range_query(&s, &tenant, q, start, end, step, &ctx));
                let got = run(&streamed);
                assert!(!got.is_empty() && !got.starts_with("error"), "{streamed}: {got}");
                assert_eq!(got, run(&whole), "{streamed} over {range:?}");
            }
        }
    }
    // With a native histogram among its inputs an aggregation goes step by step; its float
    // groups must come out as the by-series accumulators computed them.
    let histograms = (0..30).map(|i| HistogramSample {
        t: i * 60_000,
        h: FloatHistogram { count: i as f64, sum: i as f64, ..FloatHistogram::default() },
    });
    s.set_histograms(Labels::from_pairs([("__name__", "x_total"), ("job", "h")]), histograms.collect());
    let floats_only = |text: String| -> String {
        text.lines().filter(|l| l.starts_with('{') && !l.contains(r#"job="h""#)).collect::<Vec<_>>().join("\n")
    };
    for op in ["sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"] {
        for grouping in ["by (job)", "without (i)"] {
            let step_by_step = format!("{op} {grouping} (rate(x_total[3m]))");
            let by_series = format!(r#"{op} {grouping} (rate(x_total{{job!="h"}}[3m]))"#);
            let ctx = QueryContext::new(Duration::from_secs(10));
            let tenant = TenantId::default_tenant();
            let run = |q: &str| render(engine().range_query(&s, &tenant, q, 0, 1_800_000, 30_000, &ctx));
            let got = floats_only(run(&step_by_step));
            assert!(got.contains(r#"{job="a"}"#), "{step_by_step}: {got}");
            assert_eq!(got, floats_only(run(&by_series)), "{step_by_step}");
        }
    }
    // Names dropped by the function still collide, aggregated or not…
    let collide = r#"sum by (job) (rate({__name__=~"x_total|y_total", i="1"}[3m]))"#;
    let err = "error(Execution): vector cannot contain metrics with the same labelset";
    check_range(&s, collide, (0, 600, 60), err);
    // …unless names are removed late, after the aggregation.
    check_range_in(&engine_with(true), &s, collide, (600, 600, 60), r#"{job="a"} 0.05@600"#);
}

/// `series` counters of 400 samples at 15 s, in 7 groups `g`.
fn counters(series: i64) -> MemStore {
    let store = MemStore::new();
    for i in 0..series {
        let labels =
            Labels::from_pairs([("__name__", "c_total"), ("i", &*i.to_string()), ("g", &*(i % 7).to_string())]);
        let samples = (0..400).map(|k| Sample::new(k * 15_000 + i, ((k * (i + 3)) % 500) as f64)).collect();
        store.set(labels, samples);
    }
    store
}

#[test]
fn range_functions_give_one_answer_however_their_series_are_batched() {
    // Large batches are computed on several threads (where the machine has several cores),
    // one-series batches on one; the answers must not differ.
    let store = counters(120);
    let engine = |range_batch_samples| {
        Engine::new(EngineOptions { max_samples: 1_000_000, range_batch_samples, ..EngineOptions::default() })
    };
    let ctx = QueryContext::new(Duration::from_secs(10));
    let tenant = TenantId::default_tenant();
    let queries = [
        "rate(c_total[2m])",
        "sum by (g) (increase(c_total[5m]))",
        "avg(rate(c_total[1m]))",
        "stddev by (g) (rate(c_total[3m]))",
        "max_over_time(c_total[1m])",
    ];
    for q in queries {
        let run = |e: &Engine| render(e.range_query(&store, &tenant, q, 60_000, 6_000_000, 10_000, &ctx));
        let whole = run(&engine(1 << 20));
        assert!(!whole.is_empty() && !whole.starts_with("error"), "{q}: {whole}");
        assert_eq!(whole, run(&engine(8)), "{q}");
    }
}

#[test]
fn timestamp_with_at_looks_up_the_sample_at_the_at_time() {
    let s = requests();
    // Prometheus replaces the offset by `eval time - @`: the sample is the latest at 300
    // among those up to 360 (not the one at 360).
    check_both(
        &s,
        r#"timestamp(http_requests_total{instance="b"} offset -1m @ 300)"#,
        600,
        r#"{instance="b", job="api"} 300"#,
    );
    // Samples up to 135 were read, and none is within the lookback before 425.
    check_both(&s, r#"timestamp(http_requests_total{instance="b"} offset 4m50s @ 425)"#, 600, "");
    check_both(
        &s,
        r#"timestamp(http_requests_total{instance="b"} offset 1m)"#,
        600,
        r#"{instance="b", job="api"} 540"#,
    );
}

#[test]
fn computed_label_names_follow_utf8_rules() {
    let s = requests();
    check(
        &s,
        r#"label_replace(http_requests_total{instance="b"}, "höst", "$1", "instance", "(.*)")"#,
        0,
        r#"{__name__="http_requests_total", höst="b", instance="b", job="api"} 0"#,
    );
    check(
        &s,
        r#"label_join(http_requests_total{instance="b"}, "", "-", "job")"#,
        0,
        "error(Execution): invalid destination label name in label_join(): ",
    );
}

#[test]
fn subqueries_align_to_their_step() {
    let s = requests();
    check(&s, r#"max_over_time(http_requests_total{instance="b"}[3m:1m])"#, 300, r#"{instance="b", job="api"} 100"#);
    check(&s, r#"count_over_time(http_requests_total{instance="b"}[3m:1m])"#, 300, r#"{instance="b", job="api"} 3"#);
}

#[test]
fn range_queries_sort_and_fill_steps() {
    let s = requests();
    check_range(
        &s,
        r#"http_requests_total{job="db"}"#,
        (0, 180, 60),
        r#"{__name__="http_requests_total", instance="a", job="db"} 5@0 7@120 7@180"#,
    );
    check_range(&s, "time()", (0, 120, 60), "{} 0@0 60@60 120@120");
    check_range(
        &s,
        "sort(http_requests_total{job=\"db\"})",
        (0, 0, 60),
        r#"{__name__="http_requests_total", instance="a", job="db"} 5@0"#,
    );
}

#[test]
fn histogram_quantile_over_classic_buckets() {
    let s = db(r#"
load 1m
    lat_bucket{le="0.1"} 0+1x5
    lat_bucket{le="1"} 0+3x5
    lat_bucket{le="+Inf"} 0+4x5
"#);
    check(&s, "histogram_quantile(0.5, rate(lat_bucket[5m]))", 300, "{} 0.5499999999999999");
}

#[test]
fn errors_name_the_problem() {
    let s = requests();
    check(&s, "sum(", 0, "error(BadData): 1:5: parse error: unclosed left parenthesis");
    check(
        &s,
        "http_requests_total{job=\"db\"}[5m]",
        0,
        r#"{__name__="http_requests_total", instance="a", job="db"} 5@0"#,
    );
    check(
        &s,
        "sum(rate(http_requests_total))",
        0,
        r#"error(BadData): 1:10: parse error: expected type range vector in call to function "rate", got instant vector"#,
    );
    let ctx = QueryContext::new(Duration::from_secs(10));
    let tenant = TenantId::default_tenant();
    let err = engine().range_query(&s, &tenant, "http_requests_total[5m]", 0, 60_000, 60_000, &ctx).unwrap_err();
    assert_eq!(err.kind, PromqlErrorKind::BadData);
    assert_eq!(
        err.message,
        r#"invalid expression type "range vector" for range query, must be Scalar or instant Vector"#
    );
}

#[test]
fn sample_limit_and_cancellation_stop_the_query() {
    let s = requests();
    let small = Engine::new(EngineOptions { max_samples: 5, ..EngineOptions::default() });
    let ctx = QueryContext::new(Duration::from_secs(10));
    let tenant = TenantId::default_tenant();
    let err = small.instant_query(&s, &tenant, "http_requests_total[10m]", 600_000, &ctx).unwrap_err();
    assert_eq!(err.kind, PromqlErrorKind::TooManySamples);
    assert_eq!(err.message, "query processing would load too many samples into memory in query execution");

    let ctx = QueryContext::new(Duration::from_secs(10));
    ctx.cancel_handle().store(true, Ordering::Relaxed);
    let err = engine().instant_query(&s, &tenant, "http_requests_total", 0, &ctx).unwrap_err();
    assert_eq!(err.kind, PromqlErrorKind::Canceled);
}

#[test]
fn format_and_parse_query() {
    assert_eq!(crate::format_query("sum(rate(x[5m]))by(job)").unwrap(), "sum by (job) (rate(x[5m]))");
    let json = crate::parse_query_json("up").unwrap();
    assert_eq!(json["type"], "vectorSelector");
    assert_eq!(crate::format_query("sum(").unwrap_err().kind, PromqlErrorKind::BadData);
}

/// Malformed and odd queries must come back as errors or results, never as panics.
#[test]
fn hostile_queries_do_not_panic() {
    let s = requests();
    let fixed = [
        "",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "`",
        "x[",
        "x offset",
        "x offset (",
        "x[5m:",
        "x[5m+",
        "x[step(]",
        "x @",
        "info(",
        "info(x, {",
        "rate(x[5m] anchored",
        "x smoothed smoothed",
        "anchored",
        "smoothed",
        "x[1h/0]",
        "x offset 1e400",
        "x[99999999999999999y]",
        "label_replace(x, \"é\", \"\", \"a\", \"(\")",
        "histogram_quantile(0.5, x)",
        "topk(1e30, x)",
        "limit_ratio(2, x)",
        "sum(x) by (é)",
        "x{a=~\"[\"}",
        "min_of(step(), x)",
        "x[-5m]",
        "x offset -(-(-5m))",
        "sort_by_label(x, \"\")",
        "{__name__=~\".*\"}",
    ];
    // A deterministic pseudo-random mix of PromQL fragments.
    let pieces = [
        "x",
        "(",
        ")",
        "[5m]",
        "[5m:1m]",
        "{a=\"b\"}",
        " offset 1m",
        " @ 10",
        "+",
        " and ",
        " or ",
        "rate(",
        "sum by (a) (",
        ",",
        "1",
        "\"s\"",
        " anchored",
        " smoothed",
        "step()",
        "[",
        "]",
        "info(",
        "topk(",
        "-",
        "^",
        " bool ",
        "==",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = Vec::new();
    for _ in 0..400 {
        let mut q = String::new();
        for _ in 0..(seed % 7 + 1) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            q.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
        }
        random.push(q);
    }
    let tenant = TenantId::default_tenant();
    for q in fixed.iter().map(|q| q.to_string()).chain(random) {
        let ctx = QueryContext::new(Duration::from_secs(10));
        let _ = engine().instant_query(&s, &tenant, &q, 60_000, &ctx);
        let _ = engine().range_query(&s, &tenant, &q, 0, 120_000, 60_000, &ctx);
        let _ = crate::format_query(&q);
    }
}

/// A counter that restarts between 3m and 4m and climbs past its old value (its start
/// timestamp moves to 3m30s), so only the start timestamp reveals the reset; and a counter
/// seen once, with its start inside the window.
fn restarted_counter() -> MemStore {
    db(r#"
load 1m
    x_total@st  _ -30s -90s -150s -30s
    x_total     _ 10   20   30    40
    once_total@st  _ _ -90s
    once_total     _ _ 3
"#)
}

#[test]
fn start_timestamps_reveal_resets_and_zero_points() {
    let s = restarted_counter();
    let st = engine_with_starts();
    // 0 at 30s, +10 +10 +10, restart, 0 → 40: 70, measured from the start (no extrapolation).
    check_in(&st, &s, "increase(x_total[4m])", 240, "{} 70");
    check_in(&st, &s, "rate(x_total[4m])", 240, &format!("{{}} {}", 70.0 / 240.0));
    check_in(&st, &s, "resets(x_total[4m])", 240, "{} 1");
    check_in(&st, &s, "irate(x_total[4m])", 240, &format!("{{}} {}", 40.0 / 60.0));
    // One sample is enough when its start lies in the window: 0 → 3 since 30s.
    check_in(&st, &s, "increase(once_total[3m])", 180, "{} 3");
    // A start at or before the window's left end is no zero point: one sample, no rate.
    check_in(&st, &s, "increase(once_total[1m30s])", 180, "");
    // Offsets and `@` move the window, not the meaning.
    check_in(&st, &s, "increase(x_total[4m] offset 1m)", 300, "{} 70");
    check_in(&st, &s, "increase(x_total[4m] @ 240)", 0, "{} 70");
    check_range_in(&st, &s, "resets(x_total[2m])", (180, 240, 60), "{} 0@180 1@240");
}

#[test]
fn start_timestamps_are_ignored_where_prometheus_ignores_them() {
    let s = restarted_counter();
    let st = engine_with_starts();
    // Without the option: plain extrapolation, no reset, and a single sample has no rate.
    check(&s, "increase(x_total[4m])", 240, "{} 40");
    check(&s, "resets(x_total[4m])", 240, "{} 0");
    check(&s, "irate(x_total[4m])", 240, &format!("{{}} {}", 10.0 / 60.0));
    check(&s, "increase(once_total[3m])", 180, "");
    // A subquery's points carry no start timestamps.
    check_in(&st, &s, "increase(x_total[4m:1m])", 240, "{} 40");
    check_in(&st, &s, "resets(x_total[4m:1m])", 240, "{} 0");
    // `delta` is for gauges; other range functions never read them.
    check_in(&st, &s, "delta(x_total[4m])", 240, "{} 40");
    check_in(&st, &s, "changes(x_total[4m])", 240, "{} 3");
}

#[test]
fn start_timestamp_function_reads_the_selected_sample() {
    let s = restarted_counter();
    let st = engine_with_starts();
    check_in(&st, &s, "start_timestamp(x_total)", 120, "{} 30");
    check_in(&st, &s, "start_timestamp(x_total)", 270, "{} 210");
    check_range_in(&st, &s, "start_timestamp(once_total)", (60, 180, 60), "{} 30@120 30@180");
    // With `@`, the sample at that time, whatever the step.
    check_range_in(&st, &s, "start_timestamp(x_total @ 120)", (0, 60, 60), "{} 30@0 30@60");
    // An expression's samples have none; neither has an engine that does not use them.
    check_in(&st, &s, "start_timestamp(x_total * 1)", 240, "");
    check(&s, "start_timestamp(x_total)", 240, "");
    // A sample without a start timestamp reads 0, as in Prometheus.
    let plain = db("load 1m\n    p_total 1 2\n");
    check_in(&st, &plain, "start_timestamp(p_total)", 60, "{} 0");
}

#[test]
fn overlapping_start_timestamps_warn_for_rate_and_increase_only() {
    let s = db(r#"
load 1m
    o_total@st  _ _ -2m -2m -2m
    o_total     _ _ 60  120 180
"#);
    let st = engine_with_starts();
    let warning = r#"PromQL warning: sample has start time that overlaps with previous sample timestamp for metric "o_total" (1:10)"#;
    check_in(&st, &s, "increase(o_total[3m])", 240, &format!("{{}} 180\n{warning}"));
    check_in(&st, &s, "irate(o_total[3m])", 240, "{} 1");
    check_in(&st, &s, "resets(o_total[3m])", 240, "{} 0");
}
