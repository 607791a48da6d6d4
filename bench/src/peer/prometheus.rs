//! Prometheus with its remote-write receiver. Its disk usage is the size of a TSDB snapshot
//! taken with the head included: the head is written out as a block, so the figure is what
//! the data costs once compacted, without the write-ahead log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use super::{admin_call, DiskUsage};
use crate::server::{dir_size, free_port, Server, Workspace};

pub async fn start(binary: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
    let workspace = Workspace::new("prometheus")?;
    let config = workspace.file("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").context("cannot write the Prometheus config")?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .arg("--web.enable-remote-write-receiver")
        .arg("--web.enable-admin-api")
        .arg(format!("--storage.tsdb.path={}", workspace.data_dir().display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", config.display()));
    Server::start(command, workspace, port, "/-/ready", client).await
}

pub async fn disk_usage(server: &mut Server, client: &reqwest::Client) -> anyhow::Result<DiskUsage> {
    let url = format!("{}/api/v1/admin/tsdb/snapshot", server.base_url);
    // Writing the head out as a block takes a while for millions of samples.
    let body =
        admin_call(client.post(&url).timeout(Duration::from_secs(600)), "POST /api/v1/admin/tsdb/snapshot").await?;
    let name = snapshot_name(&body)?;
    let dir = server.workspace.data_dir().join("snapshots").join(&name);
    let bytes = dir_size(&dir, &|_| false).with_context(|| format!("cannot measure snapshot {}", dir.display()))?;
    Ok(DiskUsage { bytes, method: "TSDB snapshot including the head (blocks only, no WAL)".into() })
}

/// The snapshot directory name from `{"status":"success","data":{"name":"…"}}`.
fn snapshot_name(body: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_str(body).context("snapshot answer is not JSON")?;
    value["data"]["name"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("snapshot answer has no data.name: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_snapshot_name() {
        let body = r#"{"status":"success","data":{"name":"20171210T211224Z-2be650b6d019eb54"}}"#;
        assert_eq!(snapshot_name(body).expect("name"), "20171210T211224Z-2be650b6d019eb54");
        assert!(snapshot_name(r#"{"status":"error"}"#).is_err());
    }
}
