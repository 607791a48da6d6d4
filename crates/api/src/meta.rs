//! Metadata endpoints: `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`,
//! `/api/v1/metadata`, `/api/v1/query_exemplars`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use osprey_model::{is_valid_label_name, Labels, Matcher};
use serde_json::{json, Value as Json};

use crate::params::{Params, MAX_TIME_MS, MIN_TIME_MS};
use crate::query::labels_json;
use crate::response::{format_value, json_time, success, ApiError};
use crate::tenant::RequestTenant;
use crate::{blocking, storage_err, ApiState};

/// The matcher sets of all `match[]` parameters.
fn match_params(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    params
        .all("match[]")
        .into_iter()
        .map(|text| {
            crate::selector::parse_selector(text)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))
        })
        .collect()
}

fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = params.time_or("start", MIN_TIME_MS)?;
    let end = params.time_or("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data("end timestamp must not be before start time"));
    }
    Ok((start, end))
}

/// Truncates to `limit` (0 = none) and says so in a warning, as Prometheus 3 does.
fn apply_limit<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        vec!["results truncated due to limit".to_string()]
    } else {
        Vec::new()
    }
}

/// The sorted union of a lookup over every `match[]` selector, or over all series without one.
fn union_over_selectors(
    selectors: &[Vec<Matcher>],
    lookup: impl Fn(&[Matcher]) -> Result<Vec<String>, osprey_model::StorageError>,
) -> Result<Vec<String>, ApiError> {
    if selectors.is_empty() {
        return lookup(&[]).map_err(storage_err);
    }
    let mut all = BTreeSet::new();
    for matchers in selectors {
        all.extend(lookup(matchers).map_err(storage_err)?);
    }
    Ok(all.into_iter().collect())
}

pub async fn series(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let selectors = match_params(&params)?;
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&params)?;
    let limit = params.limit()?;
    let querier = state.querier.clone();
    let mut found: Vec<Labels> = blocking(move || {
        let mut all = BTreeSet::new();
        for matchers in &selectors {
            all.extend(querier.series(&tenant, matchers, start, end).map_err(storage_err)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    let warnings = apply_limit(&mut found, limit);
    Ok(success(Json::Array(found.iter().map(labels_json).collect()), &warnings, &[]))
}

pub async fn labels(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let selectors = match_params(&params)?;
    let (start, end) = time_range(&params)?;
    let limit = params.limit()?;
    let querier = state.querier.clone();
    let mut names = blocking(move || {
        union_over_selectors(&selectors, |matchers| querier.label_names(&tenant, matchers, start, end))
    })
    .await?;
    let warnings = apply_limit(&mut names, limit);
    Ok(success(json!(names), &warnings, &[]))
}

pub async fn label_values(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let selectors = match_params(&params)?;
    let (start, end) = time_range(&params)?;
    let limit = params.limit()?;
    let querier = state.querier.clone();
    let mut values = blocking(move || {
        union_over_selectors(&selectors, |matchers| querier.label_values(&tenant, &name, matchers, start, end))
    })
    .await?;
    let warnings = apply_limit(&mut values, limit);
    Ok(success(json!(values), &warnings, &[]))
}

pub async fn metadata(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let limit = params.limit()?;
    let per_metric = match params.get("limit_per_metric") {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::bad_data(format!("invalid parameter \"limit_per_metric\": cannot parse \"{t}\" to a valid limit"))
        })?,
    };
    let metric = params.get("metric").map(str::to_string);
    let querier = state.querier.clone();
    let all = blocking(move || querier.metadata(&tenant).map_err(storage_err)).await?;
    let mut by_name: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for m in all {
        if metric.as_deref().is_some_and(|want| want != m.metric_family_name) {
            continue;
        }
        let entries = by_name.entry(m.metric_family_name.clone()).or_default();
        let entry = json!({"type": m.metric_type.as_str(), "help": m.help, "unit": m.unit});
        if (per_metric == 0 || entries.len() < per_metric) && !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    if limit > 0 {
        by_name = by_name.into_iter().take(limit).collect();
    }
    Ok(success(json!(by_name), &[], &[]))
}

pub async fn exemplars(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let query = params.get("query").unwrap_or("");
    let selectors = crate::selector::selectors_of(query)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
    let (start, end) = time_range(&params)?;
    let querier = state.querier.clone();
    let found = blocking(move || {
        let mut by_series = BTreeMap::new();
        for matchers in &selectors {
            for (labels, exemplars) in querier.exemplars(&tenant, matchers, start, end).map_err(storage_err)? {
                by_series.insert(labels, exemplars);
            }
        }
        Ok(by_series)
    })
    .await?;
    let data: Vec<Json> = found
        .iter()
        .map(|(labels, exemplars)| {
            json!({
                "seriesLabels": labels_json(labels),
                "exemplars": exemplars.iter().map(|e| json!({
                    "labels": labels_json(&e.labels),
                    "value": format_value(e.v),
                    "timestamp": json_time(e.t),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(success(Json::Array(data), &[], &[]))
}
