//! Single-node VictoriaMetrics. Its disk usage is its whole data directory (data parts and
//! index) after `/internal/force_flush` has turned in-memory parts into files, measured once
//! the size stops changing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{admin_call, DiskUsage};
use crate::server::{dir_size, free_port, Server, Workspace};

/// How long to wait for background merges after a flush before measuring anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn start(binary: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
    let workspace = Workspace::new("victoria-metrics")?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .arg(format!("-storageDataPath={}", workspace.data_dir().display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        // Queries only: show the last 30 s of samples too, so the stored-sample check sees all.
        .arg("-search.latencyOffset=0s");
    Server::start(command, workspace, port, "/health", client).await
}

pub async fn disk_usage(server: &mut Server, client: &reqwest::Client) -> anyhow::Result<DiskUsage> {
    let url = format!("{}/internal/force_flush", server.base_url);
    admin_call(client.get(&url).timeout(Duration::from_secs(300)), "GET /internal/force_flush").await?;
    let dir = server.workspace.data_dir();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = dir_size(&dir, &|_| false)?;
    let mut settled = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let now = dir_size(&dir, &|_| false)?;
        if now == last {
            settled = true;
            break;
        }
        last = now;
    }
    let method = if settled {
        "whole data directory after /internal/force_flush, once its size stopped changing"
    } else {
        "whole data directory after /internal/force_flush; still changing when measured"
    };
    Ok(DiskUsage { bytes: last, method: method.into() })
}
