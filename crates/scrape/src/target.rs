//! Turning discovered target groups into scrape targets, as Prometheus's
//! `scrape.PopulateLabels` does, and what the targets API reports about them.

use std::collections::BTreeMap;
use std::time::Duration;

use osprey_model::{Labels, LabelsBuilder, Timestamp};

use crate::config::JobConfig;
use crate::duration;

pub(crate) const ADDRESS: &str = "__address__";
const SCHEME: &str = "__scheme__";
const METRICS_PATH: &str = "__metrics_path__";
const SCRAPE_INTERVAL: &str = "__scrape_interval__";
const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
const PARAM_PREFIX: &str = "__param_";
const META_PREFIX: &str = "__meta_";

/// Targets that share labels, as a static config or one entry of a file_sd file gives them.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetGroup {
    #[serde(default)]
    pub(crate) targets: Vec<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
}

/// A target to scrape: its final labels (including the `__` ones that say how to scrape it)
/// and the labels it was discovered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) labels: Labels,
    pub(crate) discovered: Labels,
    pub(crate) url: String,
    /// From `__scrape_interval__` and `__scrape_timeout__`, which relabelling may change.
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    /// The labels every scraped series gets: `labels` without the `__`-prefixed ones.
    pub(crate) public: Labels,
}

/// A target the relabelling dropped (or that could not be built); `/api/v1/targets` lists
/// them as `droppedTargets`.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
    pub scrape_pool: String,
}

/// The outcome of the latest scrape of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetHealth {
    Up,
    Down,
    /// Not scraped yet.
    #[default]
    Unknown,
}

impl TargetHealth {
    /// The word `/api/v1/targets` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Up => "up",
            TargetHealth::Down => "down",
            TargetHealth::Unknown => "unknown",
        }
    }
}

/// What `/api/v1/targets` shows for an active target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    /// Labels before relabelling, `__meta_*` included.
    pub discovered_labels: Labels,
    /// Labels after relabelling, without the `__`-prefixed ones.
    pub labels: Labels,
    /// The job name.
    pub scrape_pool: String,
    pub scrape_url: String,
    /// The URL as seen from elsewhere; Osprey does not rewrite host names, so the same as
    /// `scrape_url`.
    pub global_url: String,
    /// Empty when the latest scrape succeeded.
    pub last_error: String,
    /// Start of the latest scrape, milliseconds since the epoch.
    pub last_scrape: Option<Timestamp>,
    pub last_scrape_duration: Duration,
    pub health: TargetHealth,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

