//! The scrape manager: one pool per job, one loop per target; applies configuration changes
//! by diffing targets, and answers what the targets API needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use osprey_model::{Labels, MetricsAppender, TenantId};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{resolve, JobConfig, ScrapeConfig, ScrapeGlobals};
use crate::file_sd::FileDiscovery;
use crate::scrape_loop::{self, Control, LoopStatus, ScrapeDeps};
use crate::target::{build_targets, DroppedTarget, Target, TargetGroup, TargetStatus};
use crate::ConfigError;

/// Runs the scrape loops of every configured job and writes what they scrape to an appender.
///
/// Must be used from within a Tokio runtime. Dropping it stops the loops without staleness
/// markers; [`ScrapeManager::shutdown`] does the same and waits for them.
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Arc<ScrapeDeps>,
    default_tenant: TenantId,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pools: BTreeMap<String, Pool>,
    shut_down: bool,
}

/// The targets of one job.
struct Pool {
    job: Arc<JobConfig>,
    /// Bumped by every configuration change, so a discovery task of an older configuration
    /// that races with the change cannot overwrite the new groups.
    generation: u64,
    /// Target groups per provider: 0 is `static_configs`, `i + 1` is `file_sd_configs[i]`.
    groups: BTreeMap<usize, Vec<TargetGroup>>,
    active: Vec<ActiveTarget>,
    dropped: Vec<DroppedTarget>,
    discovery: Vec<JoinHandle<()>>,
}

struct ActiveTarget {
    target: Arc<Target>,
    status: Arc<Mutex<LoopStatus>>,
    control: watch::Sender<Control>,
    task: JoinHandle<()>,
}

impl ScrapeManager {
    /// A manager writing to `tenant` (unless a job names its own) with the system clock.
    pub fn new(appender: Arc<dyn MetricsAppender>, tenant: TenantId) -> Result<ScrapeManager, ConfigError> {
        ScrapeManager::with_clock(appender, tenant, Arc::new(SystemClock))
    }

    /// As [`ScrapeManager::new`], with sample timestamps taken from `clock`.
    pub fn with_clock(
        appender: Arc<dyn MetricsAppender>,
        tenant: TenantId,
        clock: Arc<dyn Clock>,
    ) -> Result<ScrapeManager, ConfigError> {
        // Like Prometheus, ignore HTTP_PROXY and friends: scrapes go straight to targets.
        let client =
            reqwest::Client::builder().no_proxy().build().map_err(|e| ConfigError::SharedHttpClient(e.to_string()))?;
        let deps = Arc::new(ScrapeDeps { appender, clock, client });
        let inner = Arc::new(Inner { deps, default_tenant: tenant, state: Mutex::new(State::default()) });
        Ok(ScrapeManager { inner })
    }

    /// Applies `configs` with Prometheus's global defaults (interval 1m, timeout 10s).
    pub async fn apply_config(&self, configs: Vec<ScrapeConfig>) -> Result<(), ConfigError> {
        self.apply_config_with_globals(&ScrapeGlobals::default(), configs).await
    }

    /// Validates `configs` and makes them current: jobs and targets that are gone stop after
    /// writing staleness markers, new ones start, unchanged ones keep scraping (with the new
    /// settings). On error nothing changes. Files of `file_sd_configs` are read before this
    /// returns, so their targets are listed immediately.
    pub async fn apply_config_with_globals(
        &self,
        globals: &ScrapeGlobals,
        configs: Vec<ScrapeConfig>,
    ) -> Result<(), ConfigError> {
        let mut jobs = resolve(globals, configs, &self.inner.default_tenant)?;
        for job in &mut jobs {
            let config = job.config.clone();
            job.client = tokio::task::spawn_blocking(move || scrape_loop::job_client(&config))
                .await
                .map_err(|e| e.to_string())
                .and_then(|built| built)
                .map_err(|reason| ConfigError::HttpClient { job: job.name().to_string(), reason })?;
        }
        let mut discoveries = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let mut files = Vec::new();
            for (i, sd) in job.config.file_sd_configs.iter().enumerate() {
                let mut discovery = FileDiscovery::new(sd);
                discovery = tokio::task::spawn_blocking(move || {
                    discovery.refresh();
                    discovery
                })
                .await
                .unwrap_or_else(|_| FileDiscovery::new(sd));
                files.push((i + 1, sd.refresh(), discovery));
            }
            discoveries.push(files);
        }

