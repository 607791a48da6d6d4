//! The two servers under comparison, seen the same way: a base URL that takes remote writes
//! and answers the query API. Also starts the reference Prometheus.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use osprey_model::WriteRequest;
use serde_json::Value;

use super::queries::{Query, When};
use crate::common::{client, eventually, free_port, write_file, Proc};

pub struct Endpoint {
    pub name: &'static str,
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Endpoint {
    pub fn new(name: &'static str, base: String) -> Endpoint {
        Endpoint { name, base, http: client() }
    }

    /// One remote-write 1.0 request; panics with the server's answer when it is refused,
    /// since every later comparison would be meaningless.
    pub fn write(&self, req: &WriteRequest) {
        let body = osprey_wire::remote_write::encode_write_request(req);
        let resp = self
            .http
            .post(format!("{}/api/v1/write", self.base))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("{}: remote write failed: {e}", self.name));
        let status = resp.status();
        assert!(
            status.is_success(),
            "{}: remote write answered {status}: {}",
            self.name,
            resp.text().unwrap_or_default()
        );
    }

    /// Runs a query; returns the HTTP status and the JSON body (a JSON string when the body
    /// is not JSON, or the transport error).
    pub fn query(&self, q: &Query) -> (u16, Value) {
        let (path, params): (&str, Vec<(&str, String)>) = match q.when {
            When::Instant { time_s } => {
                ("/api/v1/query", vec![("query", q.expr.clone()), ("time", time_s.to_string())])
            }
            When::Range { start_s, end_s, step_s } => (
                "/api/v1/query_range",
                vec![
                    ("query", q.expr.clone()),
                    ("start", start_s.to_string()),
                    ("end", end_s.to_string()),
                    ("step", step_s.to_string()),
                ],
            ),
        };
        match self.http.get(format!("{}{path}", self.base)).query(&params).send() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(e) => (0, Value::String(format!("request failed: {e}"))),
        }
    }
}

/// Starts Prometheus on a free loopback port with the remote-write receiver on, no scrape
/// targets and its TSDB in `dir`; waits (bounded) until it is ready.
pub fn start_prometheus(dir: &Path) -> (Proc, Endpoint) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    write_file(&config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("create prometheus log");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let proc = Proc { child, name: "prometheus".into() };
    let endpoint = Endpoint::new("prometheus", format!("http://127.0.0.1:{port}"));
    let ready = eventually(Duration::from_secs(30), || {
        client().get(format!("{}/-/ready", endpoint.base)).send().ok().filter(|r| r.status().is_success())
    });
    assert!(
        ready.is_some(),
        "prometheus did not become ready within 30s; log:\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    (proc, endpoint)
}
