//! `osprey-bench`: drives Osprey, Prometheus and VictoriaMetrics with the same remote_write
//! workload, one server at a time, and prints ingestion rate, peak memory and bytes on disk
//! per sample side by side, with Osprey's ratio to each peer.
//!
//! Invariants: the workload is generated and encoded before any clock starts, so only the
//! servers are measured; every server runs on 127.0.0.1 with its data in a fresh temporary
//! directory and is stopped on every path out of this program; a peer that cannot start is
//! reported as unavailable rather than ending the run.
//!
//! Not a load tester: it measures one fixed workload per peer, not latency percentiles or
//! query performance.

mod peer;
mod report;
mod send;
mod server;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use peer::Peer;
use report::{Machine, Measurements, Outcome, PeerReport, Report, WorkloadSummary};
use send::SendStats;
use workload::{Workload, WorkloadOptions};

/// How often a run checks that its server is still alive while sending.
const LIVENESS_EVERY: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(
    name = "osprey-bench",
    about = "Osprey vs Prometheus vs VictoriaMetrics: remote_write ingestion, memory, disk"
)]
struct Args {
    /// A small workload (10k series x 20 samples) that finishes in under a minute.
    #[arg(long)]
    quick: bool,
    /// Number of series [default: 100000, or 10000 with --quick].
    #[arg(long)]
    series: Option<usize>,
    /// Samples per series, one per scrape interval [default: 120, or 20 with --quick].
    #[arg(long)]
    samples: Option<usize>,
    /// Scrape interval the timestamps follow, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Most a scrape's timestamp strays from its target's fixed phase, in milliseconds.
    #[arg(long, default_value_t = 50)]
    jitter_ms: i64,
    /// Concurrent senders (Prometheus's remote_write shards).
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Samples per request (Prometheus's max_samples_per_send).
    #[arg(long, default_value_t = 2_000)]
    batch_size: usize,
    /// Seed of the generated values and jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which servers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "osprey,prometheus,victoria-metrics")]
    peers: Vec<String>,
    /// The Osprey binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/osprey"))]
    osprey_bin: PathBuf,
    #[arg(long, default_value = "/usr/bin/prometheus")]
    prometheus_bin: PathBuf,
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    victoria_metrics_bin: PathBuf,
    /// Where the JSON results go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    results_dir: PathBuf,
}

impl Args {
    fn workload_options(&self) -> Result<WorkloadOptions, String> {
        let (series, samples) = if self.quick { (10_000, 20) } else { (100_000, 120) };
        let end_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let opts = WorkloadOptions {
            series: self.series.unwrap_or(series),
            samples_per_series: self.samples.unwrap_or(samples),
            interval_ms: self.interval_ms,
            jitter_ms: self.jitter_ms,
            senders: self.senders,
            batch_size: self.batch_size,
            seed: self.seed,
            // Whole intervals ending now: recent enough for every peer's out-of-bounds checks.
            end_ms: end_ms - end_ms.rem_euclid(self.interval_ms.max(1)),
        };
        opts.validate()?;
        Ok(opts)
    }

