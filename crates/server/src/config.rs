//! `osprey.yml`: the one configuration file. Each field's doc comment is its documentation.
//! Validation does no I/O; the binary's `check config` runs it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default HTTP port: free of Prometheus (9090), Alertmanager (9093), exporters (9100+),
/// Grafana (3000), Loki (3100), Tempo (3200), Pushgateway (9091) and VictoriaMetrics (8428).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7360";

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub query: QueryConfig,
    /// Defaults for every scrape job, as Prometheus's `global` section.
    pub global: GlobalConfig,
    /// Scrape jobs, with Prometheus's `scrape_configs` semantics.
    pub scrape_configs: Vec<osprey_scrape::ScrapeConfig>,
}

/// Prometheus's `global` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// How often to scrape targets by default.
    #[serde(with = "humantime_serde_compat")]
    pub scrape_interval: Duration,
    /// How long a scrape may take by default.
    #[serde(with = "humantime_serde_compat")]
    pub scrape_timeout: Duration,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        let d = osprey_scrape::ScrapeGlobals::default();
        GlobalConfig { scrape_interval: d.scrape_interval, scrape_timeout: d.scrape_timeout }
    }
}

impl GlobalConfig {
    pub fn scrape_globals(&self) -> osprey_scrape::ScrapeGlobals {
        osprey_scrape::ScrapeGlobals { scrape_interval: self.scrape_interval, scrape_timeout: self.scrape_timeout }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the one HTTP port serving the UI and every API.
    pub listen: SocketAddr,
    /// Log line format: `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: DEFAULT_LISTEN.parse().expect("valid default address"), log_format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding every signal's data.
    pub data_dir: PathBuf,
    /// How long samples are kept.
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    /// Largest size of the blocks on disk in bytes before the oldest are deleted; 0 = no limit.
    pub retention_size_bytes: u64,
    /// How far behind a series' newest sample an older one is still accepted; 0 rejects
    /// out-of-order samples as Prometheus does by default.
    #[serde(with = "humantime_serde_compat")]
    pub out_of_order_window: Duration,
    /// When the write-ahead log is fsynced. `always`: before a write is acknowledged (survives
    /// power loss). A duration such as `1s`: in the background at that interval; an
    /// acknowledged write is already in the OS page cache and survives a crash or `kill -9` of
    /// Osprey, but up to that interval can be lost if the machine itself loses power.
    pub wal_fsync: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            retention: Duration::from_secs(15 * 86_400),
            retention_size_bytes: 0,
            out_of_order_window: Duration::ZERO,
            wal_fsync: "1s".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Active series one tenant may hold in the head.
    pub max_series_per_tenant: usize,
    #[serde(flatten)]
    pub ingest: osprey_ingest::Limits,
    /// OTLP delta temporality streams tracked per tenant, and how long an idle one is kept.
    pub otlp_delta: osprey_ingest::DeltaLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_series_per_tenant: 5_000_000,
            ingest: osprey_ingest::Limits::default(),
            otlp_delta: osprey_ingest::DeltaLimits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Longest a query may run.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Most samples one query may hold in memory at once.
    pub max_samples: usize,
    /// How far back an instant vector selector looks for a sample.
    #[serde(with = "humantime_serde_compat")]
    pub lookback_delta: Duration,
    /// Queries evaluated at once; more wait for a slot.
    pub max_concurrency: usize,
    /// Queries slower than this are logged (with text, tenant and duration).
    #[serde(with = "humantime_serde_compat")]
    pub slow_query_log_threshold: Duration,
    /// Keep `__name__` until the end of evaluation, as Prometheus's
    /// `--enable-feature=promql-delayed-name-removal` does; off by default, as in Prometheus.
    pub delayed_name_removal: bool,
    /// Use the samples' start timestamps (from remote-write 2.0 and OTLP) in `rate`,
    /// `increase`, `irate`, `resets` and `start_timestamp()`, as Prometheus's
    /// `--enable-feature=use-start-timestamps` does; off by default, as in Prometheus.
    pub use_start_timestamps: bool,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            lookback_delta: Duration::from_secs(300),
            max_concurrency: 20,
            slow_query_log_threshold: Duration::from_secs(5),
            delayed_name_removal: false,
            use_start_timestamps: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn from_yaml(path: &std::path::Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_norway::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_yaml(path, &text)
    }

    /// Checks what serde cannot, without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        parse_wal_fsync(&self.storage.wal_fsync)?;
        if self.storage.retention.is_zero() {
            return Err(ConfigError::Invalid("storage.retention must be positive, e.g. 15d".into()));
        }
        if self.query.max_concurrency == 0 {
            return Err(ConfigError::Invalid("query.max_concurrency must be positive".into()));
        }
        if self.query.max_samples == 0 {
            return Err(ConfigError::Invalid("query.max_samples must be positive".into()));
        }
        Ok(())
    }
}

/// `always` or a duration.
pub fn parse_wal_fsync(text: &str) -> Result<osprey_tsdb::WalSync, ConfigError> {
    if text == "always" {
        return Ok(osprey_tsdb::WalSync::Always);
    }
    humantime::parse_duration(text).ok().filter(|d| !d.is_zero()).map(osprey_tsdb::WalSync::Interval).ok_or_else(|| {
        ConfigError::Invalid(format!("storage.wal_fsync {text:?}: use `always` or a duration such as `1s`"))
    })
}

/// Durations as Prometheus writes them (`15d`, `1h30m`, `500ms`) in YAML.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Prometheus-style durations (`15d`, `2h`, `1m30s`, `0`), also accepting humantime's forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    osprey_api::parse_duration(text)
        .filter(|ms| *ms >= 0)
        .map(|ms| Duration::from_millis(ms as u64))
        .or_else(|| humantime::parse_duration(text).ok())
        .ok_or_else(|| format!("invalid duration {text:?}: use e.g. 15d, 2h, 1m30s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config_and_rejects_unknown_fields() {
        let yaml = r#"
server: {listen: "127.0.0.1:9999", log_format: json}
storage: {data_dir: /tmp/x, retention: 30d, out_of_order_window: 10m, wal_fsync: always}
limits: {max_series_per_tenant: 10, ingestion_rate: 5}
query: {timeout: 30s}
"#;
        let c = Config::from_yaml(std::path::Path::new("osprey.yml"), yaml).unwrap();
        assert_eq!(c.storage.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.storage.out_of_order_window, Duration::from_secs(600));
        assert_eq!(c.limits.ingest.ingestion_rate, 5.0);
        assert_eq!(c.server.log_format, LogFormat::Json);
        let err = Config::from_yaml(std::path::Path::new("osprey.yml"), "storage: {retension: 1d}").unwrap_err();
        assert!(err.to_string().contains("retension"), "{err}");
        let err = Config::from_yaml(std::path::Path::new("osprey.yml"), "limits: {ingestion_rat: 5}").unwrap_err();
        assert!(err.to_string().contains("ingestion_rat"), "{err}");
        let c =
            Config::from_yaml(std::path::Path::new("osprey.yml"), "limits: {otlp_delta: {max_streams_per_tenant: 7}}")
                .unwrap();
        assert_eq!(c.limits.otlp_delta.max_streams_per_tenant, 7);
        let err = Config::from_yaml(std::path::Path::new("osprey.yml"), "storage: {wal_fsync: sometimes}").unwrap_err();
        assert!(err.to_string().contains("wal_fsync"), "{err}");
    }
}
