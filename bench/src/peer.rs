//! The three servers under test. Each peer module knows how to start its server in a fresh
//! temporary directory and how to make it persist what it ingested so that the bytes on disk
//! can be measured fairly (blocks, not write-ahead logs).

mod osprey;
mod prometheus;
mod victoria_metrics;

use std::path::Path;
use std::process::Command;

use crate::server::Server;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Osprey,
    Prometheus,
    VictoriaMetrics,
}

/// How many bytes a peer keeps on disk for the workload, and how that was measured.
#[derive(Clone, Debug)]
pub struct DiskUsage {
    pub bytes: u64,
    pub method: String,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::Osprey, Peer::Prometheus, Peer::VictoriaMetrics];

    /// The name used on the command line, in the JSON and as a column heading.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Osprey => "osprey",
            Peer::Prometheus => "prometheus",
            Peer::VictoriaMetrics => "victoria-metrics",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Peer::Osprey => "Osprey",
            Peer::Prometheus => "Prometheus",
            Peer::VictoriaMetrics => "VictoriaMetrics",
        }
    }

    pub fn from_name(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Starts the server and waits until it is ready to accept writes.
    pub async fn start(self, binary: &Path, client: &reqwest::Client) -> anyhow::Result<Server> {
        match self {
            Peer::Osprey => osprey::start(binary, client).await,
            Peer::Prometheus => prometheus::start(binary, client).await,
            Peer::VictoriaMetrics => victoria_metrics::start(binary, client).await,
        }
    }

    /// Makes the server persist everything it ingested, then measures it. May stop the
    /// server when it offers no other way to persist.
    pub async fn disk_usage(
        self,
        server: &mut Server,
        client: &reqwest::Client,
    ) -> anyhow::Result<DiskUsage> {
        match self {
            Peer::Osprey => osprey::disk_usage(server, client).await,
            Peer::Prometheus => prometheus::disk_usage(server, client).await,
            Peer::VictoriaMetrics => victoria_metrics::disk_usage(server, client).await,
        }
    }

    /// The first line the binary prints for its version flag, if it prints one.
    pub fn version(self, binary: &Path) -> Option<String> {
        let flag = match self {
            Peer::VictoriaMetrics => "-version",
            Peer::Osprey | Peer::Prometheus => "--version",
        };
        let output = Command::new(binary).arg(flag).output().ok()?;
        let text = if output.stdout.is_empty() {
            output.stderr
        } else {
            output.stdout
        };
        String::from_utf8_lossy(&text)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    }
}

/// The remote_write URL every peer serves.
pub fn write_url(server: &Server) -> String {
    format!("{}/api/v1/write", server.base_url)
}

/// Sends an admin request and fails with the peer's answer unless it succeeded.
async fn admin_call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
    let response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{what} answered {status}: {}", body.trim());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Peer::ALL {
            assert_eq!(Peer::from_name(p.name()), Some(p));
        }
        assert_eq!(Peer::from_name("thanos"), None);
    }
}
