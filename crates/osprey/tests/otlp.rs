//! The OpenTelemetry Python SDK exports metrics over OTLP/HTTP into Osprey; they come back
//! through PromQL under Prometheus's OTLP naming.

mod common;

use std::process::Command;

use common::*;

const OTEL_MODULES: &str = "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http";

#[test]
fn otel_sdk_metrics_are_queryable_with_prometheus_names() {
    if !require_python(OTEL_MODULES) {
        return;
    }
    let osprey = Osprey::start(&[]);
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/otlp_app.py");
    let status = Command::new("python3").arg(fixture).arg(osprey.url("/v1/metrics")).status().unwrap();
    assert!(status.success(), "OTLP export failed; log:\n{}", osprey.log());

    let value = |q: &str| osprey.latest_value(q);
    assert_eq!(value(r#"orders_total{job="shop/checkout",instance="pod-1",region="eu"}"#).as_deref(), Some("5"));
    assert_eq!(value("queue_depth").as_deref(), Some("4"));
    assert_eq!(value(r#"request_duration_seconds_bucket{le="0.5",route="/pay"}"#).as_deref(), Some("2"));
    assert_eq!(value(r#"request_duration_seconds_bucket{le="+Inf"}"#).as_deref(), Some("4"));
    assert_eq!(value("request_duration_seconds_count").as_deref(), Some("4"));
    assert_eq!(value(r#"target_info{job="shop/checkout",deployment_environment="test"}"#).as_deref(), Some("1"));

    // Garbage gets a 400, and the server keeps serving what it stored.
    let resp = client()
        .post(osprey.url("/v1/metrics"))
        .header("Content-Type", "application/x-protobuf")
        .body(vec![0xff_u8; 32])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(value("queue_depth").as_deref(), Some("4"));
}

#[test]
fn otel_sdk_delta_temporality_is_stored_as_running_totals() {
    if !require_python(OTEL_MODULES) {
        return;
    }
    let osprey = Osprey::start(&[]);
    // Two exports of deltas, with more recorded in between (see the fixture's docstring).
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/otlp_delta_app.py");
    let status = Command::new("python3").arg(fixture).arg(osprey.url("/v1/metrics")).status().unwrap();
    assert!(status.success(), "OTLP delta export failed; log:\n{}", osprey.log());

    let value = |q: &str| osprey.latest_value(q);
    assert_eq!(value(r#"jobs_done_total{job="worker",instance="pod-7",queue="a"}"#).as_deref(), Some("7"));
    // One cumulative sample per export: 3, then 3 + 4.
    assert_eq!(value(r#"count_over_time(jobs_done_total[5m])"#).as_deref(), Some("2"));
    assert_eq!(value(r#"min_over_time(jobs_done_total[5m])"#).as_deref(), Some("3"));
    // A non-monotonic delta sum is a gauge of the running sum: 2 - 1.
    assert_eq!(value("workers_busy").as_deref(), Some("1"));
    assert_eq!(value(r#"task_duration_seconds_bucket{le="0.1"}"#).as_deref(), Some("1"));
    assert_eq!(value(r#"task_duration_seconds_bucket{le="1"}"#).as_deref(), Some("3"));
    assert_eq!(value(r#"task_duration_seconds_bucket{le="+Inf"}"#).as_deref(), Some("4"));
    assert_eq!(value("task_duration_seconds_count").as_deref(), Some("4"));
    let (status, body) = osprey.get(None, "/api/v1/metadata", &[("metric", "jobs_done_total")]);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["jobs_done_total"][0]["type"], "counter", "{body}");
}
