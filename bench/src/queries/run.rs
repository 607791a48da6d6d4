//! One peer's query run: load the data, wait until the peer answers for all of it, then time
//! every query of the set, warm (one untimed run first), and read the memory it used meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::report::{QueryMeasurements, QueryOutcome};
use super::stats::{median, percentile};
use super::QuerySpec;
use crate::peer::{self, Peer};
use crate::send::{self, RetryPolicy};
use crate::server::Server;
use crate::workload::Workload;

/// How far apart in data time senders may drift: half of the hour Prometheus and Osprey
/// accept behind their newest sample.
const PHASE_MS: i64 = 30 * 60_000;
/// How long a peer may take after loading until it answers for every series and sample.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Below this share of one core a server counts as idle (see [`wait_until_idle`]).
const IDLE_CPU_SHARE: f64 = 0.1;
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// How long to wait for a server's background work to end before timing anyway.
const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Timed runs per query, after one untimed warm-up run.
    pub repeats: usize,
    pub query_timeout: Duration,
}

/// What the data should look like once loaded.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// Series that must answer at `at_ms`; 0 when not known.
    pub series: u64,
    /// Instant queries for the series count are evaluated here.
    pub at_ms: i64,
}

/// One query's timings on one peer.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct QueryResult {
    pub name: String,
    pub timings_ms: Vec<f64>,
    pub median_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    /// Series in the answer (1 for a scalar), from the warm-up run.
    pub series: Option<usize>,
    /// Points over all series in the answer.
    pub points: Option<usize>,
    pub error: Option<String>,
}

/// The size of an answer: series and points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    series: usize,
    points: usize,
}

/// Loads the workload into `peer`, waits for it, runs `set`, stops the peer.
pub async fn run_peer(
    peer: Peer,
    binary: &std::path::Path,
    workload: Arc<Workload>,
    client: &reqwest::Client,
    set: &[QuerySpec],
    expected: Expected,
    opts: RunOptions,
) -> QueryOutcome {
    let mut server = match peer.start(binary, client).await {
        Ok(server) => server,
        Err(e) => return QueryOutcome::Unavailable { reason: format!("{e:#}") },
    };
    let died = |server: &Server, when: &str| QueryOutcome::Unavailable {
        reason: format!("exited {when}; its log ends with:\n{}", server.log_tail()),
    };
    eprintln!("bench: {}: ready (pid {}), loading {} samples", peer.name(), server.pid(), workload.samples);
    let url = peer::write_url(&server);
    let sending = send::send_in_phases(client, &url, workload.clone(), RetryPolicy::default(), PHASE_MS);
    let Some(stats) = server.watch(sending).await else { return died(&server, "while loading") };
    eprintln!(
        "bench: {}: loaded {} samples in {:.1} s ({} lost); waiting until it answers for all",
        peer.name(),
        stats.samples_accepted,
        stats.wall.as_secs_f64(),
        stats.samples_lost
    );
    if let Some(e) = &stats.first_error {
        eprintln!("bench: {}: first loading error: {e}", peer.name());
    }
    let mut m = QueryMeasurements {
        samples_accepted: stats.samples_accepted,
        samples_lost: stats.samples_lost,
        load_seconds: stats.wall.as_secs_f64(),
        send_error: stats.first_error,
        ..QueryMeasurements::default()
    };
    let waited = Instant::now();
    // Series whose samples were all refused cannot be expected.
    let expected = Expected { series: if stats.samples_lost == 0 { expected.series } else { 0 }, ..expected };
    let ready = wait_until_complete(peer, &server, client, &workload, expected, stats.samples_accepted);
    let Some(readiness) = server.watch(ready).await else { return died(&server, "while being checked") };
    m.ready_seconds = waited.elapsed().as_secs_f64();
    (m.series_queryable, m.samples_queryable, m.readiness_problem) = readiness;
    if let Some(problem) = &m.readiness_problem {
        eprintln!("bench: {}: {problem}; timing the queries anyway", peer.name());
    }

    let (idle_after, idle) = wait_until_idle(server.pid()).await;
    m.idle_wait_seconds = idle_after.as_secs_f64();
    if !idle {
        m.readiness_problem.get_or_insert_with(|| {
            format!("still busy (background compaction?) after {} s; timed anyway", IDLE_TIMEOUT.as_secs())
        });
    }
    eprintln!("bench: {}: timing {} queries x {} runs", peer.name(), set.len(), opts.repeats);
    m.load_average_during_queries = crate::report::load_average();
    let hwm_reset = server.reset_peak_rss();
    let params = extra_params(peer);
    let mut results = Vec::with_capacity(set.len());
    for spec in set {
        let timing = time_query(client, &server.base_url, spec, params, opts);
        let Some(result) = server.watch(timing).await else { return died(&server, "during the queries") };
        if let Some(e) = &result.error {
            eprintln!("bench: {}: {}: {}", peer.name(), spec.name, e.lines().next().unwrap_or_default());
        }
        results.push(result);
    }
    m.results = results;
    m.peak_rss_sampled_bytes = server.peak_rss_sampled();
    m.peak_rss_hwm_bytes = hwm_reset.then(|| server.peak_rss_hwm());
    if let Err(e) = server.stop() {
        eprintln!("bench: {}: {e:#}", peer.name());
    }
    QueryOutcome::Measured(m)
}

