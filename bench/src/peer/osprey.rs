//! Osprey. Its disk usage is `<data-dir>/metrics` without write-ahead logs after
//! `POST /api/v1/admin/tsdb/flush` has persisted the head into blocks and compacted them. A
//! build without that endpoint is stopped with SIGTERM instead and its whole data directory
//! measured, which then includes whatever it keeps in its WAL; the output says which it was.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;

use super::DiskUsage;
use crate::server::{dir_size, free_port, Server, Workspace};

pub async fn start(binary: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
    if !binary.exists() {
        anyhow::bail!(
            "{} does not exist: build it with `cargo build --release -p osprey` in the repository root, or pass --osprey-bin",
            binary.display()
        );
    }
    let workspace = Workspace::new("osprey")?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--data-dir").arg(workspace.data_dir());
    Server::start(command, workspace, port, "/ready", client).await
}

pub async fn disk_usage(server: &mut Server, client: &reqwest::Client) -> anyhow::Result<DiskUsage> {
    let url = format!("{}/api/v1/admin/tsdb/flush", server.base_url);
    let response = client
        .post(&url)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("POST /api/v1/admin/tsdb/flush: {e}"))?;
    let status = response.status();
    let data = server.workspace.data_dir();
    if status == StatusCode::NOT_FOUND {
        server.stop().context("stopping Osprey to make it persist its data")?;
        let bytes = dir_size(&data, &|_| false)?;
        return Ok(DiskUsage {
            bytes,
            method: "no flush endpoint (404): stopped with SIGTERM, whole data directory including WAL".into(),
        });
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("POST /api/v1/admin/tsdb/flush answered {status}: {}", body.trim());
    }
    let metrics = data.join("metrics");
    let (dir, method) = if metrics.is_dir() {
        (metrics, "metrics directory without WAL after POST /api/v1/admin/tsdb/flush")
    } else {
        (data, "whole data directory without WAL after POST /api/v1/admin/tsdb/flush (no metrics/ subdirectory)")
    };
    let is_wal = |p: &Path| p.file_name().is_some_and(|n| n == "wal");
    let bytes = dir_size(&dir, &is_wal).with_context(|| format!("cannot measure {}", dir.display()))?;
    Ok(DiskUsage { bytes, method: method.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for an Osprey build without the flush endpoint: ready, but 404 on POST.
    const WITHOUT_FLUSH: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def do_POST(self):
        self.send_response(404); self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

    #[tokio::test]
    async fn without_a_flush_endpoint_it_stops_the_server_and_measures_everything() {
        let workspace = Workspace::new("osprey-test").expect("workspace");
        std::fs::create_dir(workspace.data_dir().join("wal")).expect("mkdir");
        std::fs::write(workspace.data_dir().join("wal/000001"), [0u8; 700]).expect("write");
        std::fs::write(workspace.data_dir().join("head"), [0u8; 300]).expect("write");
        let port = free_port().expect("port");
        let mut command = Command::new("python3");
        command.args(["-c", WITHOUT_FLUSH, &port.to_string()]);
        let client = reqwest::Client::new();
        let mut server = Server::start(command, workspace, port, "/ready", &client).await.expect("starts");
        let usage = disk_usage(&mut server, &client).await.expect("measured");
        assert_eq!(usage.bytes, 1_000);
        assert!(usage.method.contains("404") && usage.method.contains("SIGTERM"), "{}", usage.method);
        assert!(!server.is_running());
    }
}
