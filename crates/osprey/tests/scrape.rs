//! Osprey scrapes a Python `prometheus_client` application and a node exporter; when a target
//! stops, `up` goes to 0 and its series go stale.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn value_of(result: &[Value]) -> Option<String> {
    result.first().and_then(|s| s["value"][1].as_str()).map(str::to_string)
}

#[test]
fn scrapes_python_client_and_node_exporter_then_marks_stopped_target_stale() {
    if !require("prometheus-node-exporter") || !require("python3") {
        return;
    }
    if !require_python("prometheus_client") {
        return;
    }
    let (_node, node_port) = start_node_exporter();
    let app_port = free_port();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/client_app.py");
    let child = Command::new("python3")
        .arg(fixture)
        .arg(app_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut app_proc = Proc { child, name: "client_app".into() };
    let up = eventually(Duration::from_secs(20), || {
        client().get(format!("http://127.0.0.1:{app_port}/metrics")).send().ok()
    });
    assert!(up.is_some(), "python app did not start");

    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("osprey.yml");
    write_file(
        &config,
        &format!(
            r#"
global: {{scrape_interval: 1s, scrape_timeout: 900ms}}
scrape_configs:
  - job_name: app
    static_configs: [{{targets: ["127.0.0.1:{app_port}"], labels: {{team: checkout}}}}]
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{node_port}"]}}]
  - job_name: dropped
    static_configs: [{{targets: ["127.0.0.1:9"]}}]
    relabel_configs: [{{action: drop, source_labels: [__address__], regex: "127.0.0.1:9"}}]
"#
        ),
    );
    let osprey = Osprey::start(&["--config", config.to_str().unwrap()]);
    let now = || format!("{:.3}", now_ms() as f64 / 1000.0);

    let both_up = eventually(Duration::from_secs(30), || {
        let r = osprey.query(None, "sum(up)", &now());
        (value_of(&r).as_deref() == Some("2")).then_some(())
    });
    assert!(both_up.is_some(), "targets not up; log:\n{}", osprey.log());

    let latest = |q: &str| value_of(&osprey.query(None, q, &now()));
    assert_eq!(latest(r#"app_requests_total{method="GET",job="app",team="checkout"}"#).as_deref(), Some("7"));
    assert_eq!(latest("app_inflight_requests").as_deref(), Some("2.5"));
    assert_eq!(latest(r#"app_latency_seconds_bucket{le="0.5"}"#).as_deref(), Some("3"));
    assert_eq!(latest(r#"app_latency_seconds_bucket{le="+Inf"}"#).as_deref(), Some("5"));
    assert_eq!(latest("app_latency_seconds_count").as_deref(), Some("5"));
    assert_eq!(latest("app_response_bytes_sum").as_deref(), Some("400"));
    assert!(latest(r#"node_cpu_seconds_total{job="node"}"#).is_some(), "no node exporter series");
    assert!(latest(r#"scrape_samples_scraped{job="app"}"#).is_some());

    // The exemplar came through OpenMetrics content negotiation.
    let exemplar = eventually(Duration::from_secs(10), || {
        let (_, body) = osprey.get(
            None,
            "/api/v1/query_exemplars",
            &[("query", "app_requests_total"), ("start", "0"), ("end", &now())],
        );
        body["data"][0]["exemplars"][0]["labels"]["trace_id"].as_str().map(str::to_string)
    });
    assert_eq!(exemplar.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));

    let (_, targets) = osprey.get(None, "/api/v1/targets", &[]);
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 2);
    assert!(active.iter().all(|t| t["health"] == json!("up")), "{targets}");
    assert_eq!(targets["data"]["droppedTargets"][0]["scrapePool"], json!("dropped"), "{targets}");
    assert_eq!(targets["data"]["droppedTargetCounts"], json!({"dropped": 1}), "{targets}");

    // Stop the app: up goes to 0 and its series are marked stale (gone from instant queries).
    app_proc.kill9();
    let down = eventually(Duration::from_secs(20), || {
        let r = osprey.query(None, r#"up{job="app"}"#, &now());
        (value_of(&r).as_deref() == Some("0")).then_some(())
    });
    assert!(down.is_some(), "up did not go to 0");
    let stale = eventually(Duration::from_secs(20), || {
        osprey.query(None, "app_inflight_requests", &now()).is_empty().then_some(())
    });
    assert!(stale.is_some(), "series of the stopped target did not go stale");
    assert_eq!(value_of(&osprey.query(None, r#"up{job="node"}"#, &now())).as_deref(), Some("1"));
}
