//! The composition root: builds every component from a [`Config`], starts them in order
//! (storage, then ingestion and queries, then the HTTP port), and stops them in reverse so that
//! everything acknowledged is flushed. A library, so end-to-end tests can run a whole server
//! in-process as easily as the binary does.
//!
//! Start order: open the TSDB (replaying its WAL), build the query engine and the limited
//! appender, start scraping, then bind the HTTP port. Stop order: stop accepting requests and
//! drain them, stop scrapers (which write their staleness markers), then close the TSDB.

mod config;
mod status;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use osprey_api::{ApiOptions, ApiState};
use osprey_model::{MetricsAppender, TenantId};
use osprey_promql::{Engine, EngineOptions};
use osprey_tsdb::{Tsdb, TsdbOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{parse_duration, Config, ConfigError, LogFormat, DEFAULT_LISTEN};

/// How often head cutting, compaction and retention run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// How often maintenance looks whether a head grew a whole block range (a backfill), to
/// persist it before the next regular run.
const HEAD_CUT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long shutdown waits for requests in flight before cutting them off.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open storage in {dir}: {message}")]
    Storage { dir: String, message: String },
    #[error("invalid scrape configuration: {0}")]
    Scrape(String),
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

/// A started server. Dropping it without [`RunningServer::shutdown`] leaves the WAL to be
/// replayed at the next start, exactly like a crash.
pub struct RunningServer {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    http: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    tsdb: Arc<Tsdb>,
    scrape: Arc<osprey_scrape::ScrapeManager>,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Opens storage and starts serving. `config_yaml` is what `/api/v1/status/config` shows.
pub async fn start(config: Config, config_yaml: String) -> Result<RunningServer, ServerError> {
    config.validate()?;
    let tsdb = open_tsdb(&config).await?;
    let tenant = TenantId::default_tenant();
    let appender: Arc<dyn MetricsAppender> = Arc::new(osprey_ingest::LimitedAppender::new(
        tsdb.clone(),
        config.limits.ingest.clone(),
        Arc::new(osprey_ingest::SystemClock),
    ));
    let engine = Arc::new(Engine::new(EngineOptions {
        lookback_delta_ms: config.query.lookback_delta.as_millis() as i64,
        max_samples: config.query.max_samples,
        timeout: config.query.timeout,
        delayed_name_removal: config.query.delayed_name_removal,
        use_start_timestamps: config.query.use_start_timestamps,
        ..EngineOptions::default()
    }));
    let scrape = Arc::new(
        osprey_scrape::ScrapeManager::new(appender.clone(), tenant).map_err(|e| ServerError::Scrape(e.to_string()))?,
    );
    scrape
        .apply_config_with_globals(&config.global.scrape_globals(), config.scrape_configs.clone())
        .await
        .map_err(|e| ServerError::Scrape(e.to_string()))?;

    let status = Arc::new(status::ServerStatus::new(tsdb.clone(), scrape.clone(), config.clone(), config_yaml));
    let api_options = ApiOptions {
        max_concurrent_queries: config.query.max_concurrency,
        slow_query_threshold: config.query.slow_query_log_threshold,
        otlp_delta: config.limits.otlp_delta.clone(),
        ..ApiOptions::default()
    };
    let body_limit = api_options.max_write_body_bytes;
    let state = Arc::new(ApiState::new(appender, tsdb.clone(), engine, status, api_options));
    let router = osprey_api::router(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::extract::DefaultBodyLimit::max(body_limit));

    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| ServerError::Bind { addr: config.server.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.server.listen, source })?;
    let stop = CancellationToken::new();
    let http = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "http server failed");
            }
        })
    };
    let maintenance = tokio::spawn(run_maintenance(tsdb.clone(), stop.clone()));
    tracing::info!(%addr, data_dir = %config.storage.data_dir.display(), "osprey is serving");
    Ok(RunningServer { addr, stop, http, maintenance, tsdb, scrape })
}

async fn open_tsdb(config: &Config) -> Result<Arc<Tsdb>, ServerError> {
    let s = &config.storage;
    let mut options = TsdbOptions::new(s.data_dir.join("metrics"));
    options.retention = s.retention;
    options.max_bytes = (s.retention_size_bytes > 0).then_some(s.retention_size_bytes);
    options.out_of_order_window = s.out_of_order_window;
    options.wal_sync = config::parse_wal_fsync(&s.wal_fsync)?;
    options.max_series_per_tenant = Some(config.limits.max_series_per_tenant);
    let dir = s.data_dir.display().to_string();
    let (tsdb, report) = tokio::task::spawn_blocking(move || Tsdb::open(options))
        .await
        .map_err(|e| ServerError::Storage { dir: dir.clone(), message: e.to_string() })?
        .map_err(|e| ServerError::Storage { dir, message: e.to_string() })?;
    tracing::info!(
        tenants = report.tenants,
        blocks = report.blocks_loaded,
        blocks_skipped = report.blocks_skipped.len(),
        wal_records_replayed = report.wal_records_replayed,
        wal_repairs = report.wal_repairs.len(),
        "metrics storage open"
    );
    Ok(Arc::new(tsdb))
}

async fn run_maintenance(tsdb: Arc<Tsdb>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEAD_CUT_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_run: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = last_run.is_none_or(|t| t.elapsed() >= MAINTENANCE_INTERVAL);
        if !due && !tsdb.head_needs_cut() {
            continue;
        }
        last_run = Some(tokio::time::Instant::now());
        let tsdb = tsdb.clone();
        match tokio::task::spawn_blocking(move || tsdb.run_maintenance(now_ms())).await {
            Ok(Ok(report)) => tracing::debug!(?report, "storage maintenance done"),
            Ok(Err(e)) => tracing::error!(error = %e, "storage maintenance failed"),
            Err(e) => tracing::error!(error = %e, "storage maintenance panicked"),
        }
    }
}

impl RunningServer {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Completes when a shutdown has been requested through [`RunningServer::stop_token`].
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops accepting requests, drains those in flight, stops scraping, and flushes storage.
    pub async fn shutdown(self) {
        self.stop.cancel();
        // Requests in flight get a bounded time to finish; a client that keeps a slow query
        // or a connection open must not hold the flush of storage hostage.
        let mut http = self.http;
        match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, &mut http).await {
            Ok(Err(e)) => tracing::error!(error = %e, "http server task failed"),
            Ok(Ok(())) => {}
            Err(_) => {
                tracing::warn!(seconds = HTTP_DRAIN_TIMEOUT.as_secs(), "requests still open at shutdown were cut off");
                http.abort();
            }
        }
        self.maintenance.abort();
        self.scrape.shutdown().await;
        let tsdb = self.tsdb.clone();
        match tokio::task::spawn_blocking(move || tsdb.close()).await {
            Ok(Ok(())) => tracing::info!("storage flushed and closed"),
            Ok(Err(e)) => tracing::error!(error = %e, "storage close failed"),
            Err(e) => tracing::error!(error = %e, "storage close panicked"),
        }
    }
}
