//! `scrape_configs`, mirroring Prometheus's YAML field for field. Unknown fields are rejected
//! so that an unsupported Prometheus option (say `tls_config`) fails loudly instead of being
//! silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use osprey_model::TenantId;
use osprey_relabel::RelabelConfig;
use osprey_wire::exposition::ExpositionFormat;
use serde::Deserialize;

use crate::{duration, ConfigError};

/// Defaults from the `global:` section that scrape configs inherit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeGlobals {
    /// Default 1m, as in Prometheus.
    pub scrape_interval: Duration,
    /// Default 10s, as in Prometheus.
    pub scrape_timeout: Duration,
}

impl Default for ScrapeGlobals {
    fn default() -> Self {
        ScrapeGlobals { scrape_interval: Duration::from_secs(60), scrape_timeout: Duration::from_secs(10) }
    }
}

/// One entry of `scrape_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every target; unique across scrape configs.
    pub job_name: String,
    /// How often to scrape; defaults to the global `scrape_interval`.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub scrape_interval: Option<Duration>,
    /// Per-scrape timeout; defaults to the global `scrape_timeout`, capped at the interval.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub scrape_timeout: Option<Duration>,
    /// HTTP path of the metrics page. Default `/metrics`.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// URL query parameters added to every scrape.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// `http` (default) or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Keep the scraped page's labels when they clash with target labels (instead of renaming
    /// them to `exported_<name>`).
    #[serde(default)]
    pub honor_labels: bool,
    /// Use the timestamps the page gives (default true).
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// Fail the scrape when more samples than this remain after metric relabelling; 0 means
    /// no limit.
    #[serde(default)]
    pub sample_limit: u64,
    /// Fail the scrape when a series has more labels than this (0: no limit).
    #[serde(default)]
    pub label_limit: u64,
    /// Fail the scrape when a label name is longer than this many bytes (0: no limit).
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// Fail the scrape when a label value is longer than this many bytes (0: no limit).
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Fail the scrape when the uncompressed page is larger, e.g. `10MB` (base 2; 0 or
    /// unset: no limit).
    #[serde(default, deserialize_with = "deserialize_size")]
    pub body_size_limit: u64,
    /// Also write staleness markers for series that carried their own timestamps.
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    /// Ask for gzip-compressed pages (default true).
    #[serde(default = "default_true")]
    pub enable_compression: bool,
    /// How to read a page whose `Content-Type` is missing or not a text format:
    /// `PrometheusText0.0.4` (the default here), `PrometheusText1.0.0`, `OpenMetricsText0.0.1`
    /// or `OpenMetricsText1.0.0`.
    #[serde(default)]
    pub fallback_scrape_protocol: Option<String>,
    /// Follow HTTP redirects (default true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Deprecated Prometheus spelling of `authorization: {credentials: ...}`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Deprecated Prometheus spelling of `authorization: {credentials_file: ...}`.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Applied to each discovered target's labels.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to each scraped series before it is stored.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Osprey extension: the tenant this job's samples are written to. Default: the tenant
    /// the scrape manager was created with.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `static_configs` entry: fixed targets with shared labels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs` entry: targets read from JSON or YAML files, re-read when they change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths; the last path element may contain `*` globs (`targets/*.json`).
    pub files: Vec<String>,
    /// How often the files' modification times are checked. Default 5m.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub refresh_interval: Option<Duration>,
}

impl FileSdConfig {
    pub(crate) fn refresh(&self) -> Duration {
        self.refresh_interval.unwrap_or(Duration::from_secs(300))
    }
}

/// Client TLS settings. Files are read when the configuration is applied.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM bundle of CAs to trust in addition to the built-in roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate, for targets that require one; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    /// Accept any server certificate. For tests and trusted networks only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    /// Read at every scrape, so rotated passwords take effect without a reload.
    #[serde(default)]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme in the `Authorization` header. Default `Bearer`.
    #[serde(default = "default_auth_type", rename = "type")]
    pub auth_type: String,
    #[serde(default)]
    pub credentials: Option<String>,
    /// Read at every scrape.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

fn default_scheme() -> String {
    "http".to_string()
}

fn default_true() -> bool {
    true
}

/// Byte sizes as Prometheus writes them (`512KB`, `10MiB`, `1GB`), all base 2.
fn deserialize_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    parse_size(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("not a valid size: {text:?}; write a number and unit, e.g. 512KB or 10MB"))
    })
}

