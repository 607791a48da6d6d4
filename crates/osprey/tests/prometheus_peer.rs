//! A real Prometheus scrapes a real node exporter and remote-writes into Osprey; what Prometheus
//! holds must then be in Osprey with the same label sets, timestamps and values.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn matrix_by_labels(result: &[Value]) -> std::collections::BTreeMap<String, Vec<Value>> {
    result.iter().map(|s| (s["metric"].to_string(), s["values"].as_array().cloned().unwrap_or_default())).collect()
}

#[test]
fn prometheus_remote_write_of_node_exporter_scrapes_matches_prometheus() {
    if !require("prometheus") || !require("prometheus-node-exporter") {
        return;
    }
    let osprey = Osprey::start(&[]);
    let (_node, node_port) = start_node_exporter();
    let tmp = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{node_port}"]
remote_write:
  - url: http://127.0.0.1:{}/api/v1/write
    queue_config:
      batch_send_deadline: 200ms
      max_samples_per_send: 2000
    metadata_config:
      send_interval: 1s
"#,
        osprey.port
    );
    write_file(&tmp.path().join("prometheus.yml"), &config);
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", tmp.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", tmp.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prom = Proc { child, name: "prometheus".into() };
    let prom = |q: &str, t: &str| -> Vec<Value> {
        let r: Value = client()
            .get(format!("http://127.0.0.1:{prom_port}/api/v1/query"))
            .query(&[("query", q), ("time", t)])
            .send()
            .ok()
            .and_then(|r| r.json().ok())
            .unwrap_or(Value::Null);
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    };

    // Let Prometheus scrape a few times, then pick a cut-off a little in the past so that
    // remote write has delivered everything up to it.
    let scraped = eventually(Duration::from_secs(60), || {
        let r = prom("count_over_time(up[1h])", &(now_ms() as f64 / 1000.0).to_string());
        r.first().and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok()).filter(|n| *n >= 5.0)
    });
    assert!(scraped.is_some(), "prometheus did not scrape the node exporter");
    let cutoff = format!("{:.3}", (now_ms() - 2_000) as f64 / 1000.0);
    let selector = r#"{job="node"}[1h]"#;
    let expected = matrix_by_labels(&prom(selector, &cutoff));
    assert!(expected.len() > 100, "node exporter exposed only {} series", expected.len());

    let got = eventually(Duration::from_secs(30), || {
        let got = matrix_by_labels(&osprey.query(None, selector, &cutoff));
        (got == expected).then_some(got)
    });
    if got.is_none() {
        let got = matrix_by_labels(&osprey.query(None, selector, &cutoff));
        let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
        let differing: Vec<_> = expected
            .iter()
            .filter_map(|(k, v)| got.get(k).filter(|g| *g != v).map(|g| format!("{k}: prometheus {v:?} osprey {g:?}")))
            .take(3)
            .collect();
        panic!(
            "osprey differs from prometheus: {} series expected, {} got; missing e.g. {missing:?}; differing e.g. {differing:?}",
            expected.len(),
            got.len()
        );
    }
    // Metadata sent by Prometheus's remote write is served back.
    let metadata = eventually(Duration::from_secs(20), || {
        let (_, body) = osprey.get(None, "/api/v1/metadata", &[("metric", "node_cpu_seconds_total")]);
        body["data"]["node_cpu_seconds_total"][0]["type"].as_str().map(str::to_string)
    });
    assert_eq!(metadata.as_deref(), Some("counter"));
}
