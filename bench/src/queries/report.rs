//! The query benchmark's results: a table of latencies per query and peer with Osprey's
//! ratios and the answers' series counts side by side, and the same figures as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::run::QueryResult;
use super::stats::median;
use super::{Layout, QuerySpec};
use crate::peer::Peer;
use crate::report::{align, Machine};

#[derive(Debug, Serialize)]
pub struct QueryReport {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub data: DataSummary,
    pub repeats: usize,
    pub queries: Vec<QuerySpec>,
    pub peers: Vec<PeerQueries>,
}

#[derive(Debug, Serialize)]
pub struct DataSummary {
    pub series: usize,
    pub samples: u64,
    pub layout: Layout,
    pub first_timestamp_ms: i64,
    pub last_timestamp_ms: i64,
    pub senders: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub generation_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct PeerQueries {
    pub peer: &'static str,
    pub binary: String,
    pub version: Option<String>,
    pub load_average_before: Option<f64>,
    #[serde(flatten)]
    pub outcome: QueryOutcome,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum QueryOutcome {
    Unavailable { reason: String },
    Measured(QueryMeasurements),
}

#[derive(Debug, Default, Serialize)]
pub struct QueryMeasurements {
    pub samples_accepted: u64,
    pub samples_lost: u64,
    pub load_seconds: f64,
    pub send_error: Option<String>,
    /// Seconds from the end of loading until every series and sample was queryable.
    pub ready_seconds: f64,
    pub series_queryable: Option<u64>,
    pub samples_queryable: Option<u64>,
    pub readiness_problem: Option<String>,
    /// Seconds waited after that until the server's own background work had ended.
    pub idle_wait_seconds: f64,
    pub load_average_during_queries: Option<f64>,
    /// Largest VmRSS sampled every 100 ms while the queries ran.
    pub peak_rss_sampled_bytes: u64,
    /// VmHWM over the queries alone, when the kernel allowed resetting it.
    pub peak_rss_hwm_bytes: Option<u64>,
    pub results: Vec<QueryResult>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl QueryReport {
    fn measurements(&self, peer: Peer) -> Result<&QueryMeasurements, &'static str> {
        match self.peers.iter().find(|p| p.peer == peer.name()).map(|p| &p.outcome) {
            Some(QueryOutcome::Measured(m)) => Ok(m),
            Some(QueryOutcome::Unavailable { .. }) => Err("unavailable"),
            None => Err("not run"),
        }
    }

    /// The table (median / p90 in ms per peer, Osprey's ratios of medians, series per
    /// answer), then summary rows and a note per peer.
    pub fn render(&self) -> String {
        let peers = Peer::ALL.map(|p| self.measurements(p));
        let result = |i: usize, name: &str| peers[i].ok().and_then(|m| m.results.iter().find(|r| r.name == name));
        let mut lines = vec![vec![
            "query (ms: median / p90)".to_string(),
            Peer::Osprey.title().to_string(),
            Peer::Prometheus.title().to_string(),
            Peer::VictoriaMetrics.title().to_string(),
            "Osprey/Prometheus".to_string(),
            "Osprey/VM".to_string(),
            "series O/P/VM".to_string(),
        ]];
        let mut mismatches = Vec::new();
        for spec in &self.queries {
            let cell = |i: usize| match (peers[i], result(i, &spec.name)) {
                (Err(why), _) => why.to_string(),
                (Ok(_), None) => "-".to_string(),
                (Ok(_), Some(r)) if r.error.is_some() => "error".to_string(),
                (Ok(_), Some(r)) => format!("{} / {}", ms(r.median_ms), ms(r.p90_ms)),
            };
            let ratio = |i: usize| {
                let median = |i: usize| result(i, &spec.name).and_then(|r| r.median_ms);
                ratio(median(0), median(i))
            };
            let series: Vec<Option<usize>> =
                (0..3).map(|i| result(i, &spec.name).filter(|r| r.error.is_none()).and_then(|r| r.series)).collect();
            let mut agreement =
                series.iter().map(|s| s.map_or("-".to_string(), |n| n.to_string())).collect::<Vec<_>>().join("/");
            let answered: Vec<usize> = series.iter().flatten().copied().collect();
            if answered.windows(2).any(|w| w[0] != w[1]) {
                agreement.push_str(" DIFFER");
                mismatches.push(spec.name.as_str());
            }
            lines.push(vec![spec.name.clone(), cell(0), cell(1), cell(2), ratio(1), ratio(2), agreement]);
        }
        let set_medians = self.set_medians(&peers);
        let answered_by_all = set_medians.1;
        let summary = |label: String, values: [Option<f64>; 3], show: fn(Option<f64>) -> String| {
            let cells: Vec<String> = (0..3)
                .map(|i| match peers[i] {
                    Err(why) => why.to_string(),
                    Ok(_) => show(values[i]),
                })
                .collect();
            vec![
                label,
                cells[0].clone(),
                cells[1].clone(),
                cells[2].clone(),
                ratio(values[0], values[1]),
                ratio(values[0], values[2]),
            ]
        };
        lines.push(summary(format!("median over the set ({answered_by_all} queries)"), set_medians.0, ms));
        let mib = |f: fn(&QueryMeasurements) -> Option<u64>| peers.map(|m| m.ok().and_then(f).map(|b| b as f64 / MIB));
        let one_decimal = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        lines.push(summary(
            "peak RSS during queries, sampled (MiB)".into(),
            mib(|m| Some(m.peak_rss_sampled_bytes)),
            one_decimal,
        ));
        lines.push(summary("peak RSS during queries, VmHWM (MiB)".into(), mib(|m| m.peak_rss_hwm_bytes), one_decimal));
        lines.push(summary("load time (s)".into(), peers.map(|m| m.ok().map(|m| m.load_seconds)), one_decimal));

        let mut out = align(&lines);
        out.push_str(
            "ratios are Osprey/peer of the medians: below 1x means Osprey answered faster or used less memory\n",
        );
        if !mismatches.is_empty() {
            let _ = writeln!(out, "series counts DIFFER between peers for: {}", mismatches.join("; "));
        }
        for p in &self.peers {
            let _ = writeln!(out, "\n{} ({}): {}", p.peer, p.binary, p.version.as_deref().unwrap_or("version unknown"));
            if let Some(load) = p.load_average_before {
                let _ = writeln!(out, "  load average before loading: {load:.2}");
            }
            match &p.outcome {
                QueryOutcome::Unavailable { reason } => {
                    let _ = writeln!(out, "  unavailable: {}", reason.trim_end().replace('\n', "\n    "));
                }
                QueryOutcome::Measured(m) => {
                    if let Some(load) = m.load_average_during_queries {
                        let _ = writeln!(out, "  load average when the queries started: {load:.2}");
                    }
                    let _ = writeln!(
                        out,
                        "  {} samples accepted, {} lost; {} series and {} samples queryable after {:.1} s; idle {:.1} s later",
                        m.samples_accepted,
                        m.samples_lost,
                        m.series_queryable.map_or("?".into(), |n| n.to_string()),
                        m.samples_queryable.map_or("?".into(), |n| n.to_string()),
                        m.ready_seconds,
                        m.idle_wait_seconds
                    );
                    if let Some(e) = &m.send_error {
                        let _ = writeln!(out, "  first loading error: {e}");
                    }
                    if let Some(problem) = &m.readiness_problem {
                        let _ = writeln!(out, "  incomplete: {problem}");
                    }
                    for r in m.results.iter().filter(|r| r.error.is_some()) {
                        let e = r.error.as_deref().unwrap_or_default();
                        let _ = writeln!(out, "  {} failed: {}", r.name, e.lines().next().unwrap_or_default());
                    }
                }
            }
        }
        out
    }

    /// Each peer's median of per-query medians, over the queries every measured peer
    /// answered (so the peers' figures cover the same queries), and how many those are.
    fn set_medians(&self, peers: &[Result<&QueryMeasurements, &str>; 3]) -> ([Option<f64>; 3], usize) {
        let median_of = |m: &QueryMeasurements, name: &str| m.results.iter().find(|r| r.name == name)?.median_ms;
        let common: Vec<&str> = self
            .queries
            .iter()
            .map(|q| q.name.as_str())
            .filter(|name| peers.iter().flatten().all(|m| median_of(m, name).is_some()))
            .collect();
        let medians = peers.map(|m| {
            let m = m.ok()?;
            median(&common.iter().filter_map(|name| median_of(m, name)).collect::<Vec<_>>())
        });
        (medians, common.len())
    }

    /// Writes the report as `<dir>/queries-<date>.json` and returns the path.
    pub fn write_json(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        crate::report::write_json(self, dir, &format!("queries-{}", self.date.replace(':', "")))
    }
}

/// Milliseconds with about three significant digits.
fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::Kind;

    fn spec(name: &str) -> QuerySpec {
        QuerySpec { name: name.into(), promql: "up".into(), kind: Kind::Instant { time_ms: 0 } }
    }

    fn result(name: &str, median_ms: f64, series: usize) -> QueryResult {
        QueryResult {
            name: name.into(),
            timings_ms: vec![median_ms],
            median_ms: Some(median_ms),
            p90_ms: Some(median_ms * 2.0),
            series: Some(series),
            points: Some(series),
            error: None,
        }
    }

    fn peer(peer: Peer, results: Vec<QueryResult>) -> PeerQueries {
        PeerQueries {
            peer: peer.name(),
            binary: "/bin/x".into(),
            version: None,
            load_average_before: Some(3.0),
            outcome: QueryOutcome::Measured(QueryMeasurements {
                peak_rss_sampled_bytes: 64 << 20,
                results,
                ..QueryMeasurements::default()
            }),
        }
    }

    fn report(peers: Vec<PeerQueries>) -> QueryReport {
        QueryReport {
            date: "2026-11-29T16:00:00Z".into(),
            command: "osprey-bench queries --quick".into(),
            machine: Machine { cpus: 2, cpu_model: None, memory_bytes: None },
            data: DataSummary {
                series: 10,
                samples: 100,
                layout: Layout { end_ms: 0, recent_interval_ms: 15_000, history_interval_ms: 600_000 },
                first_timestamp_ms: 0,
                last_timestamp_ms: 0,
                senders: 1,
                batch_size: 10,
                seed: 1,
                generation_seconds: 0.0,
            },
            repeats: 3,
            queries: vec![spec("a"), spec("b"), spec("c")],
            peers,
        }
    }

    fn row(table: &str, label: &str) -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label} row in\n{table}"));
        line[label.len()..].split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn table_has_medians_p90_ratios_and_series_agreement() {
        let mut failed = result("c", 1.0, 1);
        failed.error = Some("bad_data: unknown function".into());
        (failed.median_ms, failed.timings_ms) = (None, Vec::new());
        let r = report(vec![
            peer(Peer::Osprey, vec![result("a", 5.0, 4), result("b", 201.0, 2), failed]),
            peer(Peer::Prometheus, vec![result("a", 10.0, 4), result("b", 100.0, 3), result("c", 3.0, 1)]),
            PeerQueries {
                peer: Peer::VictoriaMetrics.name(),
                binary: "/usr/bin/victoria-metrics".into(),
                version: None,
                load_average_before: None,
                outcome: QueryOutcome::Unavailable { reason: "exited with status 1".into() },
            },
        ]);
        let table = r.render();
        assert_eq!(row(&table, "a "), ["5.00", "/", "10.0", "10.0", "/", "20.0", "unavailable", "0.50x", "-", "4/4/-"]);
        assert_eq!(
            row(&table, "b "),
            ["201", "/", "402", "100", "/", "200", "unavailable", "2.01x", "-", "2/3/-", "DIFFER"]
        );
        assert_eq!(row(&table, "c "), ["error", "3.00", "/", "6.00", "unavailable", "-", "-", "-/1/-"]);
        // Only a and b were answered by every measured peer: medians of {5, 201} and {10, 100}.
        assert_eq!(row(&table, "median over the set (2 queries)"), ["103", "55.0", "unavailable", "1.87x", "-"]);
        assert_eq!(
            row(&table, "peak RSS during queries, sampled (MiB)"),
            ["64.0", "64.0", "unavailable", "1.00x", "-"]
        );
        assert!(table.contains("series counts DIFFER between peers for: b"), "{table}");
        assert!(table.contains("c failed: bad_data: unknown function"), "{table}");
        assert!(table.contains("unavailable: exited with status 1"), "{table}");
    }

    #[test]
    fn json_goes_to_a_queries_file_with_every_result() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = report(vec![peer(Peer::Osprey, vec![result("a", 5.0, 4)])]);
        let path = r.write_json(dir.path()).expect("written");
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("queries-2026-11-29T160000Z.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("valid JSON");
        assert_eq!(json["peers"][0]["status"], "measured");
        assert_eq!(json["peers"][0]["results"][0]["median_ms"], 5.0);
        assert_eq!(json["queries"][0]["type"], "instant");
    }

    #[test]
    fn milliseconds_keep_about_three_digits() {
        assert_eq!(
            (ms(Some(1.234)), ms(Some(12.34)), ms(Some(1234.6)), ms(None)),
            ("1.23".into(), "12.3".into(), "1235".into(), "-".into())
        );
    }
}
