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
    pub async fn disk_usage(self, server: &mut Server, client: &reqwest::Client) -> anyhow::Result<DiskUsage> {
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
        let text = if output.stdout.is_empty() { output.stderr } else { output.stdout };
        String::from_utf8_lossy(&text).lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
    }
}

/// The remote_write URL every peer serves.
pub fn write_url(server: &Server) -> String {
    format!("{}/api/v1/write", server.base_url)
}

/// How many samples between `first_ms` and `last_ms` the server returns to PromQL queries,
/// through the Prometheus HTTP API every peer serves: proof that what was acknowledged was
/// stored, so no peer looks fast by dropping data. One query per metric name, because
/// `count_over_time` drops the name and series of different metrics would then collide.
pub async fn stored_samples(
    server: &Server,
    client: &reqwest::Client,
    first_ms: i64,
    last_ms: i64,
) -> anyhow::Result<u64> {
    let start = format!("{:.3}", first_ms as f64 / 1000.0);
    let time = format!("{:.3}", (last_ms + 1) as f64 / 1000.0);
    let request = client
        .get(format!("{}/api/v1/label/__name__/values", server.base_url))
        .query(&[("start", start.as_str()), ("end", time.as_str())]);
    let body = admin_call(request, "GET /api/v1/label/__name__/values").await?;
    let names: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("label values answer is not JSON ({e}): {body}"))?;
    let names =
        names["data"].as_array().ok_or_else(|| anyhow::anyhow!("label values answer has no data array: {body}"))?;
    let range_s = (last_ms - first_ms) / 1000 + 2;
    let mut total = 0;
    for name in names.iter().filter_map(|n| n.as_str()) {
        let query = format!("sum(count_over_time({{__name__=\"{name}\"}}[{range_s}s]))");
        let request = client
            .get(format!("{}/api/v1/query", server.base_url))
            .query(&[("query", query.as_str()), ("time", time.as_str())])
            .timeout(std::time::Duration::from_secs(300));
        let body = admin_call(request, &format!("GET /api/v1/query {query}")).await?;
        total += parse_scalar_result(&body)?;
    }
    Ok(total)
}

/// The value of a one-element instant vector answer, or 0 for an empty one.
fn parse_scalar_result(body: &str) -> anyhow::Result<u64> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| anyhow::anyhow!("query answer is not JSON ({e}): {body}"))?;
    let result = value["data"]["result"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("query answer has no data.result array: {body}"))?;
    let Some(first) = result.first() else { return Ok(0) };
    let text = first["value"][1].as_str().ok_or_else(|| anyhow::anyhow!("query answer has no value: {body}"))?;
    let count: f64 = text.parse().map_err(|_| anyhow::anyhow!("query answered a non-number {text:?}"))?;
    Ok(count as u64)
}

/// Sends an admin request and fails with the peer's answer unless it succeeded.
async fn admin_call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
    let response = request.send().await.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
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
    fn reads_the_count_from_an_instant_vector() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"200000"]}]}}"#;
        assert_eq!(parse_scalar_result(body).expect("count"), 200_000);
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_scalar_result(empty).expect("count"), 0);
        assert!(parse_scalar_result(r#"{"status":"error"}"#).is_err());
    }

    #[test]
    fn names_round_trip() {
        for p in Peer::ALL {
            assert_eq!(Peer::from_name(p.name()), Some(p));
        }
        assert_eq!(Peer::from_name("thanos"), None);
    }
}
