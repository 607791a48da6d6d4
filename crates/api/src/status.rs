//! Status and admin endpoints (`/api/v1/status/*`, `/api/v1/targets`, `/api/v1/admin/*`) and
//! health checks. What they report and do goes through [`Admin`], implemented by the server,
//! so this crate needs no engine's types.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use osprey_model::{Labels, StorageError, TenantId};
use serde_json::{json, Value as Json};

use crate::params::Params;
use crate::query::labels_json;
use crate::response::{success, ApiError};
use crate::tenant::RequestTenant;
use crate::{blocking, storage_err, ApiState};

/// The server's status and administration of its components.
pub trait Admin: Send + Sync {
    /// Persists every tenant's head into blocks and compacts them (`POST
    /// /api/v1/admin/tsdb/flush`, as Cortex's `/flush`): for benchmarks and before backups.
    fn flush_tsdb(&self) -> Result<(), StorageError>;
    fn build_info(&self) -> BuildInfo;
    /// Head statistics of one tenant, each top list cut to `limit` entries.
    fn tsdb_status(&self, tenant: &TenantId, limit: usize) -> Result<TsdbStatus, StorageError>;
    fn targets(&self) -> Vec<TargetStatus>;
    /// Targets relabelling dropped: (discovered labels, scrape pool).
    fn dropped_targets(&self) -> Vec<(Labels, String)>;
    /// The loaded configuration, as YAML.
    fn config_yaml(&self) -> String;
    /// Effective settings by name, for `/api/v1/status/flags`.
    fn flags(&self) -> Vec<(String, String)>;
    /// Runtime facts for `/api/v1/status/runtimeinfo`, already named as Prometheus names them.
    fn runtime_info(&self) -> serde_json::Map<String, Json>;
    /// Whether startup (WAL replay) is complete and the server takes traffic.
    fn is_ready(&self) -> bool;
    /// Appends the self-metrics of components other than the HTTP layer, in text exposition.
    fn render_metrics(&self, out: &mut String);
}

#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_date: String,
    pub rust_version: String,
}

#[derive(Debug, Clone, Default)]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// The answer of `/api/v1/status/tsdb`; every list is (name, count), largest first.
#[derive(Debug, Clone, Default)]
pub struct TsdbStatus {
    pub head: HeadStats,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// One scrape target, as `/api/v1/targets` reports it.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub discovered_labels: Labels,
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    pub last_error: String,
    /// RFC 3339 time of the last scrape, or Go's zero time when never scraped.
    pub last_scrape: String,
    pub last_scrape_duration_seconds: f64,
    /// `up`, `down` or `unknown`.
    pub health: String,
    pub scrape_interval: String,
    pub scrape_timeout: String,
}

pub async fn buildinfo(State(state): State<Arc<ApiState>>) -> Response {
    let b = state.admin.build_info();
    success(
        json!({
            "version": b.version,
            "revision": b.revision,
            "branch": b.branch,
            "buildUser": "osprey",
            "buildDate": b.build_date,
            "goVersion": b.rust_version,
        }),
        &[],
        &[],
    )
}

pub async fn runtimeinfo(State(state): State<Arc<ApiState>>) -> Response {
    success(Json::Object(state.admin.runtime_info()), &[], &[])
}

pub async fn config(State(state): State<Arc<ApiState>>) -> Response {
    success(json!({"yaml": state.admin.config_yaml()}), &[], &[])
}

pub async fn flags(State(state): State<Arc<ApiState>>) -> Response {
    let map: serde_json::Map<String, Json> =
        state.admin.flags().into_iter().map(|(k, v)| (k, Json::String(v))).collect();
    success(Json::Object(map), &[], &[])
}

pub async fn tsdb(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let limit = match params.limit()? {
        0 => 10,
        n => n,
    };
    let status = state.admin.clone();
    let s = blocking(move || status.tsdb_status(&tenant, limit).map_err(storage_err)).await?;
    let pairs = |v: &[(String, u64)]| -> Json {
        Json::Array(v.iter().map(|(name, value)| json!({"name": name, "value": value})).collect())
    };
    Ok(success(
        json!({
            "headStats": {
                "numSeries": s.head.num_series,
                "numLabelPairs": s.head.num_label_pairs,
                "chunkCount": s.head.chunk_count,
                "minTime": s.head.min_time,
                "maxTime": s.head.max_time,
            },
            "seriesCountByMetricName": pairs(&s.series_count_by_metric_name),
            "labelValueCountByLabelName": pairs(&s.label_value_count_by_label_name),
            "memoryInBytesByLabelName": pairs(&s.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": pairs(&s.series_count_by_label_value_pair),
        }),
        &[],
        &[],
    ))
}

pub async fn targets(State(state): State<Arc<ApiState>>, params: Params) -> Result<Response, ApiError> {
    let wanted = params.get("state").unwrap_or("any").to_ascii_lowercase();
    if !matches!(wanted.as_str(), "any" | "active" | "dropped") {
        return Err(ApiError::bad_data(format!("invalid parameter \"state\": {wanted:?}: use active, dropped or any")));
    }
    let pool = params.get("scrapePool").map(str::to_string);
    let pool_filter = |p: &str| pool.as_deref().is_none_or(|want| want == p);
    let active: Vec<Json> = if wanted == "dropped" {
        Vec::new()
    } else {
        state
            .admin
            .targets()
            .into_iter()
            .filter(|t| pool_filter(&t.scrape_pool))
            .map(|t| {
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.scrape_pool,
                    "scrapeUrl": t.scrape_url,
                    "globalUrl": t.global_url,
                    "lastError": t.last_error,
                    "lastScrape": t.last_scrape,
                    "lastScrapeDuration": t.last_scrape_duration_seconds,
                    "health": t.health,
                    "scrapeInterval": t.scrape_interval,
                    "scrapeTimeout": t.scrape_timeout,
                })
            })
            .collect()
    };
    let mut dropped_counts = serde_json::Map::new();
    let mut dropped = Vec::new();
    for (labels, pool) in state.admin.dropped_targets() {
        if pool_filter(&pool) {
            let count = dropped_counts.entry(pool.clone()).or_insert(json!(0));
            *count = json!(count.as_u64().unwrap_or(0) + 1);
            if wanted != "active" {
                dropped.push(json!({"discoveredLabels": labels_json(&labels), "scrapePool": pool}));
            }
        }
    }
    Ok(success(
        json!({"activeTargets": active, "droppedTargets": dropped, "droppedTargetCounts": dropped_counts}),
        &[],
        &[],
    ))
}

pub async fn flush_tsdb(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let admin = state.admin.clone();
    blocking(move || admin.flush_tsdb().map_err(storage_err)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn healthy() -> Response {
    (StatusCode::OK, "Osprey is Healthy.\n").into_response()
}

pub async fn ready(State(state): State<Arc<ApiState>>) -> Response {
    if state.admin.is_ready() {
        (StatusCode::OK, "Osprey is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: Osprey is replaying its write-ahead log.\n")
            .into_response()
    }
}
