//! [`Tsdb`]: the engine as other crates see it. Routes every call to the tenant's own
//! [`TenantDb`], runs the background WAL fsync, and implements the model's storage traits.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use osprey_model::{
    AppendSummary, Exemplar, HistogramSeries, Labels, Matcher, MetricMetadata, MetricsAppender, MetricsQuerier,
    PackedWriteRequest, SelectRequest, Series, SeriesIter, SeriesSamples, SeriesStartTimestamps, StorageError,
    TenantId, Timestamp, WriteRequest,
};
use parking_lot::RwLock;

use crate::series::Wanted;
use crate::stats::{Counters, HeadStats, TsdbStats};
use crate::tenant::{SeriesStream, TenantDb};
use crate::wal::WalRepair;
use crate::{TsdbError, TsdbOptions, WalSync};

/// What [`Tsdb::open`] found and repaired.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub tenants: usize,
    pub blocks_loaded: usize,
    /// Block directories that could not be read; they are left on disk, not served.
    pub blocks_skipped: Vec<(PathBuf, String)>,
    pub wal_records_replayed: u64,
    /// WAL files truncated at a damaged record, with what was lost.
    pub wal_repairs: Vec<WalRepair>,
    /// Replayed samples dropped because their series record was lost.
    pub samples_without_series: u64,
}

/// What one [`Tsdb::run_maintenance`] pass did, summed over tenants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub blocks_written: usize,
    pub compactions: usize,
    pub blocks_deleted: usize,
}

struct Inner {
    opts: Arc<TsdbOptions>,
    root: PathBuf,
    tenants: RwLock<HashMap<TenantId, Arc<TenantDb>>>,
    counters: Arc<Counters>,
    closed: AtomicBool,
}

