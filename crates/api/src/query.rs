//! PromQL endpoints: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`,
//! `/api/v1/parse_query`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::Response;
use osprey_model::{MetricsQuerier, TenantId};
use osprey_promql::{Engine, PromqlError, PromqlErrorKind, QueryContext, QueryOutput, Value};
use serde_json::{json, Value as Json};

use crate::params::Params;
use crate::response::{format_value, json_time, success, ApiError};
use crate::tenant::RequestTenant;
use crate::{blocking, ApiState};

/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub async fn instant(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let query = params.get("query").unwrap_or("").to_string();
    let time = params.time_or("time", now_ms())?;
    let ctx = context(&state, &params)?;
    let with_stats = params.get("stats").is_some();
    let output = evaluate(&state, tenant, query, ctx, move |engine, querier, tenant, query, ctx| {
        engine.instant_query(querier, tenant, query, time, ctx)
    })
    .await?;
    Ok(render(output, with_stats))
}

pub async fn range(
    State(state): State<Arc<ApiState>>,
    RequestTenant(tenant): RequestTenant,
    params: Params,
) -> Result<Response, ApiError> {
    let start = required_time(&params, "start")?;
    let end = required_time(&params, "end")?;
    if end < start {
        return Err(ApiError::bad_data("end timestamp must not be before start time"));
    }
    let step = params
        .duration("step")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": cannot parse \"\" to a valid duration"))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let query = params.get("query").unwrap_or("").to_string();
    let ctx = context(&state, &params)?;
    let with_stats = params.get("stats").is_some();
    let output = evaluate(&state, tenant, query, ctx, move |engine, querier, tenant, query, ctx| {
        engine.range_query(querier, tenant, query, start, end, step, ctx)
    })
    .await?;
    Ok(render(output, with_stats))
}

/// Runs one query: waits for a query slot, evaluates on a blocking thread (cancelled if the
/// client goes away), records its duration and logs it when slow.
async fn evaluate(
    state: &Arc<ApiState>,
    tenant: TenantId,
    query: String,
    ctx: QueryContext,
    run: impl FnOnce(&Engine, &dyn MetricsQuerier, &TenantId, &str, &QueryContext) -> Result<QueryOutput, PromqlError>
        + Send
        + 'static,
) -> Result<QueryOutput, ApiError> {
    let _slot = state
        .query_slots
        .acquire()
        .await
        .map_err(|_| ApiError::new(crate::ErrorType::Unavailable, "the server is shutting down"))?;
    let started = Instant::now();
    let (engine, querier) = (state.engine.clone(), state.querier.clone());
    let _cancel_on_disconnect = CancelOnDrop(ctx.cancel_handle());
    let logged = (tenant.clone(), query.clone());
    let output = blocking(move || run(&engine, &*querier, &tenant, &query, &ctx).map_err(query_error)).await;
    let elapsed = started.elapsed();
    state.metrics.query_done(elapsed);
    if elapsed >= state.options.slow_query_threshold {
        tracing::warn!(tenant = %logged.0, query = %logged.1, seconds = elapsed.as_secs_f64(), "slow query");
    }
    output
}

pub async fn format(params: Params) -> Result<Response, ApiError> {
    let query = params.get("query").unwrap_or("");
    let formatted = osprey_promql::format_query(query).map_err(query_error)?;
    Ok(success(json!(formatted), &[], &[]))
}

pub async fn parse(params: Params) -> Result<Response, ApiError> {
    let query = params.get("query").unwrap_or("");
    let ast = osprey_promql::parse_query_json(query).map_err(query_error)?;
    Ok(success(ast, &[], &[]))
}

fn required_time(params: &Params, name: &str) -> Result<i64, ApiError> {
    let text = params.get(name).unwrap_or("");
    crate::params::parse_time(text).ok_or_else(|| {
        ApiError::bad_data(format!("invalid parameter \"{name}\": cannot parse \"{text}\" to a valid timestamp"))
    })
}