/// Why a discovered target could not become a scrape target.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("no address")]
    NoAddress,
    #[error("{0:?} is not a valid hostname")]
    BadAddress(String),
    #[error("error parsing scrape {what}: {value:?}")]
    BadDuration { what: &'static str, value: String },
    #[error("scrape {0} cannot be 0")]
    ZeroDuration(&'static str),
    #[error("scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})")]
    TimeoutOverInterval { timeout: String, interval: String },
}

/// The targets of one group: `Ok(Some)` to scrape, `Ok(None)` dropped by relabelling, `Err`
/// unusable; the discovered labels come with each.
pub(crate) fn targets_from_group(
    group: &TargetGroup,
    job: &JobConfig,
) -> Vec<(Labels, Result<Option<Target>, TargetError>)> {
    group
        .targets
        .iter()
        .map(|address| {
            let mut b = LabelsBuilder::new();
            for (name, value) in &group.labels {
                b.set(name.as_str(), value.as_str());
            }
            b.set(ADDRESS, address.as_str());
            populate(b, job)
        })
        .collect()
}

fn populate(mut b: LabelsBuilder, job: &JobConfig) -> (Labels, Result<Option<Target>, TargetError>) {
    let config = &job.config;
    let defaults = [
        ("job", config.job_name.clone()),
        (SCRAPE_INTERVAL, duration::format(job.interval)),
        (SCRAPE_TIMEOUT, duration::format(job.timeout)),
        (METRICS_PATH, config.metrics_path.clone()),
        (SCHEME, config.scheme.clone()),
    ];
    for (name, value) in defaults {
        if b.get(name).unwrap_or("").is_empty() {
            b.set(name, value);
        }
    }
    for (name, values) in &config.params {
        let label = format!("{PARAM_PREFIX}{name}");
        if let Some(first) = values.first() {
            if b.get(&label).unwrap_or("").is_empty() {
                b.set(label, first.as_str());
            }
        }
    }
    let discovered = b.build();
    let result = osprey_relabel::process(discovered.clone(), &config.relabel_configs)
        .map(|labels| finish(labels, job))
        .transpose();
    (discovered, result)
}

/// Checks the relabelled labels, drops `__meta_*`, defaults `instance`, builds the URL.
fn finish(labels: Labels, job: &JobConfig) -> Result<Target, TargetError> {
    let address = labels.get(ADDRESS).unwrap_or("").to_string();
    if address.is_empty() {
        return Err(TargetError::NoAddress);
    }
    if address.contains(['/', '?', '#', ' ']) {
        return Err(TargetError::BadAddress(address));
    }
    let interval = checked_duration(&labels, SCRAPE_INTERVAL, "interval")?;
    let timeout = checked_duration(&labels, SCRAPE_TIMEOUT, "timeout")?;
    if timeout > interval {
        return Err(TargetError::TimeoutOverInterval {
            timeout: labels.get(SCRAPE_TIMEOUT).unwrap_or("").to_string(),
            interval: labels.get(SCRAPE_INTERVAL).unwrap_or("").to_string(),
        });
    }
    let mut b = labels.to_builder();
    for l in labels.iter().filter(|l| l.name.starts_with(META_PREFIX)) {
        b.del(&l.name);
    }
    if labels.get("instance").unwrap_or("").is_empty() {
        b.set("instance", address.as_str());
    }
    let labels = b.build();
    let url = scrape_url(&labels, &job.config.params);
    let public = Labels::from_sorted(labels.iter().filter(|l| !l.name.starts_with("__")).cloned().collect());
    Ok(Target { labels, discovered: Labels::empty(), url, interval, timeout, public })
}

fn checked_duration(labels: &Labels, name: &str, what: &'static str) -> Result<Duration, TargetError> {
    let value = labels.get(name).unwrap_or("");
    let d = duration::parse(value).ok_or_else(|| TargetError::BadDuration { what, value: value.to_string() })?;
    if d.is_zero() {
        return Err(TargetError::ZeroDuration(what));
    }
    Ok(d)
}

/// `scheme://address/path?params`, where `__param_<name>` labels replace the first value of
/// the configured parameter, and parameters are sorted and encoded as Go's `url.Values` does.
fn scrape_url(labels: &Labels, params: &BTreeMap<String, Vec<String>>) -> String {
    let mut params = params.clone();
    for l in labels.iter() {
        if let Some(name) = l.name.strip_prefix(PARAM_PREFIX) {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => first.clone_from(&l.value),
                None => values.push(l.value.clone()),
            }
        }
    }
    let mut url = format!(
        "{}://{}{}",
        labels.get(SCHEME).unwrap_or("http"),
        labels.get(ADDRESS).unwrap_or(""),
        labels.get(METRICS_PATH).unwrap_or("")
    );
    let mut separator = '?';
    for (name, values) in &params {
        for value in values {
            url.push(separator);
            separator = '&';
            url.push_str(&query_escape(name));
            url.push('=');
            url.push_str(&query_escape(value));
        }
    }
    url
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// All targets of a job's groups: the ones to scrape (unique by labels) and the dropped ones.
pub(crate) fn build_targets(groups: &[TargetGroup], job: &JobConfig) -> (Vec<Target>, Vec<DroppedTarget>) {
    let (mut active, mut dropped): (Vec<Target>, Vec<DroppedTarget>) = (Vec::new(), Vec::new());
    for group in groups {
        for (discovered, result) in targets_from_group(group, job) {
            match result {
                Ok(Some(mut target)) => {
                    if !active.iter().any(|t| t.labels == target.labels) {
                        target.discovered = discovered;
                        active.push(target);
                    }
                }
                Ok(None) => {
                    dropped.push(DroppedTarget { discovered_labels: discovered, scrape_pool: job.name().to_string() })
                }
                Err(e) => {
                    tracing::warn!(job = job.name(), labels = %discovered, error = %e, "skipping target");
                    dropped.push(DroppedTarget { discovered_labels: discovered, scrape_pool: job.name().to_string() });
                }
            }
        }
    }
    (active, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, ScrapeConfig, ScrapeGlobals};
    use osprey_model::TenantId;

    fn job(yaml: &str) -> JobConfig {
        let configs: Vec<ScrapeConfig> = serde_norway::from_str(yaml).unwrap();
        resolve(&ScrapeGlobals::default(), configs, &TenantId::default_tenant()).unwrap().remove(0)
    }

    fn group(targets: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn builds_prometheus_target_labels() {
        let job = job("- job_name: node\n  scrape_interval: 15s\n  params: {module: [a, b]}");
        let (active, dropped) = build_targets(&[group(&["host:9100"], &[("env", "prod"), ("__meta_x", "y")])], &job);
        assert!(dropped.is_empty());
        let t = &active[0];
        assert_eq!(
            t.discovered.to_string(),
            r#"{__address__="host:9100", __meta_x="y", __metrics_path__="/metrics", __param_module="a", __scheme__="http", __scrape_interval__="15s", __scrape_timeout__="10s", env="prod", job="node"}"#
        );
        assert_eq!(
            t.labels.to_string(),
            r#"{__address__="host:9100", __metrics_path__="/metrics", __param_module="a", __scheme__="http", __scrape_interval__="15s", __scrape_timeout__="10s", env="prod", instance="host:9100", job="node"}"#
        );
        assert_eq!(t.public.to_string(), r#"{env="prod", instance="host:9100", job="node"}"#);
        assert_eq!(t.url, "http://host:9100/metrics?module=a&module=b");
    }

    #[test]
    fn relabelling_shapes_the_target() {
        let job = job(r#"
- job_name: blackbox
  metrics_path: /probe
  relabel_configs:
    - {source_labels: [__address__], target_label: __param_target}
    - {source_labels: [__param_target], target_label: instance}
    - {target_label: __address__, replacement: 'exporter:9115'}
    - {source_labels: [env], regex: dev, action: drop}
"#);
        let groups = [group(&["https://example.com/a b"], &[]), group(&["x:1"], &[("env", "dev")])];
        let (active, dropped) = build_targets(&groups, &job);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].url, "http://exporter:9115/probe?target=https%3A%2F%2Fexample.com%2Fa+b");
        assert_eq!(active[0].public.get("instance"), Some("https://example.com/a b"));
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].discovered_labels.get("env"), Some("dev"));
    }

    #[test]
    fn rejects_unusable_targets() {
        let job1 = job("- job_name: j\n  relabel_configs: [{target_label: __address__, replacement: ''}]");
        let (_, result) = targets_from_group(&group(&["a:1"], &[]), &job1).remove(0);
        assert_eq!(result.unwrap_err(), TargetError::NoAddress);
        let job2 = job("- job_name: j\n  relabel_configs: [{target_label: __scrape_timeout__, replacement: 2m}]");
        let (_, result) = targets_from_group(&group(&["a:1"], &[]), &job2).remove(0);
        assert_eq!(
            result.unwrap_err().to_string(),
            r#"scrape timeout cannot be greater than scrape interval ("2m" > "1m")"#
        );
        let (_, result) = targets_from_group(&group(&["a/b:1"], &[]), &job2).remove(0);
        assert!(matches!(result, Err(TargetError::BadAddress(_))));
    }
}
