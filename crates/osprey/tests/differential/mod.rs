//! Helpers of `promql_differential.rs`: seeded data and queries, the exclusion list of known
//! Prometheus 2.x → 3.x differences, answer comparison, the two servers' endpoints, and
//! `run`, which loads both servers and compares every answer.

pub mod compare;
pub mod data;
pub mod exclusions;
pub mod peer;
pub mod prng;
pub mod queries;

use std::time::{Duration, Instant};

use compare::{compare, parse, Leniency, Verdict};
use peer::Endpoint;

use crate::common::{eventually, now_ms};

/// Mismatches printed in full, unless `OSPREY_DIFF_SHOW` says otherwise.
const SHOW_MISMATCHES: usize = 20;

pub struct Options {
    pub data_seed: u64,
    pub query_seed: u64,
    pub queries: usize,
    /// Run only the generated queries whose text contains this (for chasing one mismatch).
    pub only: Option<String>,
}

pub struct Summary {
    pub queries: usize,
    pub matched: usize,
    pub mismatched: usize,
    pub excluded: usize,
}

fn shorten(v: &serde_json::Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(700) {
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()),
        None => s,
    }
}

/// Wall-clock time for answering `queries` queries: generous (about 5x what both servers
/// need on a loaded 2-core machine), only there to bound the test when a server hangs.
fn query_budget(queries: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(60) * queries as u32
}

/// Waits (bounded) until `endpoint` holds at least `want` series live at `time_s`.
fn wait_for_data(endpoint: &Endpoint, time_s: i64, want: usize) -> bool {
    let q = queries::Query { expr: "count({__name__=~\".+\"})".into(), when: queries::When::Instant { time_s } };
    eventually(Duration::from_secs(20), || {
        let (_, body) = endpoint.query(&q);
        let n = body["data"]["result"][0]["value"][1].as_str()?.parse::<usize>().ok()?;
        (n >= want).then_some(())
    })
    .is_some()
}

/// Writes the same data to both servers, runs every query on both and compares the answers
/// of `candidate` with those of `reference`; prints the summary line and the first
/// mismatches.
pub fn run(reference: &Endpoint, candidate: &Endpoint, opts: &Options) -> Summary {
    let started = Instant::now();
    // Data ends about two minutes ago, on a whole minute.
    let end_s = now_ms() / 1000 / 60 * 60 - 120;
    let start_s = end_s - data::ROUNDS * data::INTERVAL_MS / 1000;
    let dataset = data::generate(opts.data_seed, start_s * 1000);
    std::thread::scope(|s| {
        for ep in [reference, candidate] {
            let rounds = &dataset.rounds;
            s.spawn(move || rounds.iter().for_each(|r| ep.write(r)));
        }
    });
    // Every series but the one that ended early is live at the end of the data.
    let live = dataset.series - 1;
    assert!(wait_for_data(reference, end_s + 30, live), "{} does not show the written series", reference.name);
    if !wait_for_data(candidate, end_s + 30, live) {
        eprintln!("warning: {} does not show all {live} written series after 20s; comparing anyway", candidate.name);
    }
    let loaded = Instant::now();

    let mut all = queries::generate(opts.query_seed, start_s, opts.queries);
    if let Some(only) = &opts.only {
        all.retain(|q| q.expr.contains(only.as_str()));
    }
    let (excluded, to_run): (Vec<_>, Vec<_>) = all.iter().partition(|q| exclusions::excluded(&q.expr).is_some());
    // Both servers answer in parallel; each gets the queries one at a time, in the same order,
    // until the time budget is spent (a hanging server must not hang the test).
    let deadline = Instant::now() + query_budget(to_run.len());
    let answer_all = |ep: &Endpoint| -> Vec<Option<(u16, serde_json::Value)>> {
        to_run.iter().map(|q| (Instant::now() < deadline).then(|| ep.query(q))).collect()
    };
    let (want, got) = std::thread::scope(|s| {
        let r = s.spawn(|| answer_all(reference));
        let c = s.spawn(|| answer_all(candidate));
        (r.join().unwrap(), c.join().unwrap())
    });

    let unanswered = (0, serde_json::Value::String("not answered within the time budget".into()));
    let (mut matched, mut ties, mut excused, mut mismatched) = (0, 0, 0, Vec::new());
    for ((q, w), g) in to_run.iter().zip(&want).zip(&got) {
        let (Some(w), Some(g)) = (w, g) else {
            let (w, g) = (w.as_ref().unwrap_or(&unanswered), g.as_ref().unwrap_or(&unanswered));
            mismatched.push((q, "not run within the time budget".to_string(), w, g));
            continue;
        };
        let lenient = Leniency {
            ordered: q.ordered(),
            ties: q.expr.contains("topk") || q.expr.contains("bottomk"),
            lone_nan_variance: exclusions::aggregates_variance(&q.expr),
        };
        match compare(&parse(w.0, &w.1), &parse(g.0, &g.1), lenient) {
            Verdict::Match => matched += 1,
            Verdict::Tie => ties += 1,
            Verdict::Excused => excused += 1,
            Verdict::Mismatch(why) => mismatched.push((q, why, w, g)),
        }
    }
    let show = std::env::var("OSPREY_DIFF_SHOW").ok().and_then(|v| v.parse().ok()).unwrap_or(SHOW_MISMATCHES);
    for (q, why, w, g) in mismatched.iter().take(show) {
        eprintln!(
            "MISMATCH {}\n  why:   {why}\n  {}: {}\n  {}: {}",
            q.describe(),
            reference.name,
            shorten(&w.1),
            candidate.name,
            shorten(&g.1)
        );
    }
    let errors = want.iter().flatten().filter(|(_, b)| b["status"] == "error").count();
    let empty =
        want.iter().flatten().filter(|(_, b)| b["data"]["result"].as_array().is_some_and(|r| r.is_empty())).count();
    let summary = Summary {
        queries: all.len(),
        matched,
        mismatched: mismatched.len(),
        excluded: excluded.len() + ties + excused,
    };
    println!(
        "promql differential: {} queries, {} matched, {} mismatched, {} excluded ({} by query, {} by answer, {} topk/bottomk ties); \
         {} series, {} samples from {start_s}; {} reference answers were errors, {} empty; load {:.1}s, \
         queries {:.1}s",
        summary.queries,
        summary.matched,
        summary.mismatched,
        summary.excluded,
        excluded.len(),
        excused,
        ties,
        dataset.series,
        dataset.samples,
        errors,
        empty,
        (loaded - started).as_secs_f64(),
        loaded.elapsed().as_secs_f64(),
    );
    summary
}