/// The metrics storage engine. `Send + Sync`: share it as `Arc<Tsdb>`.
pub struct Tsdb {
    inner: Arc<Inner>,
    syncer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Tsdb {
    /// Opens (or creates) the storage in `opts.dir`, replaying every tenant's WAL. Damaged WAL
    /// tails are truncated and reported, never a reason to refuse to start.
    pub fn open(opts: TsdbOptions) -> Result<(Tsdb, OpenReport), TsdbError> {
        opts.validate()?;
        let root = opts.dir.join("tenants");
        fs::create_dir_all(&root).map_err(TsdbError::io(&root))?;
        let opts = Arc::new(opts);
        let counters = Arc::new(Counters::default());
        let mut report = OpenReport::default();
        let mut tenants = HashMap::new();
        for entry in fs::read_dir(&root).map_err(TsdbError::io(&root))? {
            let entry = entry.map_err(TsdbError::io(&root))?;
            if !entry.path().is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(id) = TenantId::new(&name) else {
                tracing::warn!(dir = %entry.path().display(), "ignoring directory that is not a valid tenant id");
                continue;
            };
            let (db, t) = TenantDb::open(&root, id.clone(), opts.clone(), counters.clone())?;
            report.blocks_loaded += t.blocks_loaded;
            report.blocks_skipped.extend(t.blocks_skipped);
            report.wal_records_replayed += t.wal_records;
            report.wal_repairs.extend(t.wal_repairs);
            report.samples_without_series += t.samples_without_series;
            tenants.insert(id, Arc::new(db));
        }
        report.tenants = tenants.len();
        let inner =
            Arc::new(Inner { opts, root, tenants: RwLock::new(tenants), counters, closed: AtomicBool::new(false) });
        let syncer = match inner.opts.wal_sync {
            WalSync::Always => None,
            WalSync::Interval(every) => Some(spawn_syncer(inner.clone(), every)?),
        };
        Ok((Tsdb { inner, syncer }, report))
    }

    fn tenant(&self, tenant: &TenantId) -> Option<Arc<TenantDb>> {
        self.inner.tenants.read().get(tenant).cloned()
    }

    /// What `read` gives for the tenant; a tenant that never stored anything reads as empty.
    fn read<T: Default>(
        &self,
        tenant: &TenantId,
        read: impl FnOnce(&TenantDb) -> Result<T, TsdbError>,
    ) -> Result<T, TsdbError> {
        self.tenant(tenant).map_or_else(|| Ok(T::default()), |t| read(&t))
    }

    fn tenant_or_create(&self, tenant: &TenantId) -> Result<Arc<TenantDb>, TsdbError> {
        if let Some(t) = self.tenant(tenant) {
            return Ok(t);
        }
        let mut tenants = self.inner.tenants.write();
        if let Some(t) = tenants.get(tenant) {
            return Ok(t.clone());
        }
        let (db, _) =
            TenantDb::open(&self.inner.root, tenant.clone(), self.inner.opts.clone(), self.inner.counters.clone())?;
        let db = Arc::new(db);
        tenants.insert(tenant.clone(), db.clone());
        Ok(db)
    }

    fn tenants(&self) -> Vec<Arc<TenantDb>> {
        self.inner.tenants.read().values().cloned().collect()
    }

    fn check_open(&self) -> Result<(), TsdbError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(TsdbError::Closed);
        }
        Ok(())
    }

    /// Appends a batch for one tenant; see [`MetricsAppender::append`]. Samples that break a
    /// rule (out of order, out of bounds, duplicate timestamp with another value) are counted
    /// in the summary, the rest is stored. `Err` before anything is stored for a series limit
    /// or a series without labels; an `Err` from the WAL write means the batch is not durable
    /// (it may already be visible to queries) and the caller should report failure.
    pub fn append(&self, tenant: &TenantId, request: WriteRequest) -> Result<AppendSummary, TsdbError> {
        self.append_packed(tenant, PackedWriteRequest::from(request))
    }

    /// [`Tsdb::append`] for a packed batch, the remote-write hot path: series that exist are
    /// found by the packed label bytes, without allocating (see
    /// [`MetricsAppender::append_packed`]).
    pub fn append_packed(&self, tenant: &TenantId, request: PackedWriteRequest) -> Result<AppendSummary, TsdbError> {
        self.check_open()?;
        self.tenant_or_create(tenant)?.append(request)
    }

    pub fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Series>, TsdbError> {
        self.read(tenant, |t| t.select(matchers, start, end))
    }

    /// Native-histogram samples of series matching every matcher in `[start, end]`
    /// (inclusive), sorted by labels, each series in time order. A series may have float
    /// samples too, at other timestamps: [`Tsdb::select`] returns those, including the
    /// staleness markers that end histogram series (a stale histogram is stored as one).
    pub fn select_histograms(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<HistogramSeries>, TsdbError> {
        self.read(tenant, |t| t.select_histograms(matchers, start, end))
    }

    /// Float and native-histogram samples of series matching every matcher in `[start, end]`
    /// (inclusive), one series at a time in label order, decoded as the iterator reaches it;
    /// series without samples there are left out. The call reads only indexes, and snapshots
    /// the head's chunks (sharing them, not decoding them), so the stream sees every sample
    /// stored before the call even if a head cut moves it into a block meanwhile. A corrupt
    /// chunk ends the stream with an `Err` item.
    pub fn select_series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<impl Iterator<Item = Result<SeriesSamples, TsdbError>> + Send + 'static, TsdbError> {
        self.stream(tenant, matchers, start, end, false)
    }

    /// [`Tsdb::select_series`] with each series cut down to its newest sample in the range,
    /// found without decoding the samples before it where the head knows it (see
    /// `MetricsQuerier::select_newest`).
    pub fn select_newest(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<impl Iterator<Item = Result<SeriesSamples, TsdbError>> + Send + 'static, TsdbError> {
        self.stream(tenant, matchers, start, end, true)
    }

    fn stream(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
        newest: bool,
    ) -> Result<SeriesStream, TsdbError> {
        self.read(tenant, |t| t.select_series(matchers, start, end, Wanted::BOTH, newest))
    }

    /// Start timestamps of the float and native-histogram samples of series matching every
    /// matcher in `[start, end]` (inclusive) that carry one, as `(sample timestamp, start
    /// timestamp)` pairs in time order, sorted by labels; series without any are left out.
    pub fn select_start_timestamps(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<SeriesStartTimestamps>, TsdbError> {
        self.read(tenant, |t| t.select_start_timestamps(matchers, start, end))
    }

    /// Label sets of matching series with data in the range, sorted, from the index alone.
    pub fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Labels>, TsdbError> {
        self.read(tenant, |t| t.series(matchers, start, end))
    }

    pub fn label_names(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, TsdbError> {
        let names = self.tenant(tenant).map(|t| t.label_names(matchers, start, end)).transpose()?;
        Ok(names.unwrap_or_default().into_iter().collect())
    }

    pub fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, TsdbError> {
        let values = self.tenant(tenant).map(|t| t.label_values(name, matchers, start, end)).transpose()?;
        Ok(values.unwrap_or_default().into_iter().collect())
    }

    pub fn exemplars(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        self.tenant(tenant).map(|t| t.exemplars(matchers, start, end)).unwrap_or_default()
    }

    pub fn metadata(&self, tenant: &TenantId) -> Vec<MetricMetadata> {
        self.tenant(tenant).map(|t| t.metadata()).unwrap_or_default()
    }

    /// Cuts head data into blocks, compacts and applies retention, as of `now_ms` (the
    /// caller's clock: the engine never reads the wall clock). Call it on a timer (every
    /// minute is plenty).
    /// Whether some tenant's head holds a block range ready to persist, so that maintenance
    /// need not wait for its timer after a backfill (Prometheus compacts on such appends).
    /// Cheap: reads each head's time bounds.
    pub fn head_needs_cut(&self) -> bool {
        self.tenants().iter().any(|t| t.head_cut_end().is_some())
    }

    pub fn run_maintenance(&self, now_ms: i64) -> Result<MaintenanceReport, TsdbError> {
        let mut report = MaintenanceReport::default();
        let tenants = self.tenants();
        for t in &tenants {
            let r = t.maintain(now_ms)?;
            report.blocks_written += r.blocks_written;
            report.compactions += r.compactions;
            report.blocks_deleted += r.blocks_deleted;
        }
        if let Some(max_bytes) = self.inner.opts.max_bytes {
            report.blocks_deleted += apply_size_retention(&tenants, max_bytes)?;
        }
        Ok(report)
    }

    /// Persists every tenant's whole head into blocks (e.g. before measuring bytes on disk).
    pub fn flush_head(&self) -> Result<usize, TsdbError> {
        let mut written = 0;
        for t in self.tenants() {
            written += t.flush_head()?;
        }
        Ok(written)
    }

    /// Flushes and fsyncs every WAL; later appends fail with [`TsdbError::Closed`]. Queries
    /// keep working. Call on graceful shutdown.
    pub fn close(&self) -> Result<(), TsdbError> {
        self.inner.closed.store(true, Ordering::Release);
        for t in self.tenants() {
            t.wal.sync().map_err(TsdbError::io(self.inner.root.join(t.id.as_str()).join("wal")))?;
        }
        Ok(())
    }

    /// Cardinality of one tenant's head (empty for an unknown tenant).
    pub fn head_stats(&self, tenant: &TenantId) -> HeadStats {
        self.tenant(tenant).map(|t| t.head_stats()).unwrap_or_default()
    }

    /// Engine-wide counters and sizes.
    pub fn stats(&self) -> TsdbStats {
        let mut s = self.inner.counters.snapshot();
        for t in self.tenants() {
            s.tenants += 1;
            s.head_series += t.head.num_series() as u64;
            s.wal_bytes_written += t.wal.bytes_written();
            s.wal_fsyncs += t.wal.fsyncs();
            s.wal_bytes_on_disk += t.wal.disk_bytes();
            let (blocks, bytes) = t.block_count_and_bytes();
            s.blocks += blocks;
            s.block_bytes += bytes;
        }
        s
    }
}

/// Deletes the oldest blocks, whichever tenant they belong to, while all blocks together take
/// more than `max_bytes` (like Prometheus's `--storage.tsdb.retention.size`, a bound on the
/// disk the engine uses).
fn apply_size_retention(tenants: &[Arc<TenantDb>], max_bytes: u64) -> Result<usize, TsdbError> {
    let mut blocks: Vec<(i64, usize, String, u64)> = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        blocks.extend(t.block_sizes().into_iter().map(|(min_time, id, bytes)| (min_time, i, id, bytes)));
    }
    let mut total: u64 = blocks.iter().map(|b| b.3).sum();
    blocks.sort();
    let mut doomed: Vec<Vec<String>> = vec![Vec::new(); tenants.len()];
    for (_, tenant, id, bytes) in blocks {
        if total <= max_bytes {
            break;
        }
        total -= bytes;
        doomed[tenant].push(id);
    }
    let mut deleted = 0;
    for (t, ids) in tenants.iter().zip(doomed) {
        if !ids.is_empty() {
            deleted += t.delete_blocks_by_id(&ids)?;
        }
    }
    Ok(deleted)
}

