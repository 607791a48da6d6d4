//! The server's side of the API's [`Admin`] trait: TSDB statistics and flushing, scrape
//! targets, configuration, runtime facts and the self-metrics of storage.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use osprey_api::{write_metric_header, Admin, BuildInfo, HeadStats, TargetStatus, TsdbStatus};
use osprey_model::{StorageError, TenantId};
use osprey_tsdb::Tsdb;
use serde_json::{json, Value};

use crate::Config;

pub struct ServerStatus {
    tsdb: Arc<Tsdb>,
    scrape: Arc<osprey_scrape::ScrapeManager>,
    config: Config,
    config_yaml: String,
    started_at: String,
    ready: AtomicBool,
}

impl ServerStatus {
    pub fn new(
        tsdb: Arc<Tsdb>,
        scrape: Arc<osprey_scrape::ScrapeManager>,
        config: Config,
        config_yaml: String,
    ) -> Self {
        ServerStatus {
            tsdb,
            scrape,
            config,
            config_yaml,
            started_at: rfc3339(crate::now_ms()),
            // The TSDB is open (its WAL replayed) before this is built.
            ready: AtomicBool::new(true),
        }
    }
}

/// RFC 3339 in UTC with milliseconds, as Prometheus's API prints times.
fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn duration_text(d: std::time::Duration) -> String {
    let ms = d.as_millis() as u64;
    let (units, mut rest, mut out) =
        ([("d", 86_400_000u64), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)], ms, String::new());
    if ms == 0 {
        return "0s".into();
    }
    for (name, size) in units {
        if rest >= size {
            let _ = write!(out, "{}{name}", rest / size);
            rest %= size;
        }
    }
    out
}

fn cut(mut v: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
    v.truncate(limit);
    v
}

impl Admin for ServerStatus {
    fn flush_tsdb(&self) -> Result<(), StorageError> {
        self.tsdb.flush_head().map_err(|e| StorageError::new(e.kind(), e.to_string()))?;
        self.tsdb.run_maintenance(crate::now_ms()).map(|_| ()).map_err(|e| StorageError::new(e.kind(), e.to_string()))
    }