/// Waits until the server uses less than [`IDLE_CPU_SHARE`] of a core over [`IDLE_WINDOW`]:
/// compaction of freshly loaded days of data must not run during the timed queries of one
/// peer and not another's. Returns the time waited and whether the server became idle.
async fn wait_until_idle(pid: u32) -> (Duration, bool) {
    let started = Instant::now();
    let mut before = crate::server::cpu_seconds(pid);
    while started.elapsed() < IDLE_TIMEOUT {
        tokio::time::sleep(IDLE_WINDOW).await;
        let now = crate::server::cpu_seconds(pid);
        match (before, now) {
            (Some(a), Some(b)) if b - a < IDLE_CPU_SHARE * IDLE_WINDOW.as_secs_f64() => {
                return (started.elapsed(), true)
            }
            (_, None) => return (started.elapsed(), false),
            _ => before = now,
        }
    }
    (started.elapsed(), false)
}

/// Query parameters a peer needs to be measured like the others. VictoriaMetrics caches
/// range query results across requests; repeating a query would time its cache, not its
/// engine, so the cache is bypassed.
fn extra_params(peer: Peer) -> &'static [(&'static str, &'static str)] {
    match peer {
        Peer::VictoriaMetrics => &[("nocache", "1")],
        Peer::Osprey | Peer::Prometheus => &[],
    }
}