fn parse_size(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().ok()?;
    let shift = match &text[digits..] {
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        "PB" | "PiB" => 50,
        "EB" | "EiB" => 60,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

fn default_auth_type() -> String {
    "Bearer".to_string()
}

/// A scrape config with defaults resolved and validated: what the scrape loops run with.
#[derive(Debug, Clone)]
pub(crate) struct JobConfig {
    pub(crate) config: ScrapeConfig,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) tenant: TenantId,
    /// For pages without a recognised `Content-Type`.
    pub(crate) fallback_format: ExpositionFormat,
    /// A client of the job's own when its TLS or redirect settings differ from the
    /// defaults; set when the configuration is applied (building one reads files).
    pub(crate) client: Option<reqwest::Client>,
}

impl JobConfig {
    pub(crate) fn name(&self) -> &str {
        &self.config.job_name
    }
}

/// Validates every config (as Prometheus does on load) and fills in the defaults.
pub(crate) fn resolve(
    globals: &ScrapeGlobals,
    configs: Vec<ScrapeConfig>,
    default_tenant: &TenantId,
) -> Result<Vec<JobConfig>, ConfigError> {
    let mut jobs: Vec<JobConfig> = Vec::with_capacity(configs.len());
    for config in configs {
        if jobs.iter().any(|j| j.name() == config.job_name) {
            return Err(ConfigError::DuplicateJob(config.job_name));
        }
        jobs.push(resolve_one(globals, config, default_tenant)?);
    }
    Ok(jobs)
}

fn resolve_one(
    globals: &ScrapeGlobals,
    config: ScrapeConfig,
    default_tenant: &TenantId,
) -> Result<JobConfig, ConfigError> {
    let job = config.job_name.clone();
    if job.is_empty() {
        return Err(ConfigError::EmptyJobName);
    }
    // As in Prometheus, a zero duration is the same as leaving the field out.
    let set = |d: Option<Duration>| d.filter(|d| !d.is_zero());
    let interval = set(config.scrape_interval).unwrap_or(globals.scrape_interval);
    if interval.is_zero() {
        return Err(ConfigError::ZeroInterval(job));
    }
    // An unset timeout is the global one, but never longer than the interval.
    let timeout = set(config.scrape_timeout).unwrap_or(globals.scrape_timeout.min(interval));
    if timeout > interval {
        return Err(ConfigError::TimeoutOverInterval(job));
    }
    if timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout(job));
    }
    if config.scheme != "http" && config.scheme != "https" {
        return Err(ConfigError::BadScheme { job, scheme: config.scheme });
    }
    let bearer = config.bearer_token.is_some() || config.bearer_token_file.is_some();
    let auth_count =
        [config.basic_auth.is_some(), config.authorization.is_some(), bearer].into_iter().filter(|&b| b).count();
    if auth_count > 1 || (config.bearer_token.is_some() && config.bearer_token_file.is_some()) {
        return Err(ConfigError::ConflictingAuth(job));
    }
    if let Some(basic) = &config.basic_auth {
        if basic.password.is_some() && basic.password_file.is_some() {
            return Err(ConfigError::ConflictingPassword(job));
        }
    }
    if let Some(auth) = &config.authorization {
        if auth.auth_type.eq_ignore_ascii_case("basic") {
            return Err(ConfigError::BasicAuthorizationType(job));
        }
        if auth.credentials.is_some() && auth.credentials_file.is_some() {
            return Err(ConfigError::ConflictingCredentials(job));
        }
    }
    for pattern in config.file_sd_configs.iter().flat_map(|f| &f.files) {
        if !is_valid_file_sd_pattern(pattern) {
            return Err(ConfigError::BadFileSdPattern { job, pattern: pattern.clone() });
        }
    }
    let fallback_format = match config.fallback_scrape_protocol.as_deref() {
        None | Some("PrometheusText0.0.4") | Some("PrometheusText1.0.0") => ExpositionFormat::PrometheusText,
        Some("OpenMetricsText0.0.1") | Some("OpenMetricsText1.0.0") => ExpositionFormat::OpenMetrics,
        Some(other) => return Err(ConfigError::BadFallbackProtocol { job, protocol: other.to_string() }),
    };
    if let Some(tls) = &config.tls_config {
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(ConfigError::CertWithoutKey(job));
        }
    }
    let tenant = match &config.tenant {
        Some(id) => TenantId::new(id).map_err(|source| ConfigError::BadTenant { job: job.clone(), source })?,
        None => default_tenant.clone(),
    };
    Ok(JobConfig { config, interval, timeout, tenant, fallback_format, client: None })
}