fn context(state: &ApiState, params: &Params) -> Result<QueryContext, ApiError> {
    let default = state.engine.options().timeout;
    let timeout = match params.duration("timeout")? {
        Some(ms) if ms > 0 => Duration::from_millis(ms as u64).min(default),
        _ => default,
    };
    Ok(QueryContext::new(timeout))
}

/// Parse and validation errors name the parameter, as Prometheus's API does.
fn query_error(e: PromqlError) -> ApiError {
    if e.kind == PromqlErrorKind::BadData {
        ApiError::bad_data(format!("invalid parameter \"query\": {}", e.message))
    } else {
        ApiError::from(e)
    }
}

/// Cancels the query when the request future is dropped, i.e. when the client goes away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn render(output: QueryOutput, with_stats: bool) -> Response {
    let mut data = value_json(&output.value);
    if with_stats {
        let eval_seconds = output.stats.eval_time.as_secs_f64();
        data["stats"] = json!({
            "timings": {
                "evalTotalTime": eval_seconds,
                "resultSortTime": 0,
                "queryPreparationTime": 0,
                "innerEvalTime": eval_seconds,
                "execQueueTime": 0,
                "execTotalTime": eval_seconds,
            },
            "samples": {
                "totalQueryableSamples": output.stats.total_samples,
                "peakSamples": output.stats.peak_samples,
            },
        });
    }
    success(data, &output.warnings, &output.infos)
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Scalar { t, v } => {
            json!({"resultType": "scalar", "result": [json_time(*t), format_value(*v)]})
        }
        Value::String { t, v } => json!({"resultType": "string", "result": [json_time(*t), v]}),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|s| match &s.h {
                Some(h) => json!({
                    "metric": labels_json(&s.labels),
                    "histogram": [json_time(s.t), histogram_json(h)],
                }),
                None => json!({
                    "metric": labels_json(&s.labels),
                    "value": [json_time(s.t), format_value(s.v)],
                }),
            }).collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| {
                // As Prometheus: each of "values" and "histograms" only when non-empty.
                let mut item = json!({"metric": labels_json(&s.labels)});
                if !s.samples.is_empty() || s.histograms.is_empty() {
                    item["values"] =
                        s.samples.iter().map(|p| json!([json_time(p.t), format_value(p.v)])).collect::<Json>();
                }
                if !s.histograms.is_empty() {
                    item["histograms"] =
                        s.histograms.iter().map(|p| json!([json_time(p.t), histogram_json(&p.h)])).collect::<Json>();
                }
                item
            }).collect::<Vec<_>>(),
        }),
    }
}

/// Prometheus's JSON for a native histogram: count, sum and the populated buckets as
/// `[boundary_rule, lower, upper, count]` (numbers as strings).
fn histogram_json(h: &osprey_model::FloatHistogram) -> Json {
    let buckets: Vec<Json> = h
        .buckets()
        .iter()
        .filter(|b| b.count != 0.0)
        .map(|b| json!([b.boundary_rule(), format_value(b.lower), format_value(b.upper), format_value(b.count)]))
        .collect();
    json!({"count": format_value(h.count), "sum": format_value(h.sum), "buckets": buckets})
}

pub fn labels_json(labels: &osprey_model::Labels) -> Json {
    let map: serde_json::Map<String, Json> =
        labels.iter().map(|l| (l.name.clone(), Json::String(l.value.clone()))).collect();
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::FloatHistogram;

    #[test]
    fn native_histograms_render_as_prometheus_does() {
        let h = FloatHistogram {
            count: 3.0,
            sum: 5.0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            positive: vec![(0, 2.0), (1, 0.0)],
            ..Default::default()
        };
        let got = histogram_json(&h);
        assert_eq!(
            got,
            json!({"count": "3", "sum": "5", "buckets": [[3, "-0.001", "0.001", "1"], [0, "0.5", "1", "2"]]})
        );
    }
}