/// Polls until the peer answers with every series, then checks every sample is there.
/// Returns the last counts seen and, if they never matched, why.
async fn wait_until_complete(
    peer: Peer,
    server: &Server,
    client: &reqwest::Client,
    workload: &Workload,
    expected: Expected,
    samples_accepted: u64,
) -> (Option<u64>, Option<u64>, Option<String>) {
    if peer == Peer::VictoriaMetrics {
        // Recent samples become searchable about a second after ingestion otherwise.
        let flush = client.get(format!("{}/internal/force_flush", server.base_url)).send().await;
        if let Err(e) = flush {
            eprintln!("bench: {}: /internal/force_flush: {e}", peer.name());
        }
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    let (mut series, mut samples) = (None, None);
    let mut problem;
    loop {
        match series_count(server, client, expected.at_ms).await {
            Ok(n) => {
                series = Some(n);
                let missing = expected.series > 0 && n != expected.series;
                problem = missing.then(|| format!("{n} series of {} queryable", expected.series));
            }
            Err(e) => problem = Some(format!("series count failed: {e:#}")),
        }
        if problem.is_none() {
            match peer::stored_samples(server, client, workload.first_ms, workload.last_ms).await {
                Ok(n) => {
                    samples = Some(n);
                    problem = (n != samples_accepted).then(|| format!("{n} of {samples_accepted} samples queryable"));
                }
                Err(e) => problem = Some(format!("sample count failed: {e:#}")),
            }
        }
        if problem.is_none() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let problem = problem.map(|p| format!("{p} after waiting {} s", READY_TIMEOUT.as_secs()));
    (series, samples, problem)
}

async fn series_count(server: &Server, client: &reqwest::Client, at_ms: i64) -> anyhow::Result<u64> {
    let time = format!("{:.3}", at_ms as f64 / 1000.0);
    let response = client
        .get(format!("{}/api/v1/query", server.base_url))
        .query(&[("query", r#"count({__name__=~".+"})"#), ("time", time.as_str())])
        .timeout(Duration::from_secs(120))
        .send()
        .await?;
    let body = response.text().await?;
    let value: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("answer is not JSON ({e}): {}", body.chars().take(300).collect::<String>()))?;
    let text = value["data"]["result"][0]["value"][1].as_str().unwrap_or("0");
    Ok(text.parse::<f64>().map_or(0, |v| v as u64))
}

/// One warm-up run, then `repeats` timed ones; stops at the first failure.
async fn time_query(
    client: &reqwest::Client,
    base_url: &str,
    spec: &QuerySpec,
    params: &[(&str, &str)],
    opts: RunOptions,
) -> QueryResult {
    let mut result = QueryResult { name: spec.name.clone(), ..QueryResult::default() };
    let (path, mut query) = spec.kind.endpoint_and_params();
    query.push(("query", spec.promql.clone()));
    query.extend(params.iter().map(|(k, v)| (*k, v.to_string())));
    let url = format!("{base_url}{path}");
    for run in 0..=opts.repeats {
        let started = Instant::now();
        let answer = async {
            let response = client.get(&url).query(&query).timeout(opts.query_timeout).send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        }
        .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let shape = match answer {
            Ok((status, body)) if status.is_success() => parse_answer(&body),
            Ok((status, body)) => Err(format!("{status}: {}", body.trim().chars().take(500).collect::<String>())),
            Err(e) => Err(format!("request failed: {e}")),
        };
        match shape {
            Ok(shape) if run == 0 => (result.series, result.points) = (Some(shape.series), Some(shape.points)),
            Ok(_) => result.timings_ms.push(elapsed_ms),
            Err(e) => {
                result.error = Some(e);
                break;
            }
        }
    }
    result.median_ms = median(&result.timings_ms);
    result.p90_ms = percentile(&result.timings_ms, 90.0);
    result
}

/// The shape of a successful Prometheus API answer, or the error it carries.
fn parse_answer(body: &str) -> Result<Shape, String> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| format!("answer is not JSON ({e}): {}", body.chars().take(300).collect::<String>()))?;
    if value["status"] != "success" {
        let error = value["error"].as_str().unwrap_or("no error message");
        return Err(format!("status {}: {error}", value["status"]));
    }
    let data = &value["data"];
    match data["resultType"].as_str() {
        Some("scalar" | "string") => Ok(Shape { series: 1, points: 1 }),
        Some("vector") => {
            let n = data["result"].as_array().map_or(0, Vec::len);
            Ok(Shape { series: n, points: n })
        }
        Some("matrix") => {
            let result = data["result"].as_array().map(Vec::as_slice).unwrap_or_default();
            let points = result.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum();
            Ok(Shape { series: result.len(), points })
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::Kind;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn answers_are_measured_in_series_and_points() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"code":"200"},"value":[1,"1"]},{"metric":{"code":"500"},"value":[1,"2"]}]}}"#;
        assert_eq!(parse_answer(vector), Ok(Shape { series: 2, points: 2 }));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"1"],[2,"1"],[3,"1"]]},{"metric":{"a":"b"},"values":[[1,"1"]]}]}}"#;
        assert_eq!(parse_answer(matrix), Ok(Shape { series: 2, points: 4 }));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert_eq!(parse_answer(scalar), Ok(Shape { series: 1, points: 1 }));
        let empty = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(parse_answer(empty), Ok(Shape { series: 0, points: 0 }));
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert!(parse_answer(error).unwrap_err().contains("parse error at char 5"));
        assert!(parse_answer("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn only_victoria_metrics_gets_its_cache_bypassed() {
        assert_eq!(extra_params(Peer::VictoriaMetrics), &[("nocache", "1")]);
        assert!(extra_params(Peer::Osprey).is_empty() && extra_params(Peer::Prometheus).is_empty());
    }

    /// Answers every request with `body`, recording the request lines.
    fn canned_server(body: &'static str, requests: usize) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let _ = tx.send(first.trim().to_string());
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn a_query_is_warmed_up_once_then_timed_repeats_times() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#;
        let (url, requests) = canned_server(body, 4);
        let spec = QuerySpec {
            name: "q".into(),
            promql: "sum(rate(x[5m]))".into(),
            kind: Kind::Range { start_ms: 0, end_ms: 60_000, step_ms: 15_000 },
        };
        let opts = RunOptions { repeats: 3, query_timeout: Duration::from_secs(10) };
        let r = time_query(&reqwest::Client::new(), &url, &spec, &[("nocache", "1")], opts).await;
        assert_eq!(r.error, None);
        assert_eq!(r.timings_ms.len(), 3);
        assert_eq!((r.series, r.points), (Some(1), Some(2)));
        assert!(r.median_ms.is_some() && r.p90_ms >= r.median_ms);
        let first = requests.recv().expect("a request");
        assert!(first.starts_with("GET /api/v1/query_range?start=0.000&end=60.000&step=15.000&query=sum"), "{first}");
        assert!(first.contains("nocache=1"), "{first}");
    }

    #[tokio::test]
    async fn a_failing_query_records_the_error_and_stops() {
        let (url, _requests) = canned_server(r#"{"status":"error","error":"too many points"}"#, 1);
        let spec = QuerySpec { name: "q".into(), promql: "x".into(), kind: Kind::Instant { time_ms: 0 } };
        let opts = RunOptions { repeats: 5, query_timeout: Duration::from_secs(10) };
        let r = time_query(&reqwest::Client::new(), &url, &spec, &[], opts).await;
        assert!(r.error.as_deref().is_some_and(|e| e.contains("too many points")), "{r:?}");
        assert!(r.timings_ms.is_empty() && r.median_ms.is_none() && r.series.is_none());
    }
}
