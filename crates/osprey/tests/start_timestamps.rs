//! Start timestamps end to end: written through remote_write 2.0 and OTLP, kept across a
//! kill -9, read back with `start_timestamp()` when `query.use_start_timestamps` is on.

mod common;

use common::*;
use osprey_model::{Labels, Sample, TimeSeries, WriteRequest};
use osprey_wire::remote_write;
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

fn post(osprey: &Osprey, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::blocking::Response {
    let mut r = client().post(osprey.url(path)).header("Content-Type", content_type).body(body);
    if path == "/api/v1/write" {
        r = r.header("Content-Encoding", "snappy").header("X-Prometheus-Remote-Write-Version", "2.0.0");
    }
    r.send().unwrap()
}

/// A counter restarted at `T0 - 10s` and again at `T0 + 50s`, sampled every 15s.
fn counter() -> WriteRequest {
    let samples: Vec<Sample> = (0..6).map(|i| Sample::new(T0 + i * 15_000, (i % 4) as f64)).collect();
    let start_timestamps =
        samples.iter().map(|s| (s.t, if s.t < T0 + 50_000 { T0 - 10_000 } else { T0 + 50_000 })).collect();
    let series = TimeSeries {
        labels: Labels::from_pairs([("__name__", "rw_requests_total"), ("job", "api")]),
        samples,
        start_timestamps,
        ..TimeSeries::default()
    };
    WriteRequest { series: vec![series], metadata: vec![] }
}

fn otlp_sum() -> Vec<u8> {
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]},
        "scopeMetrics": [{"metrics": [{"name": "otlp_requests", "sum": {
            "aggregationTemporality": 2,
            "isMonotonic": true,
            "dataPoints": [{"startTimeUnixNano": ns(T0 - 5_000), "timeUnixNano": ns(T0 + 30_000), "asInt": "3"}],
        }}]}],
    }]})
    .to_string()
    .into_bytes()
}

fn value_at(osprey: &Osprey, q: &str, t: i64) -> Vec<Value> {
    osprey.query(None, q, &format!("{:.3}", t as f64 / 1000.0)).iter().map(|r| r["value"][1].clone()).collect()
}

#[test]
fn start_timestamps_from_remote_write_2_and_otlp_survive_a_restart() {
    let osprey = Osprey::start(&["--set", "query.use_start_timestamps=true"]);
    let resp = post(
        &osprey,
        "/api/v1/write",
        remote_write::CONTENT_TYPE_V2,
        remote_write::encode_write_request_v2(&counter()),
    );
    assert_eq!(resp.status().as_u16(), 204, "{}", resp.text().unwrap_or_default());
    let resp = post(&osprey, "/v1/metrics", "application/json", otlp_sum());
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().unwrap_or_default());

    let osprey = osprey.kill9_and_restart();
    // Per sample: the counter's start changed with its restart.
    assert_eq!(value_at(&osprey, "start_timestamp(rw_requests_total)", T0 + 45_000), [json!("1699999990")]);
    assert_eq!(value_at(&osprey, "start_timestamp(rw_requests_total)", T0 + 75_000), [json!("1700000050")]);
    assert_eq!(value_at(&osprey, "start_timestamp(otlp_requests_total)", T0 + 30_000), [json!("1699999995")]);
}