fn spawn_syncer(inner: Arc<Inner>, every: Duration) -> Result<(mpsc::Sender<()>, JoinHandle<()>), TsdbError> {
    let (stop, stopped) = mpsc::channel::<()>();
    let root = inner.root.clone();
    let handle = std::thread::Builder::new()
        .name("osprey-tsdb-wal-sync".into())
        .spawn(move || loop {
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {
                    let tenants: Vec<Arc<TenantDb>> = inner.tenants.read().values().cloned().collect();
                    for t in tenants.iter().filter(|t| t.wal.needs_sync()) {
                        if let Err(e) = t.wal.sync() {
                            tracing::warn!(tenant = %t.id, error = %e, "wal fsync failed; will retry");
                        }
                    }
                }
                _ => return,
            }
        })
        .map_err(TsdbError::io(root))?;
    Ok((stop, handle))
}

impl Drop for Tsdb {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.syncer.take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

impl MetricsAppender for Tsdb {
    fn append(&self, tenant: &TenantId, request: WriteRequest) -> Result<AppendSummary, StorageError> {
        Ok(Tsdb::append(self, tenant, request)?)
    }

    fn append_packed(&self, tenant: &TenantId, request: PackedWriteRequest) -> Result<AppendSummary, StorageError> {
        Ok(Tsdb::append_packed(self, tenant, request)?)
    }
}

impl MetricsQuerier for Tsdb {
    fn select(&self, tenant: &TenantId, request: &SelectRequest) -> Result<Vec<Series>, StorageError> {
        Ok(Tsdb::select(self, tenant, &request.matchers, request.start, request.end)?)
    }

