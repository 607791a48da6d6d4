//! The loop that scrapes one target every interval: fetch over HTTP, then parse, build and
//! append the batch on a blocking thread (storage appends are synchronous).

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use osprey_model::{MetricsAppender, Timestamp};
use osprey_wire::exposition::{ExpositionFormat, SCRAPE_ACCEPT_HEADER};
use parking_lot::Mutex;
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{JobConfig, ScrapeConfig, TlsConfig};
use crate::series::{build_write, end_of_run, Fetched, SeriesCache};
use crate::target::{Target, TargetHealth};

/// What every scrape loop shares.
pub(crate) struct ScrapeDeps {
    pub(crate) appender: Arc<dyn MetricsAppender>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) client: reqwest::Client,
}

/// Instructions from the manager to a running loop.
#[derive(Clone)]
pub(crate) enum Control {
    /// Keep scraping, with this (possibly changed) job configuration.
    Run(Arc<JobConfig>),
    /// Stop; with `mark_stale`, first write staleness markers for everything the target wrote
    /// (the target went away). Shutdown stops without markers, as Prometheus does.
    Stop { mark_stale: bool },
}

/// The latest scrape's outcome, read by the targets API.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoopStatus {
    pub(crate) health: TargetHealth,
    pub(crate) last_error: String,
    pub(crate) last_scrape: Option<Timestamp>,
    pub(crate) last_duration: Duration,
}