    fn build_info(&self) -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("OSPREY_GIT_REVISION").unwrap_or("unknown").to_string(),
            branch: "main".to_string(),
            build_date: option_env!("OSPREY_BUILD_DATE").unwrap_or("unknown").to_string(),
            rust_version: "rust".to_string(),
        }
    }

    fn tsdb_status(&self, tenant: &TenantId, limit: usize) -> Result<TsdbStatus, StorageError> {
        let h = self.tsdb.head_stats(tenant);
        Ok(TsdbStatus {
            head: HeadStats {
                num_series: h.num_series,
                num_label_pairs: h.num_label_pairs,
                chunk_count: h.num_chunks,
                // Prometheus reports the extremes of int64 for an empty head.
                min_time: h.min_time.unwrap_or(i64::MAX),
                max_time: h.max_time.unwrap_or(i64::MIN),
            },
            series_count_by_metric_name: cut(h.series_count_by_metric_name, limit),
            label_value_count_by_label_name: cut(h.label_value_count_by_label_name, limit),
            memory_in_bytes_by_label_name: cut(h.memory_in_bytes_by_label_name, limit),
            series_count_by_label_value_pair: cut(h.series_count_by_label_value_pair, limit),
        })
    }

    fn targets(&self) -> Vec<TargetStatus> {
        self.scrape
            .targets()
            .into_iter()
            .map(|t| TargetStatus {
                discovered_labels: t.discovered_labels,
                labels: t.labels,
                scrape_pool: t.scrape_pool,
                scrape_url: t.scrape_url,
                global_url: t.global_url,
                last_error: t.last_error,
                last_scrape: t.last_scrape.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
                last_scrape_duration_seconds: t.last_scrape_duration.as_secs_f64(),
                health: t.health.as_str().to_string(),
                scrape_interval: duration_text(t.scrape_interval),
                scrape_timeout: duration_text(t.scrape_timeout),
            })
            .collect()
    }

    fn dropped_targets(&self) -> Vec<(osprey_model::Labels, String)> {
        self.scrape.dropped_targets().into_iter().map(|t| (t.discovered_labels, t.scrape_pool)).collect()
    }

    fn config_yaml(&self) -> String {
        self.config_yaml.clone()
    }

    fn flags(&self) -> Vec<(String, String)> {
        let c = &self.config;
        vec![
            ("listen".into(), c.server.listen.to_string()),
            ("data-dir".into(), c.storage.data_dir.display().to_string()),
            ("storage.retention".into(), duration_text(c.storage.retention)),
            ("storage.retention_size_bytes".into(), c.storage.retention_size_bytes.to_string()),
            ("storage.out_of_order_window".into(), duration_text(c.storage.out_of_order_window)),
            ("storage.wal_fsync".into(), c.storage.wal_fsync.clone()),
            ("query.timeout".into(), duration_text(c.query.timeout)),
            ("query.max_samples".into(), c.query.max_samples.to_string()),
            ("query.lookback_delta".into(), duration_text(c.query.lookback_delta)),
        ]
    }

    fn runtime_info(&self) -> serde_json::Map<String, Value> {
        let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
        let mut retention = duration_text(self.config.storage.retention);
        if self.config.storage.retention_size_bytes > 0 {
            let _ = write!(retention, " or {}B", self.config.storage.retention_size_bytes);
        }
        let v = json!({
            "startTime": self.started_at,
            "CWD": cwd,
            "reloadConfigSuccess": true,
            "lastConfigTime": self.started_at,
            "corruptionCount": 0,
            "goroutineCount": 0,
            "GOMAXPROCS": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "GOMEMLIMIT": 0,
            "GOGC": "",
            "GODEBUG": "",
            "storageRetention": retention,
        });
        match v {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn render_metrics(&self, out: &mut String) {
        let s = self.tsdb.stats();
        let gauges: [(&str, &str, f64); 7] = [
            ("osprey_tsdb_tenants", "Tenants with data in the TSDB.", s.tenants as f64),
            ("osprey_tsdb_head_series", "Series in the in-memory head, all tenants.", s.head_series as f64),
            ("osprey_tsdb_wal_size_bytes", "Bytes of write-ahead log on disk.", s.wal_bytes_on_disk as f64),
            ("osprey_tsdb_blocks", "Persisted blocks, all tenants.", s.blocks as f64),
            ("osprey_tsdb_blocks_size_bytes", "Bytes of persisted blocks on disk.", s.block_bytes as f64),
            (
                "osprey_tsdb_last_compaction_duration_seconds",
                "Duration of the latest compaction.",
                s.last_compaction_seconds,
            ),
            ("osprey_scrape_targets", "Active scrape targets.", self.scrape.targets().len() as f64),
        ];
        for (name, help, v) in gauges {
            write_metric_header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
        let counters: [(&str, &str, f64); 10] = [
            ("osprey_tsdb_samples_appended_total", "Samples appended to the head.", s.samples_appended as f64),
            (
                "osprey_tsdb_histograms_appended_total",
                "Native-histogram samples appended to the head.",
                s.histograms_appended as f64,
            ),
            (
                "osprey_tsdb_samples_rejected_total",
                "Samples rejected (out of order, too old, duplicate).",
                s.samples_rejected as f64,
            ),
            ("osprey_tsdb_series_created_total", "Series created in the head.", s.series_created as f64),
            ("osprey_tsdb_exemplars_appended_total", "Exemplars stored.", s.exemplars_appended as f64),
            (
                "osprey_tsdb_wal_written_bytes_total",
                "Bytes written to the write-ahead log.",
                s.wal_bytes_written as f64,
            ),
            ("osprey_tsdb_wal_fsyncs_total", "fsync calls on the write-ahead log.", s.wal_fsyncs as f64),
            ("osprey_tsdb_head_cuts_total", "Head ranges persisted into blocks.", s.head_cuts as f64),
            ("osprey_tsdb_compactions_total", "Block compactions.", s.compactions as f64),
            ("osprey_tsdb_compaction_duration_seconds_total", "Time spent compacting.", s.compaction_seconds_total),
        ];
        for (name, help, v) in counters {
            write_metric_header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_prometheus() {
        assert_eq!(duration_text(std::time::Duration::from_secs(15)), "15s");
        assert_eq!(duration_text(std::time::Duration::from_secs(90)), "1m30s");
        assert_eq!(duration_text(std::time::Duration::from_secs(15 * 86_400)), "15d");
    }
}