        let mut stopping = Vec::new();
        {
            let mut state = self.inner.state.lock();
            if state.shut_down {
                return Ok(());
            }
            let removed: Vec<String> =
                state.pools.keys().filter(|name| !jobs.iter().any(|j| j.name() == name.as_str())).cloned().collect();
            for name in removed {
                if let Some(pool) = state.pools.remove(&name) {
                    stopping.extend(pool.stop(true));
                }
            }
            for (job, files) in jobs.into_iter().zip(discoveries) {
                let job = Arc::new(job);
                let pool = state.pools.entry(job.name().to_string()).or_insert_with(|| Pool::new(Arc::clone(&job)));
                for task in pool.discovery.drain(..) {
                    task.abort();
                }
                pool.job = Arc::clone(&job);
                pool.generation += 1;
                pool.groups.clear();
                let static_groups = job
                    .config
                    .static_configs
                    .iter()
                    .map(|s| TargetGroup { targets: s.targets.clone(), labels: s.labels.clone() })
                    .collect();
                pool.groups.insert(0, static_groups);
                for (provider, every, discovery) in files {
                    pool.groups.insert(provider, discovery.groups());
                    let poll = poll_files(
                        Arc::downgrade(&self.inner),
                        job.name().to_string(),
                        pool.generation,
                        provider,
                        discovery,
                        every,
                    );
                    pool.discovery.push(tokio::spawn(poll));
                }
                stopping.extend(pool.sync(&self.inner.deps));
            }
        }
        for task in stopping {
            let _ = task.await;
        }
        Ok(())
    }

    /// The active targets, by job then discovery order.
    pub fn targets(&self) -> Vec<TargetStatus> {
        let state = self.inner.state.lock();
        let mut out = Vec::new();
        for (name, pool) in &state.pools {
            for active in &pool.active {
                let status = active.status.lock().clone();
                let t = &active.target;
                out.push(TargetStatus {
                    discovered_labels: t.discovered.clone(),
                    labels: t.public.clone(),
                    scrape_pool: name.clone(),
                    scrape_url: t.url.clone(),
                    global_url: t.url.clone(),
                    last_error: status.last_error,
                    last_scrape: status.last_scrape,
                    last_scrape_duration: status.last_duration,
                    health: status.health,
                    scrape_interval: t.interval,
                    scrape_timeout: t.timeout,
                });
            }
        }
        out
    }

    /// Targets that relabelling dropped or that could not be built.
    pub fn dropped_targets(&self) -> Vec<DroppedTarget> {
        let state = self.inner.state.lock();
        state.pools.values().flat_map(|p| p.dropped.iter().cloned()).collect()
    }

    /// Stops every loop and discovery task and waits for them. No staleness markers are
    /// written (as in Prometheus: a restart should not make every series stale). Later
    /// `apply_config` calls do nothing.
    pub async fn shutdown(&self) {
        let stopping: Vec<JoinHandle<()>> = {
            let mut state = self.inner.state.lock();
            state.shut_down = true;
            std::mem::take(&mut state.pools).into_values().flat_map(|pool| pool.stop(false)).collect()
        };
        for task in stopping {
            let _ = task.await;
        }
    }
}

impl Pool {
    fn new(job: Arc<JobConfig>) -> Pool {
        Pool {
            job,
            generation: 0,
            groups: BTreeMap::new(),
            active: Vec::new(),
            dropped: Vec::new(),
            discovery: Vec::new(),
        }
    }

    /// Rebuilds the targets from the groups and starts, updates or stops loops to match.
    /// Returns the loops being stopped, for the caller to await outside the lock.
    fn sync(&mut self, deps: &Arc<ScrapeDeps>) -> Vec<JoinHandle<()>> {
        let groups: Vec<TargetGroup> = self.groups.values().flatten().cloned().collect();
        let (targets, dropped) = build_targets(&groups, &self.job);
        self.dropped = dropped;
        let mut old: HashMap<Labels, ActiveTarget> =
            self.active.drain(..).map(|a| (a.target.labels.clone(), a)).collect();
        for target in targets {
            let active = match old.remove(&target.labels) {
                Some(mut active) => {
                    active.control.send_replace(Control::Run(Arc::clone(&self.job)));
                    active.target = Arc::new(target);
                    active
                }
                None => start(deps, Arc::new(target), Arc::clone(&self.job)),
            };
            self.active.push(active);
        }
        old.into_values().map(|a| a.stop(true)).collect()
    }

    fn stop(self, mark_stale: bool) -> Vec<JoinHandle<()>> {
        for task in self.discovery {
            task.abort();
        }
        self.active.into_iter().map(|a| a.stop(mark_stale)).collect()
    }
}

impl ActiveTarget {
    fn stop(self, mark_stale: bool) -> JoinHandle<()> {
        self.control.send_replace(Control::Stop { mark_stale });
        self.task
    }
}

fn start(deps: &Arc<ScrapeDeps>, target: Arc<Target>, job: Arc<JobConfig>) -> ActiveTarget {
    let (control, receiver) = watch::channel(Control::Run(job));
    let status = Arc::new(Mutex::new(LoopStatus::default()));
    let task = tokio::spawn(scrape_loop::run(Arc::clone(deps), Arc::clone(&target), Arc::clone(&status), receiver));
    ActiveTarget { target, status, control, task }
}

/// Re-reads one `file_sd_configs` entry every `every` and resyncs the pool when it changed.
async fn poll_files(
    inner: Weak<Inner>,
    job: String,
    generation: u64,
    provider: usize,
    mut discovery: FileDiscovery,
    every: Duration,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let refreshed = tokio::task::spawn_blocking(move || {
            let changed = discovery.refresh();
            (discovery, changed)
        })
        .await;
        let Ok((returned, changed)) = refreshed else {
            return;
        };
        discovery = returned;
        if !changed {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let stopping = {
            let mut state = inner.state.lock();
            let Some(pool) = state.pools.get_mut(&job).filter(|p| p.generation == generation) else {
                return;
            };
            pool.groups.insert(provider, discovery.groups());
            pool.sync(&inner.deps)
        };
        for task in stopping {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests;
