//! `osprey-bench`: drives Osprey, Prometheus and VictoriaMetrics with the same remote_write
//! workload, one server at a time, and prints ingestion rate, peak memory and bytes on disk
//! per sample side by side, with Osprey's ratio to each peer. `osprey-bench queries` loads
//! days of the same kind of data into each and times a fixed set of dashboard-like PromQL
//! queries instead (see the `queries` module).
//!
//! Invariants: the workload is generated and encoded before any clock starts, so only the
//! servers are measured; every server runs on 127.0.0.1 with its data in a fresh temporary
//! directory and is stopped on every path out of this program; a peer that cannot start is
//! reported as unavailable rather than ending the run.
//!
//! Not a load tester: it measures one fixed workload per peer, sequentially, never
//! concurrent clients.

mod peer;
mod queries;
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
use workload::{Workload, WorkloadOptions};

#[derive(Parser, Debug)]
#[command(
    name = "osprey-bench",
    about = "Osprey vs Prometheus vs VictoriaMetrics: remote_write ingestion, memory, disk; `queries` for query latency",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
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
    #[command(flatten)]
    sending: Sending,
    #[command(flatten)]
    servers: Servers,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Load 7 days + 1 hour of data into each server, then time dashboard-like PromQL queries.
    Queries(QueryArgs),
}

#[derive(clap::Args, Debug)]
struct QueryArgs {
    /// Coarser data (1 h history, 60 s recent interval) and 3 runs per query: a few minutes.
    #[arg(long)]
    quick: bool,
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Interval of the last hour of data, in milliseconds [default: 15000, or 60000 with --quick].
    #[arg(long)]
    interval_ms: Option<i64>,
    /// Interval of the 7 days before it, e.g. 10m [default: 10m, or 1h with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    history_interval: Option<Duration>,
    /// Timed runs per query, after one untimed warm-up run [default: 10, or 3 with --quick].
    #[arg(long)]
    repeats: Option<usize>,
    /// How long one query may take before it counts as failed, e.g. 2m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    query_timeout: Duration,
    #[command(flatten)]
    sending: Sending,
    #[command(flatten)]
    servers: Servers,
}