    fn select_histograms(
        &self,
        tenant: &TenantId,
        request: &SelectRequest,
    ) -> Result<Vec<HistogramSeries>, StorageError> {
        Ok(Tsdb::select_histograms(self, tenant, &request.matchers, request.start, request.end)?)
    }

    fn select_series<'a>(&'a self, tenant: &TenantId, request: &SelectRequest) -> Result<SeriesIter<'a>, StorageError> {
        let stream = Tsdb::select_series(self, tenant, &request.matchers, request.start, request.end)?;
        Ok(Box::new(stream.map(|s| s.map_err(StorageError::from))))
    }

    fn select_newest<'a>(&'a self, tenant: &TenantId, request: &SelectRequest) -> Result<SeriesIter<'a>, StorageError> {
        let stream = Tsdb::select_newest(self, tenant, &request.matchers, request.start, request.end)?;
        Ok(Box::new(stream.map(|s| s.map_err(StorageError::from))))
    }

    fn select_start_timestamps(
        &self,
        tenant: &TenantId,
        request: &SelectRequest,
    ) -> Result<Vec<SeriesStartTimestamps>, StorageError> {
        Ok(Tsdb::select_start_timestamps(self, tenant, &request.matchers, request.start, request.end)?)
    }

    fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(Tsdb::series(self, tenant, matchers, start, end)?)
    }

    fn label_names(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        Ok(Tsdb::label_names(self, tenant, matchers, start, end)?)
    }

    fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        Ok(Tsdb::label_values(self, tenant, name, matchers, start, end)?)
    }

    fn exemplars(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Labels, Vec<Exemplar>)>, StorageError> {
        Ok(Tsdb::exemplars(self, tenant, matchers, start, end))
    }

    fn metadata(&self, tenant: &TenantId) -> Result<Vec<MetricMetadata>, StorageError> {
        Ok(Tsdb::metadata(self, tenant))
    }
}
