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
use crate::response::{format_value, json_time, success, success_raw, ApiError};
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
    let mut data = Vec::with_capacity(256);
    write_value_json(&output.value, &mut data);
    if with_stats {
        let eval_seconds = output.stats.eval_time.as_secs_f64();
        let stats = json!({
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
        // After "resultType", in the key order of the rest of the object.
        data.pop();
        data.extend_from_slice(b",\"stats\":");
        write_json(&stats, &mut data);
        data.push(b'}');
    }
    success_raw(data, &output.warnings, &output.infos)
}

/// A query result as Prometheus's `data` object, written straight into `out`: building a
/// `serde_json::Value` per point first took three times as long as evaluating a range query
/// returning 11k points. Keys come in the sorted order `serde_json` gives objects, so the
/// bytes are those of the `Value` rendering.
fn write_value_json(value: &Value, out: &mut Vec<u8>) {
    let result_type = match value {
        Value::Scalar { t, v } => {
            out.extend_from_slice(b"{\"result\":[");
            write_point(*t, *v, out);
            "scalar"
        }
        Value::String { t, v } => {
            out.extend_from_slice(b"{\"result\":[");
            write_json(&json_time(*t), out);
            out.push(b',');
            write_json(v.as_str(), out);
            "string"
        }
        Value::Vector(samples) => {
            out.extend_from_slice(b"{\"result\":[");
            write_list(out, samples, |s, out| {
                match &s.h {
                    Some(h) => {
                        out.extend_from_slice(b"{\"histogram\":[");
                        write_histogram_point(s.t, h, out);
                        out.extend_from_slice(b"],\"metric\":");
                        write_labels(&s.labels, out);
                    }
                    None => {
                        out.extend_from_slice(b"{\"metric\":");
                        write_labels(&s.labels, out);
                        out.extend_from_slice(b",\"value\":[");
                        write_point(s.t, s.v, out);
                        out.push(b']');
                    }
                }
                out.push(b'}');
            });
            "vector"
        }
        Value::Matrix(series) => {
            out.extend_from_slice(b"{\"result\":[");
            write_list(out, series, |s, out| {
                out.push(b'{');
                // As Prometheus: each of "values" and "histograms" only when non-empty.
                if !s.histograms.is_empty() {
                    out.extend_from_slice(b"\"histograms\":[");
                    write_list(out, &s.histograms, |p, out| {
                        out.push(b'[');
                        write_histogram_point(p.t, &p.h, out);
                        out.push(b']');
                    });
                    out.extend_from_slice(b"],");
                }
                out.extend_from_slice(b"\"metric\":");
                write_labels(&s.labels, out);
                if !s.samples.is_empty() || s.histograms.is_empty() {
                    out.extend_from_slice(b",\"values\":[");
                    write_list(out, &s.samples, |p, out| {
                        out.push(b'[');
                        write_point(p.t, p.v, out);
                        out.push(b']');
                    });
                    out.push(b']');
                }
                out.push(b'}');
            });
            "matrix"
        }
    };
    out.extend_from_slice(b"],\"resultType\":\"");
    out.extend_from_slice(result_type.as_bytes());
    out.extend_from_slice(b"\"}");
}

/// Writes each item with `write`, separated by commas.
fn write_list<'a, T: 'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = &'a T>,
    mut write: impl FnMut(&'a T, &mut Vec<u8>),
) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(item, out);
    }
}

/// `<time>,"<value>"`, as inside a point's brackets.
fn write_point(t: i64, v: f64, out: &mut Vec<u8>) {
    write_json(&json_time(t), out);
    out.push(b',');
    write_json(&format_value(v), out);
}

/// `<time>,{<histogram>}`, as inside a point's brackets.
fn write_histogram_point(t: i64, h: &osprey_model::FloatHistogram, out: &mut Vec<u8>) {
    write_json(&json_time(t), out);
    out.push(b',');
    write_json(&histogram_json(h), out);
}

