//! Prometheus-compatible scraping: `scrape_configs` (static and file-based discovery,
//! relabelling, authentication), one loop per target that fetches the metrics page, parses
//! it, applies `honor_labels`/`honor_timestamps`, `metric_relabel_configs` and `sample_limit`,
//! and appends the samples plus `up` and the `scrape_*` series to a
//! [`osprey_model::MetricsAppender`].
//!
//! Invariants:
//! - Semantics follow Prometheus's `scrape` package: target labels (`__address__`,
//!   `__scheme__`, `__metrics_path__`, `__param_*`, `__scrape_interval__`,
//!   `__scrape_timeout__`, `job`, default `instance`), the `exported_` renaming, and
//!   staleness markers for series that vanish from a page, for every series when a scrape
//!   fails, and for every series of a target that goes away.
//! - Storage is only reached through `MetricsAppender`, always on a blocking thread.
//! - Timestamps come from an injectable [`Clock`].
//!
//! Deliberate differences and non-goals: no service discovery besides static and file; no
//! OAuth2, proxies, HTTP/2, protobuf scraping, `scrape_protocols` or `target_limit`;
//! `tls_config` knows only `ca_file`, `cert_file`, `key_file` and `insecure_skip_verify`
//! (other options are rejected as unknown fields); a page without a recognised
//! `Content-Type` is read as `fallback_scrape_protocol` (default: the classic text format)
//! where Prometheus 3 fails it; when a target goes away its markers are written at once
//! rather than at its next scheduled scrape.

mod clock;
mod config;
mod duration;
mod error;
mod file_sd;
mod manager;
mod scrape_loop;
mod series;
mod target;

pub use clock::{Clock, SystemClock};
pub use config::{Authorization, BasicAuth, FileSdConfig, ScrapeConfig, ScrapeGlobals, StaticConfig};
pub use error::ConfigError;
pub use manager::ScrapeManager;
pub use target::{DroppedTarget, TargetHealth, TargetStatus};
