//! The results: a side-by-side table for people and the same figures as JSON for tools.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::peer::Peer;

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub workload: WorkloadSummary,
    pub peers: Vec<PeerReport>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct WorkloadSummary {
    pub series: usize,
    pub samples_per_series: usize,
    pub interval_ms: i64,
    pub jitter_ms: i64,
    pub senders: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub samples: u64,
    pub requests: usize,
    pub body_bytes: u64,
    pub generation_seconds: f64,
    pub first_timestamp_ms: i64,
    pub last_timestamp_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct PeerReport {
    pub peer: &'static str,
    pub binary: String,
    pub version: Option<String>,
    /// The 1-minute load average just before this peer ran: other work on the machine
    /// makes the figures noisy.
    pub load_average_before: Option<f64>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Unavailable { reason: String },
    Measured(Measurements),
}

#[derive(Debug, Default, Serialize)]
pub struct Measurements {
    pub samples_accepted: u64,
    pub wall_seconds: f64,
    pub samples_per_second: f64,
    pub retries: u64,
    pub rejected_requests: u64,
    pub failed_requests: u64,
    pub samples_lost: u64,
    pub first_error: Option<String>,
    pub peak_rss_hwm_bytes: u64,
    pub peak_rss_sampled_bytes: u64,
    pub disk_bytes: Option<u64>,
    pub bytes_per_sample: Option<f64>,
    pub disk_method: Option<String>,
    pub disk_error: Option<String>,
    /// Samples a PromQL count over the workload's time range returns after the flush.
    pub samples_queryable: Option<u64>,
    pub query_error: Option<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

/// One table row: its label, how to read it from a peer's measurements, and decimals shown.
struct Row {
    label: &'static str,
    value: fn(&Measurements) -> Option<f64>,
    decimals: usize,
}

const ROWS: [Row; 9] = [
    Row { label: "samples/s ingested", value: |m| Some(m.samples_per_second), decimals: 0 },
    Row { label: "send wall time (s)", value: |m| Some(m.wall_seconds), decimals: 2 },
    Row { label: "retries (429/5xx)", value: |m| Some(m.retries as f64), decimals: 0 },
    Row {
        label: "requests rejected or failed",
        value: |m| Some((m.rejected_requests + m.failed_requests) as f64),
        decimals: 0,
    },
    Row { label: "peak RSS, VmHWM (MiB)", value: |m| Some(m.peak_rss_hwm_bytes as f64 / MIB), decimals: 1 },
    Row { label: "peak RSS, sampled (MiB)", value: |m| Some(m.peak_rss_sampled_bytes as f64 / MIB), decimals: 1 },
    Row { label: "bytes on disk (MiB)", value: |m| m.disk_bytes.map(|b| b as f64 / MIB), decimals: 2 },
    Row { label: "bytes on disk per sample", value: |m| m.bytes_per_sample, decimals: 3 },
    Row { label: "samples queryable after flush", value: |m| m.samples_queryable.map(|n| n as f64), decimals: 0 },
];

impl Report {
    fn measurements(&self, peer: Peer) -> Result<&Measurements, &'static str> {
        match self.peers.iter().find(|p| p.peer == peer.name()).map(|p| &p.outcome) {
            Some(Outcome::Measured(m)) => Ok(m),
            Some(Outcome::Unavailable { .. }) => Err("unavailable"),
            None => Err("not run"),
        }
    }

    /// The side-by-side table, then a note per peer on versions, methods and errors.
    pub fn render(&self) -> String {
        let [osprey, prometheus, vm] = Peer::ALL.map(|p| self.measurements(p));
        let mut lines = vec![vec![
            "metric".to_string(),
            Peer::Osprey.title().to_string(),
            Peer::Prometheus.title().to_string(),
            Peer::VictoriaMetrics.title().to_string(),
            "Osprey/Prometheus".to_string(),
            "Osprey/VM".to_string(),
        ]];
        for row in &ROWS {
            let cell = |m: &Result<&Measurements, &str>| match m {
                Ok(m) => (row.value)(m).map_or("-".to_string(), |v| format!("{v:.*}", row.decimals)),
                Err(why) => why.to_string(),
            };
            let ratio = |peer: &Result<&Measurements, &str>| {
                let ours = osprey.as_ref().ok().and_then(|m| (row.value)(m));
                let theirs = peer.as_ref().ok().and_then(|m| (row.value)(m));
                match (ours, theirs) {
                    (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
                    _ => "-".to_string(),
                }
            };
            lines.push(vec![
                row.label.to_string(),
                cell(&osprey),
                cell(&prometheus),
                cell(&vm),
                ratio(&prometheus),
                ratio(&vm),
            ]);
        }
        let mut out = align(&lines);
        out.push_str("ratios are Osprey/peer: above 1x is better for samples/s, below 1x for memory and disk\n");
        for p in &self.peers {
            let _ = writeln!(out, "\n{} ({}): {}", p.peer, p.binary, p.version.as_deref().unwrap_or("version unknown"));
            if let Some(load) = p.load_average_before {
                let _ = writeln!(out, "  load average before the run: {load:.2}");
            }
            match &p.outcome {
                Outcome::Unavailable { reason } => {
                    let _ = writeln!(out, "  unavailable: {}", reason.trim_end().replace('\n', "\n    "));
                }
                Outcome::Measured(m) => {
                    if let Some(method) = &m.disk_method {
                        let _ = writeln!(out, "  disk: {method}");
                    }
                    if let Some(e) = &m.disk_error {
                        let _ = writeln!(out, "  disk not measured: {e}");
                    }
                    if let Some(e) = &m.query_error {
                        let _ = writeln!(out, "  stored samples not checked: {e}");
                    }
                    if let Some(e) = &m.first_error {
                        let _ = writeln!(out, "  {} samples lost; first error: {e}", m.samples_lost);
                    }
                }
            }
        }
        out
    }

    /// Writes the report as `<dir>/<date>.json` and returns the path.
    pub fn write_json(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        write_json(self, dir, &self.date.replace(':', ""))
    }
}

/// Writes `value` as pretty JSON to `<dir>/<stem>.json` and returns the path.
pub fn write_json(value: &impl Serialize, dir: &Path, stem: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(value).context("cannot serialise the report")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Lays out rows as a plain-text table: the first column left-aligned, the rest right-aligned.
pub fn align(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| lines.iter().filter_map(|l| l.get(c)).map(|t| t.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(
                |(c, text)| {
                    if c == 0 {
                        format!("{text:<w$}", w = widths[c])
                    } else {
                        format!("{text:>w$}", w = widths[c])
                    }
                },
            )
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

impl Machine {
    pub fn current() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name").map(str::to_string),
            memory_bytes: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024),
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// The value of a `name : value` line in a /proc file.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(peers: Vec<PeerReport>) -> Report {
        Report {
            date: "2026-11-29T15:00:00Z".into(),
            command: "osprey-bench --quick".into(),
            machine: Machine { cpus: 2, cpu_model: None, memory_bytes: None },
            workload: WorkloadSummary {
                series: 10,
                samples_per_series: 2,
                interval_ms: 15_000,
                jitter_ms: 50,
                senders: 1,
                batch_size: 2_000,
                seed: 1,
                samples: 20,
                requests: 1,
                body_bytes: 100,
                generation_seconds: 0.1,
                first_timestamp_ms: 0,
                last_timestamp_ms: 15_000,
            },
            peers,
        }
    }

    fn measured(peer: Peer, samples_per_second: f64, bytes_per_sample: f64) -> PeerReport {
        PeerReport {
            peer: peer.name(),
            binary: "/bin/x".into(),
            version: Some("x 1.0".into()),
            load_average_before: Some(0.5),
            outcome: Outcome::Measured(Measurements {
                samples_per_second,
                bytes_per_sample: Some(bytes_per_sample),
                disk_bytes: Some(1 << 20),
                peak_rss_hwm_bytes: 100 << 20,
                ..Measurements::default()
            }),
        }
    }

    #[test]
    fn table_shows_values_and_ratios_and_unavailable_peers() {
        let r = report(vec![
            measured(Peer::Osprey, 300_000.0, 1.0),
            measured(Peer::Prometheus, 150_000.0, 2.0),
            PeerReport {
                peer: Peer::VictoriaMetrics.name(),
                binary: "/usr/bin/victoria-metrics".into(),
                version: None,
                load_average_before: None,
                outcome: Outcome::Unavailable { reason: "exited with status 1".into() },
            },
        ]);
        let table = r.render();
        let row = |label: &str| -> Vec<String> {
            let line = table.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label} row"));
            line[label.len()..].split_whitespace().map(str::to_string).collect()
        };
        assert_eq!(row("samples/s ingested"), ["300000", "150000", "unavailable", "2.00x", "-"]);
        assert_eq!(row("bytes on disk per sample"), ["1.000", "2.000", "unavailable", "0.50x", "-"]);
        assert_eq!(row("peak RSS, VmHWM (MiB)"), ["100.0", "100.0", "unavailable", "1.00x", "-"]);
        assert!(table.contains("unavailable: exited with status 1"), "{table}");
    }

    #[test]
    fn peers_not_run_are_marked_and_ratios_omitted() {
        let table = report(vec![measured(Peer::Prometheus, 1.0, 1.0)]).render();
        let line = table.lines().find(|l| l.starts_with("samples/s")).expect("row");
        assert_eq!(line.split_whitespace().collect::<Vec<_>>()[2..], ["not", "run", "1", "not", "run", "-", "-"]);
    }

    #[test]
    fn json_is_written_under_the_date_with_status_tags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = report(vec![measured(Peer::Osprey, 10.0, 1.5)]);
        let path = r.write_json(dir.path()).expect("written");
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("2026-11-29T150000Z.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("valid JSON");
        assert_eq!(json["peers"][0]["status"], "measured");
        assert_eq!(json["peers"][0]["bytes_per_sample"], 1.5);
        assert_eq!(json["workload"]["series"], 10);
    }

    #[test]
    fn reads_proc_fields() {
        assert_eq!(field("model name\t: AMD EPYC\nflags\t: x", "model name"), Some("AMD EPYC"));
        assert_eq!(field("MemTotal:       24000000 kB\n", "MemTotal"), Some("24000000 kB"));
    }
}