/// Prometheus's `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
fn is_valid_file_sd_pattern(pattern: &str) -> bool {
    let extension_ok = ["json", "yml", "yaml", "JSON", "YML", "YAML"]
        .iter()
        .any(|ext| pattern.strip_suffix(ext).is_some_and(|p| p.ends_with('.')));
    let glob_ok = match pattern.find('*') {
        Some(star) => !pattern[star + 1..].contains(['*', '/']),
        None => true,
    };
    extension_ok && glob_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Vec<JobConfig>, String> {
        let configs: Vec<ScrapeConfig> = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        resolve(&ScrapeGlobals::default(), configs, &TenantId::default_tenant()).map_err(|e| e.to_string())
    }

    #[test]
    fn applies_prometheus_defaults() {
        let jobs = load("- job_name: node\n  static_configs: [{targets: ['a:9100']}]").unwrap();
        let job = &jobs[0];
        assert_eq!(job.interval, Duration::from_secs(60));
        assert_eq!(job.timeout, Duration::from_secs(10));
        assert_eq!(job.config.metrics_path, "/metrics");
        assert_eq!(job.config.scheme, "http");
        assert!(job.config.honor_timestamps);
        assert!(!job.config.honor_labels);
        assert_eq!(job.tenant, TenantId::default_tenant());
        // A short interval caps the inherited timeout.
        let jobs = load("- job_name: fast\n  scrape_interval: 5s").unwrap();
        assert_eq!(jobs[0].timeout, Duration::from_secs(5));
        // Zero means unset.
        let jobs = load("- job_name: z\n  scrape_interval: 0\n  scrape_timeout: 0s").unwrap();
        assert_eq!((jobs[0].interval, jobs[0].timeout), (Duration::from_secs(60), Duration::from_secs(10)));
    }

    #[test]
    fn reads_a_full_prometheus_job() {
        let yaml = r#"
- job_name: full
  scrape_interval: 15s
  scrape_timeout: 5s
  metrics_path: /probe
  params: {module: [http_2xx]}
  scheme: https
  honor_labels: true
  honor_timestamps: false
  sample_limit: 1000
  body_size_limit: 10MB
  fallback_scrape_protocol: OpenMetricsText1.0.0
  enable_compression: false
  basic_auth: {username: u, password_file: /etc/pw}
  static_configs:
    - targets: ['a:1', 'b:2']
      labels: {env: prod}
  file_sd_configs:
    - files: ['/etc/targets/*.json', 'extra.yml']
      refresh_interval: 30s
  relabel_configs:
    - source_labels: [__address__]
      target_label: __param_target
  metric_relabel_configs:
    - source_labels: [__name__]
      regex: expensive_.*
      action: drop
  tenant: team-a
"#;
        let job = &load(yaml).unwrap()[0];
        assert_eq!(job.interval, Duration::from_secs(15));
        assert_eq!(job.timeout, Duration::from_secs(5));
        assert_eq!(job.config.params["module"], ["http_2xx"]);
        assert_eq!(job.config.file_sd_configs[0].refresh(), Duration::from_secs(30));
        assert_eq!(job.tenant.as_str(), "team-a");
        assert_eq!(job.config.metric_relabel_configs.len(), 1);
        assert_eq!(job.config.body_size_limit, 10 << 20);
        assert_eq!(job.fallback_format, ExpositionFormat::OpenMetrics);
        assert!(!job.config.enable_compression);
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for (yaml, want) in [
            ("- job_name: a\n- job_name: a", "found multiple scrape configs with job name \"a\""),
            ("- job_name: ''", "empty job_name"),
            (
                "- job_name: a\n  scrape_interval: 5s\n  scrape_timeout: 6s",
                "scrape timeout greater than scrape interval",
            ),
            ("- job_name: a\n  scheme: ftp", "scheme must be \"http\" or \"https\""),
            ("- job_name: a\n  bearer_token: x\n  basic_auth: {username: u}", "at most one of basic_auth"),
            ("- job_name: a\n  basic_auth: {username: u, password: p, password_file: f}", "password & password_file"),
            ("- job_name: a\n  authorization: {type: Basic, credentials: x}", "use \"basic_auth\" instead"),
            ("- job_name: a\n  file_sd_configs: [{files: [targets.txt]}]", "not valid for file discovery"),
            ("- job_name: a\n  file_sd_configs: [{files: ['*/x.json']}]", "not valid for file discovery"),
            ("- job_name: a\n  tenant: 'a/b'", "contains the character '/'"),
            ("- job_name: a\n  tls_config: {server_name: x}", "unknown field `server_name`"),
            ("- job_name: a\n  body_size_limit: 10XB", "not a valid size"),
            (
                "- job_name: a\n  fallback_scrape_protocol: PrometheusProto",
                "fallback_scrape_protocol \"PrometheusProto\" is not supported",
            ),
            ("- job_name: a\n  tls_config: {cert_file: c.pem}", "cert_file and key_file must be given together"),
            ("- job_name: a\n  scrape_interval: 1x", "not a valid duration string"),
            ("- job_name: a\n  relabel_configs: [{action: replace}]", "requires 'target_label' value"),
        ] {
            let err = load(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml:?}: got {err:?}");
        }
    }
}
