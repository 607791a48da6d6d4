//! Plain-struct statistics: per-tenant head cardinality (what Prometheus's
//! `/api/v1/status/tsdb` returns) and engine-wide counters for self-metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Cardinality of one tenant's head. Top-N lists are sorted by count, highest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadStats {
    pub num_series: u64,
    pub num_chunks: u64,
    pub num_label_pairs: u64,
    /// Compressed sample bytes held in memory.
    pub chunk_bytes: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Keys are `name=value`.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// Engine-wide totals since open, plus current sizes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStats {
    pub tenants: u64,
    pub head_series: u64,
    pub samples_appended: u64,
    pub histograms_appended: u64,
    /// Float and histogram samples refused (out of order, too old, duplicate).
    pub samples_rejected: u64,
    pub series_created: u64,
    pub exemplars_appended: u64,
    pub wal_bytes_written: u64,
    pub wal_bytes_on_disk: u64,
    pub wal_fsyncs: u64,
    pub head_cuts: u64,
    pub compactions: u64,
    pub compaction_seconds_total: f64,
    pub last_compaction_seconds: f64,
    pub blocks: u64,
    pub block_bytes: u64,
    pub blocks_deleted_by_retention: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) samples_appended: AtomicU64,
    pub(crate) histograms_appended: AtomicU64,
    pub(crate) samples_rejected: AtomicU64,
    pub(crate) series_created: AtomicU64,
    pub(crate) exemplars_appended: AtomicU64,
    pub(crate) head_cuts: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) compaction_nanos_total: AtomicU64,
    pub(crate) last_compaction_nanos: AtomicU64,
    pub(crate) blocks_deleted_by_retention: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TsdbStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TsdbStats {
            samples_appended: get(&self.samples_appended),
            histograms_appended: get(&self.histograms_appended),
            samples_rejected: get(&self.samples_rejected),
            series_created: get(&self.series_created),
            exemplars_appended: get(&self.exemplars_appended),
            head_cuts: get(&self.head_cuts),
            compactions: get(&self.compactions),
            compaction_seconds_total: get(&self.compaction_nanos_total) as f64 / 1e9,
            last_compaction_seconds: get(&self.last_compaction_nanos) as f64 / 1e9,
            blocks_deleted_by_retention: get(&self.blocks_deleted_by_retention),
            ..TsdbStats::default()
        }
    }
}

/// The `n` largest entries, highest count first, ties by name.
pub(crate) fn top_n(items: impl IntoIterator<Item = (String, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = items.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