pub(crate) async fn run(
    deps: Arc<ScrapeDeps>,
    target: Arc<Target>,
    status: Arc<Mutex<LoopStatus>>,
    mut control: watch::Receiver<Control>,
) {
    let mut job = match &*control.borrow_and_update() {
        Control::Run(job) => Arc::clone(job),
        Control::Stop { .. } => return,
    };
    let mut cache = SeriesCache::default();
    let interval = target.interval;
    let delay = first_delay(target.labels.stable_hash(), interval, deps.clock.now());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + delay, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => scrape_once(&deps, &target, &job, &status, &mut cache).await,
            changed = control.changed() => {
                // A dropped sender means the manager is gone: stop quietly.
                let next = match changed {
                    Ok(()) => control.borrow_and_update().clone(),
                    Err(_) => Control::Stop { mark_stale: false },
                };
                match next {
                    Control::Run(new_job) => job = new_job,
                    Control::Stop { mark_stale } => {
                        if mark_stale {
                            write_end_of_run(&deps, &target, &job, &mut cache).await;
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// Spreads targets over the interval by their label hash, as Prometheus does, so that a
/// restart scrapes each target at the same phase and load is even.
fn first_delay(hash: u64, interval: Duration, now: Timestamp) -> Duration {
    let interval_ms = (interval.as_millis() as u64).max(1);
    let offset = hash % interval_ms;
    let phase = now.rem_euclid(interval_ms as i64) as u64;
    Duration::from_millis((offset + interval_ms - phase) % interval_ms)
}

async fn scrape_once(
    deps: &Arc<ScrapeDeps>,
    target: &Arc<Target>,
    job: &Arc<JobConfig>,
    status: &Mutex<LoopStatus>,
    cache: &mut SeriesCache,
) {
    let ts = deps.clock.now();
    let started = Instant::now();
    let fetched = fetch(job.client.as_ref().unwrap_or(&deps.client), target, job).await;
    let duration = started.elapsed();
    let mut taken = std::mem::take(cache);
    let (deps2, target2, job2) = (Arc::clone(deps), Arc::clone(target), Arc::clone(job));
    let joined = tokio::task::spawn_blocking(move || {
        let (request, report) = build_write(fetched, &job2, &target2, &mut taken, ts, duration);
        let appended = deps2.appender.append(&job2.tenant, request);
        (taken, report, appended)
    })
    .await;
    let error = match joined {
        Ok((returned, report, appended)) => {
            *cache = returned;
            match appended {
                Ok(_) => report.error,
                Err(e) => Some(format!("storing the scraped samples failed: {e}")),
            }
        }
        Err(e) => Some(format!("processing the scrape failed: {e}")),
    };
    let mut s = status.lock();
    s.health = if error.is_none() { TargetHealth::Up } else { TargetHealth::Down };
    s.last_error = error.unwrap_or_default();
    s.last_scrape = Some(ts);
    s.last_duration = duration;
}

async fn write_end_of_run(deps: &Arc<ScrapeDeps>, target: &Target, job: &JobConfig, cache: &mut SeriesCache) {
    let request = end_of_run(target, cache, deps.clock.now());
    if request.series.is_empty() {
        return;
    }
    let (appender, tenant) = (Arc::clone(&deps.appender), job.tenant.clone());
    match tokio::task::spawn_blocking(move || appender.append(&tenant, request)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(job = job.name(), url = %target.url, error = %e, "cannot store staleness markers")
        }
        Err(e) => {
            tracing::warn!(job = job.name(), url = %target.url, error = %e, "cannot store staleness markers")
        }
    }
}

async fn fetch(client: &reqwest::Client, target: &Target, job: &JobConfig) -> Fetched {
    let config = &job.config;
    let mut request = client
        .get(&target.url)
        .header(ACCEPT, SCRAPE_ACCEPT_HEADER)
        .header(USER_AGENT, concat!("Osprey/", env!("CARGO_PKG_VERSION")))
        .header("X-Prometheus-Scrape-Timeout-Seconds", target.timeout.as_secs_f64().to_string())
        .timeout(target.timeout);
    if !config.enable_compression {
        request = request.header(ACCEPT_ENCODING, "identity");
    }
    let request = authorize(request, config).await?;
    let mut response = request.send().await.map_err(|e| describe(target, &e))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", response.status()));
    }
    let format = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ExpositionFormat::from_content_type)
        .unwrap_or(job.fallback_format);
    // Read in chunks so an oversized page is refused without being held in full.
    let limit = config.body_size_limit;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(target, &e))? {
        body.extend_from_slice(&chunk);
        if limit > 0 && body.len() as u64 > limit {
            return Err(format!("body size limit exceeded: the page is larger than body_size_limit ({limit} bytes)"));
        }
    }
    Ok((body, format))
}

/// The job's own HTTP client, when its settings differ from the shared client's. Reads the
/// TLS files: run it off the async runtime.
pub(crate) fn job_client(config: &ScrapeConfig) -> Result<Option<reqwest::Client>, String> {
    if config.follow_redirects && config.tls_config.is_none() {
        return Ok(None);
    }
    let mut builder = reqwest::Client::builder().no_proxy();
    if !config.follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(tls) = &config.tls_config {
        builder = with_tls(builder, tls)?;
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

fn with_tls(mut builder: reqwest::ClientBuilder, tls: &TlsConfig) -> Result<reqwest::ClientBuilder, String> {
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"));
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    if let Some(ca_file) = &tls.ca_file {
        let certificates = reqwest::Certificate::from_pem_bundle(&read(ca_file)?)
            .map_err(|e| format!("ca_file {ca_file:?} is not a PEM bundle: {e}"))?;
        if certificates.is_empty() {
            return Err(format!("ca_file {ca_file:?} holds no PEM certificate"));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = read(cert_file)?;
        pem.push(b'\n');
        pem.extend(read(key_file)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            format!("cert_file {cert_file:?} and key_file {key_file:?} are not a PEM certificate and key: {e}")
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// Adds the configured credentials; secrets in files are read at every scrape so that
/// rotation needs no reload.
async fn authorize(request: reqwest::RequestBuilder, config: &ScrapeConfig) -> Result<reqwest::RequestBuilder, String> {
    if let Some(basic) = &config.basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(file)) => read_secret(file).await?,
            (None, None) => String::new(),
        };
        return Ok(request.basic_auth(&basic.username, Some(password)));
    }
    let (scheme, credentials, file) = match &config.authorization {
        Some(a) => (a.auth_type.as_str(), &a.credentials, &a.credentials_file),
        None => ("Bearer", &config.bearer_token, &config.bearer_token_file),
    };
    let secret = match (credentials, file) {
        (Some(c), _) => c.clone(),
        (None, Some(file)) => read_secret(file).await?,
        (None, None) => return Ok(request),
    };
    Ok(request.header(AUTHORIZATION, format!("{scheme} {secret}")))
}

async fn read_secret(path: &str) -> Result<String, String> {
    let text = tokio::fs::read_to_string(path).await.map_err(|e| format!("cannot read secret file {path:?}: {e}"))?;
    Ok(text.trim().to_string())
}

/// The error with its causes, which reqwest keeps in the source chain.
fn describe(target: &Target, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("Get {:?}: timed out after {:?} (scrape_timeout)", target.url, target.timeout);
    }
    let mut message = format!("Get {:?}: {e}", target.url);
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_scrape_lands_on_the_targets_phase() {
        let interval = Duration::from_secs(10);
        assert_eq!(first_delay(3_000, interval, 100_000), Duration::from_secs(3));
        assert_eq!(first_delay(3_000, interval, 104_000), Duration::from_secs(9));
        assert_eq!(first_delay(3_000, interval, 103_000), Duration::ZERO);
    }
}
