//! The HTTP face of Osprey: every compatible API on one axum router, by its usual path —
//! Prometheus's `/api/v1/*` (queries, metadata, status, remote_write), OTLP/HTTP `/v1/metrics`,
//! and `/health`, `/ready`, `/metrics`.
//!
//! This is the only crate that knows HTTP status codes and JSON response shapes. Engines are
//! reached through the model's traits; everything the server owns (TSDB statistics and flushing, scrape
//! targets, self-metrics of other components) through [`Admin`]. Storage calls are
//! synchronous and run on blocking threads, never on the async workers.

mod ingest;
mod meta;
mod params;
mod query;
mod response;
mod selector;
mod status;
mod telemetry;
mod tenant;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use osprey_model::{MetricsAppender, MetricsQuerier, StorageError};
use osprey_promql::Engine;

pub use params::{parse_duration, parse_time};
pub use response::{ApiError, ErrorType};
pub use status::{Admin, BuildInfo, HeadStats, TargetStatus, TsdbStatus};
pub use telemetry::{header as write_metric_header, ApiMetrics};

/// Settings of the HTTP layer: the limits that keep memory bounded under overload, and query
/// admission and logging.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest accepted write body, compressed, in bytes.
    pub max_write_body_bytes: usize,
    /// Largest decompressed remote_write body, in bytes.
    pub max_decompressed_bytes: usize,
    /// Budget of decompressed bytes of writes being processed at once; a write that does not
    /// fit gets 429 with `Retry-After` instead of queueing without bound.
    pub max_inflight_write_bytes: usize,
    /// Queries evaluated at once; more wait for a slot (Prometheus's `query.max-concurrency`).
    pub max_concurrent_queries: usize,
    /// Queries slower than this are logged with their text, tenant and duration.
    pub slow_query_threshold: std::time::Duration,
    /// Bounds of the OTLP delta-to-cumulative state.
    pub otlp_delta: osprey_ingest::DeltaLimits,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            max_write_body_bytes: 32 << 20,
            max_decompressed_bytes: 128 << 20,
            max_inflight_write_bytes: 512 << 20,
            max_concurrent_queries: 20,
            slow_query_threshold: std::time::Duration::from_secs(5),
            otlp_delta: osprey_ingest::DeltaLimits::default(),
        }
    }
}

/// Everything the routes need, shared by all requests.
pub struct ApiState {
    pub appender: Arc<dyn MetricsAppender>,
    pub querier: Arc<dyn MetricsQuerier>,
    pub engine: Arc<Engine>,
    pub admin: Arc<dyn Admin>,
    pub metrics: Arc<ApiMetrics>,
    pub options: ApiOptions,
    /// Counts decompressed write bytes in flight against `options.max_inflight_write_bytes`.
    pub(crate) inflight_write_bytes: Arc<tokio::sync::Semaphore>,
    /// One permit per query slot.
    pub(crate) query_slots: Arc<tokio::sync::Semaphore>,
    /// Running totals of OTLP delta streams, per tenant.
    pub(crate) delta_totals: Arc<osprey_ingest::DeltaToCumulative>,
}

impl ApiState {
    pub fn new(
        appender: Arc<dyn MetricsAppender>,
        querier: Arc<dyn MetricsQuerier>,
        engine: Arc<Engine>,
        admin: Arc<dyn Admin>,
        options: ApiOptions,
    ) -> ApiState {
        let permits = options.max_inflight_write_bytes.min(tokio::sync::Semaphore::MAX_PERMITS);
        ApiState {
            appender,
            querier,
            engine,
            admin,
            metrics: Arc::new(ApiMetrics::default()),
            inflight_write_bytes: Arc::new(tokio::sync::Semaphore::new(permits)),
            query_slots: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_queries.max(1))),
            delta_totals: Arc::new(osprey_ingest::DeltaToCumulative::new(options.otlp_delta.clone())),
            options,
        }
    }
}

/// The router for every API. The caller adds the listener and graceful shutdown.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/write", post(ingest::remote_write))
        .route("/v1/metrics", post(ingest::otlp_metrics))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/format_query", get(query::format).post(query::format))
        .route("/api/v1/parse_query", get(query::parse).post(query::parse))
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/metadata", get(meta::metadata))
        .route("/api/v1/query_exemplars", get(meta::exemplars).post(meta::exemplars))
        .route("/api/v1/targets", get(status::targets))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/admin/tsdb/flush", post(status::flush_tsdb))
        .route("/health", get(status::healthy))
        .route("/-/healthy", get(status::healthy))
        .route("/ready", get(status::ready))
        .route("/-/ready", get(status::ready))
        .route("/metrics", get(telemetry::render))
        .with_state(state)
}

/// Runs synchronous storage work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorType::Internal, format!("worker failed: {e}")))?
}

pub(crate) fn storage_err(e: StorageError) -> ApiError {
    ApiError::from(e)
}