/// A label set as a JSON object; labels are sorted by name, as the object's keys are.
fn write_labels(labels: &osprey_model::Labels, out: &mut Vec<u8>) {
    out.push(b'{');
    write_list(out, labels, |l, out| {
        write_json(l.name.as_str(), out);
        out.push(b':');
        write_json(l.value.as_str(), out);
    });
    out.push(b'}');
}

fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and these values (strings, numbers, `Value`s) always
    // serialize.
    let _ = serde_json::to_writer(out, value);
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
    use osprey_model::{FloatHistogram, HistogramSample, Labels, Sample};
    use osprey_promql::{MatrixSeries, VectorSample};

    fn written(value: &Value) -> String {
        let mut out = Vec::new();
        write_value_json(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The bytes written are those `serde_json` gives the same document as a `Value`.
    #[test]
    fn results_are_written_as_their_json_values_render() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a\"b\n"), ("zone", "é")]);
        let h = FloatHistogram { count: 2.0, sum: 1.5, positive: vec![(0, 2.0)], ..Default::default() };
        let scalar = Value::Scalar { t: 1_500, v: f64::NAN };
        assert_eq!(written(&scalar), json!({"resultType": "scalar", "result": [1.5, "NaN"]}).to_string());
        let string = Value::String { t: 2_000, v: "x\"y".into() };
        assert_eq!(written(&string), json!({"resultType": "string", "result": [2, "x\"y"]}).to_string());
        let vector = Value::Vector(vec![
            VectorSample { labels: labels.clone(), t: 1_001, v: -0.0, h: None },
            VectorSample { labels: Labels::default(), t: 3_000, v: 0.0, h: Some(h.clone()) },
        ]);
        let want = json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "a\"b\n", "zone": "é"}, "value": [1.001, "-0"]},
            {"metric": {}, "histogram": [3, histogram_json(&h)]},
        ]});
        assert_eq!(written(&vector), want.to_string());
        let matrix = Value::Matrix(vec![
            MatrixSeries {
                labels: labels.clone(),
                samples: vec![Sample::new(1_000, 1e21), Sample::new(2_500, 5e-7)],
                histograms: vec![],
            },
            MatrixSeries {
                labels: Labels::default(),
                samples: vec![],
                histograms: vec![HistogramSample { t: 4_000, h: h.clone() }],
            },
            MatrixSeries {
                labels: Labels::from_pairs([("a", "b")]),
                samples: vec![Sample::new(1_000, f64::INFINITY)],
                histograms: vec![HistogramSample { t: 2_000, h: h.clone() }],
            },
            MatrixSeries { labels: Labels::default(), samples: vec![], histograms: vec![] },
        ]);
        let want = json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "up", "job": "a\"b\n", "zone": "é"}, "values": [[1, "1e+21"], [2.5, "5e-07"]]},
            {"metric": {}, "histograms": [[4, histogram_json(&h)]]},
            {"metric": {"a": "b"}, "values": [[1, "+Inf"]], "histograms": [[2, histogram_json(&h)]]},
            {"metric": {}, "values": []},
        ]});
        assert_eq!(written(&matrix), want.to_string());
        assert_eq!(written(&Value::Matrix(vec![])), json!({"resultType": "matrix", "result": []}).to_string());
    }

    #[tokio::test]
    async fn statistics_follow_the_result_when_asked_for() {
        let stats = osprey_promql::QueryStats { total_samples: 7, peak_samples: 3, eval_time: Duration::ZERO };
        let output = |with: bool| {
            let value = Value::Scalar { t: 1_000, v: 2.0 };
            render(QueryOutput { value, warnings: vec![], infos: vec![], stats: stats.clone() }, with)
        };
        let body = |r: Response| async {
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
            serde_json::from_slice::<Json>(&bytes).unwrap()
        };
        let with = body(output(true)).await;
        assert_eq!(with["data"]["result"], json!([1, "2"]));
        assert_eq!(with["data"]["stats"]["samples"], json!({"totalQueryableSamples": 7, "peakSamples": 3}));
        assert_eq!(with["status"], "success");
        assert_eq!(
            body(output(false)).await,
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}})
        );
    }

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