/// How the workload is sent.
#[derive(clap::Args, Debug)]
struct Sending {
    /// Concurrent senders (Prometheus's remote_write shards).
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Samples per request (Prometheus's max_samples_per_send).
    #[arg(long, default_value_t = 2_000)]
    batch_size: usize,
    /// Seed of the generated values and jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Which servers run, from which binaries, and where the results go.
#[derive(clap::Args, Debug)]
struct Servers {
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

/// Now, in milliseconds since the epoch, rounded down to whole `interval_ms`: recent enough
/// for every peer's out-of-bounds checks.
fn end_ms(interval_ms: i64) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    now - now.rem_euclid(interval_ms.max(1))
}

impl Args {
    fn workload_options(&self) -> Result<WorkloadOptions, String> {
        let (series, samples) = if self.quick { (10_000, 20) } else { (100_000, 120) };
        let opts = WorkloadOptions {
            series: self.series.unwrap_or(series),
            samples_per_series: self.samples.unwrap_or(samples),
            interval_ms: self.interval_ms,
            jitter_ms: self.jitter_ms,
            senders: self.sending.senders,
            batch_size: self.sending.batch_size,
            seed: self.sending.seed,
            end_ms: end_ms(self.interval_ms),
            history: None,
        };
        opts.validate()?;
        Ok(opts)
    }
}

impl QueryArgs {
    /// The data layout and the workload that produces it.
    fn workload_options(&self) -> Result<(queries::Layout, WorkloadOptions), String> {
        let (recent, history) = if self.quick { (60_000, 3_600_000) } else { (15_000, 600_000) };
        let recent_interval_ms = self.interval_ms.unwrap_or(recent);
        let history_interval_ms = self.history_interval.map_or(history, |d| d.as_millis() as i64);
        if recent_interval_ms <= 0 || queries::Layout::RECENT_MS % recent_interval_ms != 0 {
            return Err("--interval-ms must divide one hour (3600000), e.g. 15000 or 60000".into());
        }
        if history_interval_ms <= 0 || queries::Layout::HISTORY_MS % history_interval_ms != 0 {
            return Err("--history-interval must divide 7 days, e.g. 5m, 10m, 1h".into());
        }
        let layout = queries::Layout { end_ms: end_ms(recent_interval_ms), recent_interval_ms, history_interval_ms };
        let opts = WorkloadOptions {
            series: self.series,
            samples_per_series: layout.recent_rounds(),
            interval_ms: recent_interval_ms,
            jitter_ms: (recent_interval_ms / 300).min(50),
            senders: self.sending.senders,
            batch_size: self.sending.batch_size,
            seed: self.sending.seed,
            end_ms: layout.end_ms,
            history: Some(workload::History { rounds: layout.history_rounds(), interval_ms: history_interval_ms }),
        };
        opts.validate()?;
        Ok((layout, opts))
    }

    fn repeats(&self) -> usize {
        self.repeats.unwrap_or(if self.quick { 3 } else { 10 })
    }
}

impl Servers {
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
    let work = async {
        match &args.command {
            Some(Command::Queries(q)) => run_queries(q).await,
            None => run(&args).await,
        }
    };
    let result = tokio::select! {
        result = work => result,
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
    let peers = args.servers.peers().map_err(anyhow::Error::msg)?;
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
        let binary = args.servers.binary(peer);
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
    let path = report.write_json(&args.servers.results_dir)?;
    println!("results: {}", path.display());
    Ok(())
}

async fn run_queries(args: &QueryArgs) -> anyhow::Result<()> {
    let (layout, opts) = args.workload_options().map_err(anyhow::Error::msg)?;
    let peers = args.servers.peers().map_err(anyhow::Error::msg)?;
    let set = queries::query_set(&layout);
    eprintln!(
        "bench: encoding {} series x ({} rounds at {} s + {} at {} s)",
        opts.series,
        layout.history_rounds(),
        layout.history_interval_ms / 1000,
        layout.recent_rounds(),
        layout.recent_interval_ms / 1000
    );
    let started = Instant::now();
    let workload = Arc::new(workload::build(&opts));
    let generation_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "bench: {} samples, {:.1} MiB of bodies, encoded in {generation_seconds:.1} s",
        workload.samples,
        workload.body_bytes as f64 / (1024.0 * 1024.0)
    );
    let client = reqwest::Client::builder().build()?;
    let expected = queries::run::Expected { series: opts.series as u64, at_ms: layout.end_ms };
    let run_opts = queries::run::RunOptions { repeats: args.repeats(), query_timeout: args.query_timeout };
    let mut reports = Vec::new();
    for peer in peers {
        let binary = args.servers.binary(peer);
        let load_average_before = report::load_average();
        eprintln!("bench: {}: starting {}", peer.name(), binary.display());
        let outcome = queries::run::run_peer(peer, binary, workload.clone(), &client, &set, expected, run_opts).await;
        if let queries::report::QueryOutcome::Unavailable { reason } = &outcome {
            eprintln!("bench: {}: unavailable: {}", peer.name(), reason.lines().next().unwrap_or_default());
        }
        reports.push(queries::report::PeerQueries {
            peer: peer.name(),
            binary: binary.display().to_string(),
            version: peer.version(binary),
            load_average_before,
            outcome,
        });
    }
    let report = queries::report::QueryReport {
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::current(),
        data: queries::report::DataSummary {
            series: opts.series,
            samples: workload.samples,
            layout,
            first_timestamp_ms: workload.first_ms,
            last_timestamp_ms: workload.last_ms,
            senders: opts.senders,
            batch_size: opts.batch_size,
            seed: opts.seed,
            generation_seconds,
        },
        repeats: run_opts.repeats,
        queries: set,
        peers: reports,
    };
    println!("{}", report.render());
    let path = report.write_json(&args.servers.results_dir)?;
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
    let Some(stats) = server.watch(sending).await else {
        return Outcome::Unavailable {
            reason: format!("exited during the run; its log ends with:\n{}", server.log_tail()),
        };
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