    fn peers(&self) -> Result<Vec<Peer>, String> {
        self.peers
            .iter()
            .map(|name| {
                Peer::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = Peer::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown peer {name:?} in --peers: choose from {}", known.join(", "))
                })
            })
            .collect()
    }

    fn binary(&self, peer: Peer) -> &PathBuf {
        match peer {
            Peer::Osprey => &self.osprey_bin,
            Peer::Prometheus => &self.prometheus_bin,
            Peer::VictoriaMetrics => &self.victoria_metrics_bin,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Dropping `run` on Ctrl-C drops the running server, which stops it.
    let result = tokio::select! {
        result = run(&args) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; the servers started were stopped")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let opts = args.workload_options().map_err(anyhow::Error::msg)?;
    let peers = args.peers().map_err(anyhow::Error::msg)?;
    eprintln!(
        "bench: encoding {} series x {} samples ({} senders, {} samples per request)",
        opts.series, opts.samples_per_series, opts.senders, opts.batch_size
    );
    let started = Instant::now();
    let workload = Arc::new(workload::build(&opts));
    let generation_seconds = started.elapsed().as_secs_f64();
    let requests = workload.shards.iter().map(Vec::len).sum();
    eprintln!(
        "bench: {} samples in {requests} requests, {:.1} MiB of bodies, encoded in {generation_seconds:.1} s",
        workload.samples,
        workload.body_bytes as f64 / (1024.0 * 1024.0)
    );

    let client = reqwest::Client::builder().build()?;
    let mut reports = Vec::new();
    for peer in peers {
        let binary = args.binary(peer);
        let load_average_before = report::load_average();
        eprintln!("bench: {}: starting {}", peer.name(), binary.display());
        let outcome = run_peer(peer, binary, workload.clone(), &client).await;
        if let Outcome::Unavailable { reason } = &outcome {
            eprintln!("bench: {}: unavailable: {}", peer.name(), reason.lines().next().unwrap_or_default());
        }
        reports.push(PeerReport {
            peer: peer.name(),
            binary: binary.display().to_string(),
            version: peer.version(binary),
            load_average_before,
            outcome,
        });
    }

    let report = Report {
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::current(),
        workload: WorkloadSummary {
            series: opts.series,
            samples_per_series: opts.samples_per_series,
            interval_ms: opts.interval_ms,
            jitter_ms: opts.jitter_ms,
            senders: opts.senders,
            batch_size: opts.batch_size,
            seed: opts.seed,
            samples: workload.samples,
            requests,
            body_bytes: workload.body_bytes,
            generation_seconds,
            first_timestamp_ms: workload.first_ms,
            last_timestamp_ms: workload.last_ms,
        },
        peers: reports,
    };
    println!("{}", report.render());
    let path = report.write_json(&args.results_dir)?;
    println!("results: {}", path.display());
    Ok(())
}

/// Starts one peer, sends the workload, persists and measures, checks what it stored (after
/// reading its peak memory, so the query does not count), stops it.
async fn run_peer(peer: Peer, binary: &std::path::Path, workload: Arc<Workload>, client: &reqwest::Client) -> Outcome {
    let mut server = match peer.start(binary, client).await {
        Ok(server) => server,
        Err(e) => return Outcome::Unavailable { reason: format!("{e:#}") },
    };
    eprintln!("bench: {}: ready (pid {}), sending", peer.name(), server.pid());
    let url = peer::write_url(&server);
    let (first_ms, last_ms) = (workload.first_ms, workload.last_ms);
    let sending = send::send_all(client, &url, workload, send::RetryPolicy::default());
    tokio::pin!(sending);
    let stats: SendStats = loop {
        tokio::select! {
            stats = &mut sending => break stats,
            _ = tokio::time::sleep(LIVENESS_EVERY) => {
                if !server.is_running() {
                    return Outcome::Unavailable {
                        reason: format!("exited during the run; its log ends with:\n{}", server.log_tail()),
                    };
                }
            }
        }
    };
    eprintln!(
        "bench: {}: sent {} samples in {:.2} s ({} retries); persisting",
        peer.name(),
        stats.samples_accepted,
        stats.wall.as_secs_f64(),
        stats.retries
    );
    let disk = peer.disk_usage(&mut server, client).await;
    let mut m = Measurements {
        samples_accepted: stats.samples_accepted,
        wall_seconds: stats.wall.as_secs_f64(),
        samples_per_second: stats.samples_accepted as f64 / stats.wall.as_secs_f64().max(1e-9),
        retries: stats.retries,
        rejected_requests: stats.rejected_requests,
        failed_requests: stats.failed_requests,
        samples_lost: stats.samples_lost,
        first_error: stats.first_error,
        peak_rss_hwm_bytes: server.peak_rss_hwm(),
        peak_rss_sampled_bytes: server.peak_rss_sampled(),
        ..Measurements::default()
    };
    match disk {
        Ok(d) => {
            m.disk_bytes = Some(d.bytes);
            m.bytes_per_sample = (m.samples_accepted > 0).then(|| d.bytes as f64 / m.samples_accepted as f64);
            m.disk_method = Some(d.method);
        }
        Err(e) => m.disk_error = Some(format!("{e:#}")),
    }
    if server.is_running() {
        match peer::stored_samples(&server, client, first_ms, last_ms).await {
            Ok(n) => m.samples_queryable = Some(n),
            Err(e) => m.query_error = Some(format!("{e:#}")),
        }
    } else {
        m.query_error = Some("the server was stopped to persist its data".into());
    }
    if let Err(e) = server.stop() {
        eprintln!("bench: {}: {e:#}", peer.name());
    }
    Outcome::Measured(m)
}
