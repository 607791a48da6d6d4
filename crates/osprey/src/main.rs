//! The `osprey` command line: `serve` (the all-in-one server), `check config`, and
//! `promql-test` (Prometheus's test-script runner over our engine).

mod settings;

/// jemalloc instead of glibc malloc: queries and ingest allocate and free many small label
/// strings and sample vectors, and glibc spent close to half of a query's CPU in
/// `malloc_consolidate`/`unlink_chunk`. jemalloc keeps glibc's peak RSS where mimalloc
/// quadrupled it (see ARCHITECTURE.md, "Dependency choices").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "osprey", version, about = "Metrics, logs, traces, alerting and dashboards in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the all-in-one server.
    Serve(settings::ServeArgs),
    /// Validate configuration without starting anything.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run Prometheus PromQL test scripts (`*.test`) against Osprey's engine.
    PromqlTest {
        /// Test files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check an `osprey.yml` file; exits non-zero when it is invalid.
    Config { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("osprey: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let (config, yaml) = settings::resolve(&args)?;
            init_logging(config.server.log_format);
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(config, yaml))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { what: CheckCommand::Config { file } } => {
            osprey_server::Config::load(&file)?;
            println!("{}: valid", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::PromqlTest { paths } => {
            let summary = osprey_promql::promqltest::run_paths(
                &paths,
                &osprey_promql::promqltest::RunOptions::default(),
                &mut std::io::stdout(),
            );
            Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

async fn serve(config: osprey_server::Config, yaml: String) -> anyhow::Result<()> {
    let server = osprey_server::start(config, yaml).await?;
    let stop = server.stop_token();
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested"),
        _ = stop.cancelled() => {}
    }
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init_logging(format: osprey_server::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSPREY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    // Colour only on a terminal: escape codes in log files break grep and log shippers.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        osprey_server::LogFormat::Json => builder.json().init(),
        osprey_server::LogFormat::Text => builder.init(),
    }
}
