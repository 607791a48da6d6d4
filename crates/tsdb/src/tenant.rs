//! Everything one tenant owns: its head, WAL and blocks under `<dir>/tenants/<tenant>/`.
//! Nothing here can reach another tenant's data: each tenant is a separate `TenantDb`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use osprey_codec::{decode_histogram_chunk, ChunkEncoding};
use osprey_model::{
    is_stale_nan, AppendSummary, Exemplar, HistogramSample, HistogramSeries, Labels, Matcher, MetricMetadata, Sample,
    Series, SeriesSamples, SeriesStartTimestamps, TenantId, Timestamp, METRIC_NAME, STALE_NAN,
};
use osprey_model::{PackedSeries, PackedWriteRequest};
use parking_lot::{Mutex, RwLock};

use crate::block::{Block, BlockCompaction, BlockSeries, ChunkRef, LastFrame};
use crate::block_writer::{BlockWriter, TMP_SUFFIX};
use crate::compact_labels::RawPairs;
use crate::exemplars::ExemplarRing;
use crate::head::Head;
use crate::record::{self, Record};
use crate::select_cache::SelectCache;
use crate::series::{Floats, Histograms, MemSeries, Outcome, SeriesData, SeriesSnapshot, Wanted};
use crate::stats::{top_n, Counters, HeadStats};
use crate::wal::{Wal, WalRepair};
use crate::{compactor, starts, TsdbError, TsdbOptions, WalSync};

/// Series per record in a checkpoint, bounding record size.
const CHECKPOINT_BATCH: usize = 1000;

/// A series of an append batch, looked up before any is created (so the series limit is
/// checked once per batch).
enum Resolved {
    Found(Arc<MemSeries>),
    /// Not in the head: its label hash.
    Missing(u64),
}

pub(crate) struct TenantDb {
    pub(crate) id: TenantId,
    blocks_dir: PathBuf,
    opts: Arc<TsdbOptions>,
    counters: Arc<Counters>,
    pub(crate) head: Head,
    pub(crate) wal: Wal,
    blocks: RwLock<Vec<Arc<Block>>>,
    exemplars: Mutex<ExemplarRing>,
    metadata: Mutex<HashMap<String, MetricMetadata>>,
    /// Serialises head cuts, compaction and retention of this tenant.
    maintenance: Mutex<()>,
    /// Per matcher set, the series of the last select merged over its sources (see
    /// [`MergedSelect`]).
    merged_selects: SelectCache<MergedSelect>,
}

/// Matching series merged over the blocks of a select, whatever their time ranges: valid
/// while the block list is the one they were merged from (blocks never change). Merging
/// per-block series lists by their labels was most of the setup of a select over many
/// blocks; dashboards repeat it over the same blocks, and then only the head's series,
/// which change as series come and go, are merged in per query (measured: range queries
/// over 11 blocks and 1.2k-3.7k series 1-8% faster).
///
/// Kept for the last few block lists of each matcher set: one dashboard panel is read over
/// several ranges (the last day, the last week), each over other blocks.
#[derive(Clone, Default)]
struct MergedSelect(Vec<BlocksMerged>);

/// The keys of a block list's blocks ([`Block::frames_key`]) and their series merged.
type BlocksMerged = (Arc<[u64]>, Arc<Merged<SeriesKey>>);

/// Block lists kept per matcher set.
const MERGED_SELECT_RANGES: usize = 4;

/// Bounds of a tenant's merged select results: matcher sets, and series keys over all of them.
const MERGED_SELECTS: usize = 16;
const MERGED_SELECT_KEYS: usize = 1 << 20;

/// What opening one tenant found.
#[derive(Debug, Default)]
pub(crate) struct TenantOpen {
    pub(crate) wal_records: u64,
    pub(crate) samples_without_series: u64,
    pub(crate) wal_repairs: Vec<WalRepair>,
    pub(crate) blocks_loaded: usize,
    pub(crate) blocks_skipped: Vec<(PathBuf, String)>,
}

/// What one maintenance pass did for one tenant.
#[derive(Debug, Default)]
pub(crate) struct TenantMaintenance {
    pub(crate) blocks_written: usize,
    pub(crate) compactions: usize,
    pub(crate) blocks_deleted: usize,
}

fn align_down(t: i64, range: i64) -> i64 {
    t.div_euclid(range) * range
}

impl TenantDb {
    pub(crate) fn open(
        root: &Path,
        id: TenantId,
        opts: Arc<TsdbOptions>,
        counters: Arc<Counters>,
    ) -> Result<(TenantDb, TenantOpen), TsdbError> {
        let dir = root.join(id.as_str());
        let blocks_dir = dir.join("blocks");
        fs::create_dir_all(&blocks_dir).map_err(TsdbError::io(&blocks_dir))?;
        let mut report = TenantOpen::default();
        let blocks = load_blocks(&blocks_dir, &mut report)?;
        let head = Head::new(opts.block_range_ms(), opts.ooo_window_ms());
        if let Some(boundary) = blocks.iter().map(|b| b.meta.max_time).max() {
            head.raise_boundary(boundary);
        }
        let mut replay = Replay {
            head: &head,
            pending: HashMap::new(),
            pending_histograms: HashMap::new(),
            pending_starts: HashMap::new(),
            aliases: HashMap::new(),
            exemplars: Vec::new(),
            metadata: HashMap::new(),
        };
        let wal_dir = dir.join("wal");
        let (wal, records, repairs) =
            Wal::open(&wal_dir, opts.wal_segment_bytes, &mut |r| replay.apply(r)).map_err(TsdbError::io(&wal_dir))?;
        report.wal_records = records;
        report.wal_repairs = repairs;
        report.samples_without_series = replay.pending.values().map(|v| v.len() as u64).sum::<u64>()
            + replay.pending_histograms.values().map(|v| v.len() as u64).sum::<u64>();
        let Replay { exemplars, metadata, .. } = replay;
        let mut ring = ExemplarRing::new(opts.max_exemplars_per_tenant);
        for (series, e) in exemplars {
            ring.push(&series, e);
        }
        report.blocks_loaded = blocks.len();
        let db = TenantDb {
            id,
            blocks_dir,
            opts,
            counters,
            head,
            wal,
            blocks: RwLock::new(blocks),
            exemplars: Mutex::new(ring),
            metadata: Mutex::new(metadata),
            maintenance: Mutex::new(()),
            merged_selects: SelectCache::new(MERGED_SELECTS, MERGED_SELECT_KEYS, None),
        };
        Ok((db, report))
    }

    /// Appends a batch. Series are looked up by their packed label bytes, which are the head's
    /// `CompactLabels` encoding: an existing series costs one hash and one `memcmp`, and
    /// nothing is allocated per series unless it is new. Measured against the owned
    /// `WriteRequest` this replaced (`examples/ingest_bench 20000 100 1`, batches prepared
    /// before the clock starts): 1.23-1.32 CPU s for 2M samples owned, 0.49-0.50 packed.
    pub(crate) fn append(&self, request: PackedWriteRequest) -> Result<AppendSummary, TsdbError> {
        let head = &self.head;
        let mut summary = AppendSummary::default();
        let mut resolved: Vec<Resolved> = Vec::with_capacity(request.len());
        for ts in request.series() {
            if ts.label_bytes().is_empty() {
                return Err(TsdbError::InvalidSeries(
                    "a series has no labels; every series needs at least a metric name".into(),
                ));
            }
            let hash = head.hash(ts.label_bytes());
            resolved.push(match head.lookup(hash, ts.label_bytes()) {
                Some(series) => Resolved::Found(series),
                None => Resolved::Missing(hash),
            });
        }
        let missing = resolved.iter().filter(|s| matches!(s, Resolved::Missing(_))).count();
        // Checked per batch: concurrent batches may overshoot the limit by at most one batch.
        if missing > 0 && !head.reserve_series(missing, self.opts.max_series_per_tenant) {
            return Err(TsdbError::SeriesLimit {
                tenant: self.id.to_string(),
                limit: self.opts.max_series_per_tenant.unwrap_or_default(),
                new: missing,
            });
        }
        let mut created: Vec<Arc<MemSeries>> = Vec::new();
        if request.histogram_count() > 0 {
            head.note_histograms();
        }
        let gate = head.append_gate();
        let limits = head.limits();
        let mut accepted: Vec<(u64, Sample)> = Vec::with_capacity(request.sample_count());
        let mut accepted_histograms: Vec<(u64, &HistogramSample)> = Vec::new();
        // Stale histograms stored as float markers (in `accepted`), counted as histograms.
        let mut stale_histograms = 0u64;
        let mut exemplars: Vec<(Arc<MemSeries>, &Exemplar)> = Vec::new();
        // Start-timestamp change points written, for the WAL.
        let mut starts: Vec<(u64, i64, i64)> = Vec::new();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for (ts, resolved) in request.series().zip(resolved) {
            let mut series = match resolved {
                Resolved::Found(s) => s,
                Resolved::Missing(hash) => self.create(hash, ts.label_bytes(), &mut created),
            };
            let mut data = series.data.lock();
            if data.removed {
                // Garbage-collected between lookup and lock: append to a fresh series.
                drop(data);
                let key = series.labels.clone();
                series = self.create(series.hash, key.as_bytes(), &mut created);
                data = series.data.lock();
            }
            // Series that never had a start timestamp skip this per sample. Pairs should come
            // in time order; a decoder interleaving floats and histograms may not keep it.
            let mut given = std::borrow::Cow::Borrowed(ts.start_timestamps());
            if !given.windows(2).all(|w| w[0].0 < w[1].0) {
                given.to_mut().sort_by_key(|p| p.0);
            }
            let track_starts = !given.is_empty() || data.has_starts();
            let id = series.id;
            let mut note_start = |data: &mut SeriesData, t: i64| {
                if track_starts {
                    let start = given.binary_search_by_key(&t, |p| p.0).map_or(0, |i| given[i].1);
                    data.set_start(t, start, &mut |t, s| starts.push((id, t, s)));
                }
            };
            for &s in ts.samples() {
                let outcome = data.append(s, &limits);
                if outcome == Outcome::Appended {
                    note_start(&mut data, s.t);
                    accepted.push((series.id, s));
                    min_t = min_t.min(s.t);
                    max_t = max_t.max(s.t);
                    continue;
                }
                record_rejection(&mut summary, outcome, &ts, s.t);
            }
            for h in ts.histograms() {
                let t = h.t;
                // Prometheus marks a histogram series stale with a histogram whose sum is the
                // staleness NaN. It is stored as a float staleness marker, so that both query
                // views agree: the newest sample of either kind wins, and a marker hides both.
                let outcome = if is_stale_nan(h.h.sum) {
                    let marker = Sample::new(t, STALE_NAN);
                    let outcome = data.append(marker, &limits);
                    if outcome == Outcome::Appended {
                        accepted.push((series.id, marker));
                        stale_histograms += 1;
                    }
                    outcome
                } else {
                    let outcome = data.append_histogram(h, &limits);
                    if outcome == Outcome::Appended {
                        accepted_histograms.push((series.id, h));
                    }
                    outcome
                };
                if outcome == Outcome::Appended {
                    note_start(&mut data, t);
                    min_t = min_t.min(t);
                    max_t = max_t.max(t);
                    continue;
                }
                record_rejection(&mut summary, outcome, &ts, t);
            }
            drop(data);
            for e in ts.exemplars() {
                exemplars.push((series.clone(), e));
            }
        }
        // Inside the gate, so a concurrent head cut sees these samples in the head's range.
        head.observe_times(min_t, max_t);
        drop(gate);
        if !exemplars.is_empty() {
            let mut ring = self.exemplars.lock();
            exemplars.retain(|(series, e)| ring.push(series, (*e).clone()));
        }
        summary.samples_appended = accepted.len() as u64 - stale_histograms;
        summary.histograms_appended = accepted_histograms.len() as u64 + stale_histograms;
        summary.series_created = created.len() as u64;
        summary.exemplars_appended = exemplars.len() as u64;

        let mut buf = Vec::with_capacity(accepted.len() * 14 + 64);
        if !created.is_empty() {
            record::encode_series(&mut buf, created.iter().map(|s| (s.id, &s.labels)));
        }
        if !accepted.is_empty() {
            record::encode_samples(&mut buf, &accepted);
        }
        if !accepted_histograms.is_empty() {
            record::encode_histograms(&mut buf, &accepted_histograms);
        }
        if !starts.is_empty() {
            record::encode_starts(&mut buf, &starts);
        }
        if !exemplars.is_empty() {
            record::encode_exemplars(&mut buf, exemplars.iter().map(|(s, e)| (s.id, *e)));
        }
        if !request.metadata.is_empty() {
            record::encode_metadata(&mut buf, request.metadata.iter());
        }
        if !buf.is_empty() {
            let fsync = self.opts.wal_sync == WalSync::Always;
            self.wal.append(&buf, fsync).map_err(TsdbError::io(self.blocks_dir.with_file_name("wal")))?;
        }
        if !request.metadata.is_empty() {
            let mut meta = self.metadata.lock();
            for m in request.metadata {
                meta.insert(m.metric_family_name.clone(), m);
            }
        }
        Counters::add(&self.counters.samples_appended, summary.samples_appended);
        Counters::add(&self.counters.histograms_appended, summary.histograms_appended);
        Counters::add(&self.counters.samples_rejected, summary.rejected());
        Counters::add(&self.counters.series_created, summary.series_created);
        Counters::add(&self.counters.exemplars_appended, summary.exemplars_appended);
        Ok(summary)
    }

    fn create(&self, hash: u64, key: &[u8], created: &mut Vec<Arc<MemSeries>>) -> Arc<MemSeries> {
        let (series, is_new) = self.head.get_or_create(hash, key);
        if is_new {
            created.push(series.clone());
        }
        series
    }

    fn blocks_snapshot(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    /// Float samples (staleness markers included) of matching series in `[start, end]`.
    pub(crate) fn select(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Series>, TsdbError> {
        self.select_series(matchers, start, end, Wanted::FLOATS, false)?
            .map(|s| s.map(|s| Series { labels: s.labels, samples: s.floats }))
            .collect()
    }

    /// Native-histogram samples of matching series in `[start, end]`. Stale histograms are
    /// not among them: they were stored as float staleness markers, which `select` returns.
    pub(crate) fn select_histograms(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<HistogramSeries>, TsdbError> {
        self.select_series(matchers, start, end, Wanted::HISTOGRAMS, false)?
            .map(|s| s.map(|s| HistogramSeries { labels: s.labels, samples: s.histograms }))
            .collect()
    }

    /// Start timestamps of the samples of matching series in `[start, end]` that carry one
    /// (see [`osprey_model::MetricsQuerier::select_start_timestamps`]). Only series whose
    /// sources hold change points are decoded.
    pub(crate) fn select_start_timestamps(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<SeriesStartTimestamps>, TsdbError> {
        self.select_series(matchers, start, end, Wanted::STARTS, false)?.start_timestamps()
    }

    /// The wanted kinds of samples of matching series in `[start, end]`, decoded one series
    /// at a time as the stream is read. Here only the index is read: which series match, the
    /// chunks of each block that hold them, and a snapshot of each head series' chunks.
    ///
    /// The head is snapshotted before the block list is taken. A head cut writes its blocks
    /// before it truncates the head, so a head series snapshotted after its truncation has
    /// its data in a block that the later block list holds: nothing is missed, and a sample
    /// seen twice (in the snapshot and the new block) is deduplicated like overlapping blocks.
    ///
    /// With `newest`, each series returned holds only its newest sample in the range (of
    /// either kind): a head series whose newest sample is a float in the range gives it
    /// without decoding, and a block only decodes its last chunk overlapping the range.
    pub(crate) fn select_series(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
        wanted: Wanted,
        newest: bool,
    ) -> Result<SeriesStream, TsdbError> {
        // Float-only sources are skipped for histograms without reading their index.
        let head_has_wanted = wanted.floats || self.head.holds_histograms();
        let head = if head_has_wanted { self.head.select_sorted(matchers) } else { Arc::from([]) };
        let mut head_run = Vec::with_capacity(head.len());
        let mut snapshots = Vec::with_capacity(head.len());
        for series in head.iter() {
            let data = series.data.lock();
            let snapshot = match data.newest_float_in(start, end).filter(|_| newest && wanted.floats) {
                Some(sample) => SeriesSnapshot::of_float(sample),
                None => data.snapshot(start, end, wanted),
            };
            drop(data);
            if !snapshot.is_empty() {
                head_run.push(SeriesKey::Head(snapshots.len() as u32));
                snapshots.push(Some(snapshot));
            } else {
                snapshots.push(None);
            }
        }
        let mut blocks = self.blocks_snapshot();
        blocks.retain(|b| b.overlaps(start, end) && (wanted.floats || b.meta.stats.num_histogram_samples > 0));
        let block_series = blocks.iter().map(|b| b.select(matchers)).collect::<Result<Vec<_>, _>>()?;
        let block_keys: Arc<[u64]> = blocks.iter().map(|b| b.frames_key).collect();
        let found = Found { blocks, block_series, head, snapshots };
        let in_blocks = if found.blocks.len() < 2 {
            // One list merges without comparing labels.
            merge_blocks(&found)
        } else {
            let mut merged = self.merged_selects.get(matchers).unwrap_or_default();
            match merged.0.iter().find(|(blocks, _)| *blocks == block_keys) {
                Some((_, series)) => Merged::clone(series),
                None => {
                    let series = merge_blocks(&found);
                    merged.0.push((block_keys, Arc::new(series.clone())));
                    let oldest = merged.0.len().saturating_sub(MERGED_SELECT_RANGES);
                    merged.0.drain(..oldest);
                    let keys = merged.0.iter().map(|(_, s)| s.keys.len()).sum();
                    self.merged_selects.insert(matchers, merged, keys);
                    series
                }
            }
        };
        let cmp = |a: &SeriesKey, b: &SeriesKey| a.pairs(&found).cmp(b.pairs(&found));
        let series = merge_label_runs(in_blocks, Merged::run(head_run), &cmp);
        Ok(SeriesStream::new(found, series, Span { start, end, wanted, newest }))
    }

    /// Calls `visit` with the labels of every matching series that has data overlapping
    /// `[start, end]` (by chunk time ranges, without decoding samples).
    fn visit_series(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
        visit: &mut dyn FnMut(&Labels),
    ) -> Result<(), TsdbError> {
        for block in self.blocks_snapshot().iter().filter(|b| b.overlaps(start, end)) {
            visit_block_series(block, matchers, start, end, visit)?;
        }
        self.visit_head_series(matchers, start, end, visit);
        Ok(())
    }

    fn visit_head_series(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
        visit: &mut dyn FnMut(&Labels),
    ) {
        for series in self.head.select(matchers) {
            let data = series.data.lock();
            let in_range = data.min_t().is_some_and(|min| min <= end) && data.max_t() >= start;
            drop(data);
            if in_range {
                visit(&series.labels.to_labels());
            }
        }
    }

    /// Whether the head's data lies entirely inside `[start, end]`, so that with no matchers
    /// its inverted index alone answers label queries.
    fn head_within(&self, start: Timestamp, end: Timestamp) -> bool {
        self.head.time_range().is_none_or(|(min, max)| min >= start && max <= end)
    }

    pub(crate) fn series(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Labels>, TsdbError> {
        let mut out = BTreeSet::new();
        self.visit_series(matchers, start, end, &mut |l| {
            if !out.contains(l) {
                out.insert(l.clone());
            }
        })?;
        Ok(out.into_iter().collect())
    }

    /// Label names; without matchers, sources inside the range answer from their index
    /// (the common "all label names" call), others by visiting their series.
    pub(crate) fn label_names(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<BTreeSet<String>, TsdbError> {
        let mut out = BTreeSet::new();
        let mut add = |l: &Labels| {
            for label in l {
                if !out.contains(label.name.as_str()) {
                    out.insert(label.name.clone());
                }
            }
        };
        let mut from_index = Vec::new();
        for block in self.blocks_snapshot().iter().filter(|b| b.overlaps(start, end)) {
            if matchers.is_empty() && block.within(start, end) {
                from_index.extend(block.label_names().map(str::to_string));
            } else {
                visit_block_series(block, matchers, start, end, &mut add)?;
            }
        }
        if matchers.is_empty() && self.head_within(start, end) {
            from_index.extend(self.head.postings().label_names().map(str::to_string));
        } else {
            self.visit_head_series(matchers, start, end, &mut add);
        }
        out.extend(from_index);
        Ok(out)
    }

    /// Values of one label, answered like [`TenantDb::label_names`].
    pub(crate) fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<BTreeSet<String>, TsdbError> {
        let mut out = BTreeSet::new();
        let mut add = |l: &Labels| {
            if let Some(v) = l.get(name) {
                if !out.contains(v) {
                    out.insert(v.to_string());
                }
            }
        };
        let mut from_index = Vec::new();
        for block in self.blocks_snapshot().iter().filter(|b| b.overlaps(start, end)) {
            if matchers.is_empty() && block.within(start, end) {
                from_index.extend(block.label_values(name).map(str::to_string));
            } else {
                visit_block_series(block, matchers, start, end, &mut add)?;
            }
        }
        if matchers.is_empty() && self.head_within(start, end) {
            from_index.extend(self.head.postings().values(name).map(|(v, _)| v.to_string()));
        } else {
            self.visit_head_series(matchers, start, end, &mut add);
        }
        out.extend(from_index);
        Ok(out)
    }

    pub(crate) fn exemplars(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let mut out: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
        for (series, e) in self.exemplars.lock().iter() {
            if e.t >= start && e.t <= end && series.labels.matches(matchers) {
                out.entry(series.labels.to_labels()).or_default().push(e.clone());
            }
        }
        out.into_iter()
            .map(|(l, mut v)| {
                v.sort_by_key(|e| e.t);
                (l, v)
            })
            .collect()
    }

    pub(crate) fn metadata(&self) -> Vec<MetricMetadata> {
        let mut v: Vec<MetricMetadata> = self.metadata.lock().values().cloned().collect();
        v.sort_by(|a, b| a.metric_family_name.cmp(&b.metric_family_name));
        v
    }

    /// Cuts head data into blocks once the head spans 1.5 block ranges, compacts, applies
    /// retention as of `now_ms`.
    pub(crate) fn maintain(&self, now_ms: i64) -> Result<TenantMaintenance, TsdbError> {
        let _guard = self.maintenance.lock();
        let mut report = TenantMaintenance::default();
        if let Some(end) = self.head_cut_end() {
            report.blocks_written += self.persist_head_before(end)?;
        }
        self.compact(&mut report)?;
        self.apply_retention(now_ms, &mut report)?;
        Ok(report)
    }

    /// Where the head would be cut now, if it holds a whole block range that appenders are
    /// done with: everything before the last block boundary at least half a block range behind
    /// the newest sample (as Prometheus), or the out-of-order window if longer. It all goes in
    /// one pass: a backfilled head spanning many ranges is cut once (one WAL checkpoint), not
    /// once per range, which would re-encode the rest of the head every time.
    pub(crate) fn head_cut_end(&self) -> Option<i64> {
        let range = self.head.block_range();
        let (min_t, max_t) = self.head.time_range()?;
        let lag = (range / 2).max(self.opts.ooo_window_ms());
        let end = align_down(max_t.saturating_sub(lag), range);
        (end >= align_down(min_t.max(self.head.boundary()), range) + range).then_some(end)
    }

    /// Persists the whole head into blocks.
    pub(crate) fn flush_head(&self) -> Result<usize, TsdbError> {
        let _guard = self.maintenance.lock();
        match self.head.time_range() {
            Some((_, max_t)) => self.persist_head_before(max_t.saturating_add(1)),
            None => Ok(0),
        }
    }

    /// Writes head samples older than `before` into one block per block-range window, then
    /// drops them from the head and checkpoints the WAL. Returns the blocks written.
    fn persist_head_before(&self, before: i64) -> Result<usize, TsdbError> {
        let range = self.head.block_range();
        self.head.raise_boundary(before);
        let mut series = self.head.all_series();
        // The head's cached minimum can lag concurrent appends; the series know exactly.
        let Some(min_t) = series.iter().filter_map(|s| s.data.lock().min_t()).min() else {
            return Ok(0);
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut written = 0;
        let mut window = align_down(min_t, range);
        while window < before {
            let window_end = window.saturating_add(range).min(before);
            let io = TsdbError::io(&self.blocks_dir);
            let mut writer = BlockWriter::new(&self.blocks_dir, window).map_err(io)?;
            for s in &series {
                let data = s.data.lock();
                let (samples, histograms) =
                    (data.samples(window, window_end - 1), data.histograms(window, window_end - 1));
                let starts = data.start_points(window, window_end);
                drop(data);
                writer
                    .add_series(s.labels.clone(), &samples, &histograms, &starts)
                    .map_err(TsdbError::io(&self.blocks_dir))?;
            }
            let compaction = BlockCompaction { level: 1, ..Default::default() };
            if let Some(dir) = writer.finish(window, window_end, compaction).map_err(TsdbError::io(&self.blocks_dir))? {
                self.add_block(Arc::new(Block::open(&dir)?));
                written += 1;
            }
            window = window_end;
        }
        self.head.truncate(before);
        self.checkpoint_wal()?;
        Counters::add(&self.counters.head_cuts, 1);
        Ok(written)
    }

    fn add_block(&self, block: Arc<Block>) {
        let mut blocks = self.blocks.write();
        blocks.push(block);
        sort_blocks(&mut blocks);
    }

    /// Replaces the WAL written so far by a checkpoint of what the head still holds.
    fn checkpoint_wal(&self) -> Result<(), TsdbError> {
        let wal_dir = self.blocks_dir.with_file_name("wal");
        let first_kept = self.wal.rotate().map_err(TsdbError::io(&wal_dir))?;
        // Taken after the rotation: anything appended to the head before it is included.
        let mut series = self.head.all_series();
        series.sort_by_key(|s| s.id);
        let mut body = Vec::new();
        for batch in series.chunks(CHECKPOINT_BATCH) {
            record::encode_series(&mut body, batch.iter().map(|s| (s.id, &s.labels)));
            let mut chunks = Vec::new();
            let mut starts = Vec::new();
            for s in batch {
                let data = s.data.lock();
                chunks.extend(data.encoded_chunks().into_iter().map(|c| (s.id, c)));
                starts.extend(data.all_start_points().iter().map(|&(t, start)| (s.id, t, start)));
            }
            record::encode_chunks(&mut body, chunks.iter().map(|(id, c)| (*id, c.as_slice())));
            if !starts.is_empty() {
                record::encode_starts(&mut body, &starts);
            }
        }
        let exemplars = self.exemplars.lock();
        if !exemplars.is_empty() {
            // Exemplars can outlive their series' samples; log those series so replay can
            // attach the exemplars again.
            let live: HashSet<u64> = series.iter().map(|s| s.id).collect();
            let mut gone: Vec<&Arc<MemSeries>> =
                exemplars.iter().map(|(s, _)| s).filter(|s| !live.contains(&s.id)).collect();
            gone.sort_by_key(|s| s.id);
            gone.dedup_by_key(|s| s.id);
            if !gone.is_empty() {
                record::encode_series(&mut body, gone.iter().map(|s| (s.id, &s.labels)));
            }
            record::encode_exemplars(&mut body, exemplars.iter().map(|(s, e)| (s.id, e)));
        }
        drop(exemplars);
        let metadata = self.metadata();
        if !metadata.is_empty() {
            record::encode_metadata(&mut body, metadata.iter());
        }
        self.wal.checkpoint(first_kept, &body).map_err(TsdbError::io(&wal_dir))
    }

    fn compact(&self, report: &mut TenantMaintenance) -> Result<(), TsdbError> {
        let ranges = self.opts.compaction_ranges();
        while let Some(sources) = compactor::plan(&self.blocks_snapshot(), &ranges) {
            let started = Instant::now();
            let dir = compactor::compact(&self.blocks_dir, &sources)?;
            let new_block = dir.map(|d| Block::open(&d)).transpose()?.map(Arc::new);
            {
                let mut blocks = self.blocks.write();
                blocks.retain(|b| !sources.iter().any(|s| s.id() == b.id()));
                blocks.extend(new_block);
                sort_blocks(&mut blocks);
            }
            for s in &sources {
                fs::remove_dir_all(&s.dir).map_err(TsdbError::io(&s.dir))?;
            }
            let nanos = started.elapsed().as_nanos() as u64;
            Counters::add(&self.counters.compactions, 1);
            Counters::add(&self.counters.compaction_nanos_total, nanos);
            self.counters.last_compaction_nanos.store(nanos, std::sync::atomic::Ordering::Relaxed);
            report.compactions += 1;
        }
        Ok(())
    }

    fn apply_retention(&self, now_ms: i64, report: &mut TenantMaintenance) -> Result<(), TsdbError> {
        let cutoff = now_ms.saturating_sub(self.opts.retention_ms());
        let expired: Vec<Arc<Block>> =
            self.blocks_snapshot().into_iter().filter(|b| b.meta.max_time <= cutoff).collect();
        report.blocks_deleted += self.delete_blocks(&expired, "time")?;
        Ok(())
    }

    /// `(min_time, id, bytes)` of every block, for size-based retention across tenants.
    pub(crate) fn block_sizes(&self) -> Vec<(i64, String, u64)> {
        self.blocks.read().iter().map(|b| (b.meta.min_time, b.id().to_string(), b.disk_bytes)).collect()
    }

    /// Deletes the named blocks (those still present); returns how many went.
    pub(crate) fn delete_blocks_by_id(&self, ids: &[String]) -> Result<usize, TsdbError> {
        let _guard = self.maintenance.lock();
        let doomed: Vec<Arc<Block>> =
            self.blocks_snapshot().into_iter().filter(|b| ids.iter().any(|id| id == b.id())).collect();
        self.delete_blocks(&doomed, "size")
    }

    /// Drops blocks from the list, then their directories (queries holding them keep reading
    /// the unlinked, still mapped files). Callers hold the maintenance lock.
    fn delete_blocks(&self, doomed: &[Arc<Block>], reason: &str) -> Result<usize, TsdbError> {
        if doomed.is_empty() {
            return Ok(0);
        }
        self.blocks.write().retain(|b| !doomed.iter().any(|d| d.id() == b.id()));
        for b in doomed {
            tracing::info!(
                tenant = %self.id,
                block = b.id(),
                min_time = b.meta.min_time,
                max_time = b.meta.max_time,
                reason,
                "retention deleted block"
            );
            fs::remove_dir_all(&b.dir).map_err(TsdbError::io(&b.dir))?;
        }
        Counters::add(&self.counters.blocks_deleted_by_retention, doomed.len() as u64);
        Ok(doomed.len())
    }

    pub(crate) fn block_count_and_bytes(&self) -> (u64, u64) {
        let blocks = self.blocks.read();
        (blocks.len() as u64, blocks.iter().map(|b| b.disk_bytes).sum())
    }

    pub(crate) fn head_stats(&self) -> HeadStats {
        let mut stats = HeadStats::default();
        for s in self.head.all_series() {
            let data = s.data.lock();
            stats.num_chunks += data.num_chunks() as u64;
            stats.chunk_bytes += data.chunk_bytes() as u64;
        }
        let postings = self.head.postings();
        stats.num_series = postings.num_series() as u64;
        stats.series_count_by_metric_name =
            top_n(postings.values(METRIC_NAME).map(|(v, ids)| (v.to_string(), ids.len() as u64)), 10);
        let mut value_counts = Vec::new();
        let mut memory = Vec::new();
        let mut pairs = Vec::new();
        for name in postings.label_names() {
            let (mut count, mut bytes) = (0u64, 0u64);
            for (value, ids) in postings.values(name) {
                count += 1;
                bytes += value.len() as u64;
                pairs.push((format!("{name}={value}"), ids.len() as u64));
            }
            stats.num_label_pairs += count;
            value_counts.push((name.to_string(), count));
            memory.push((name.to_string(), bytes));
        }
        stats.label_value_count_by_label_name = top_n(value_counts, 10);
        stats.memory_in_bytes_by_label_name = top_n(memory, 10);
        stats.series_count_by_label_value_pair = top_n(pairs, 10);
        if let Some((min, max)) = self.head.time_range() {
            stats.min_time = Some(min);
            stats.max_time = Some(max);
        }
        stats
    }
}

/// The select results a query's series refer to: the blocks overlapping its range with
/// each one's matching series (as cached by [`Block::select`]), and the matching head
/// series (as cached by `Head::select_sorted`), which stay alive while the stream does even
/// if the head drops them meanwhile, with their snapshots (`None` where nothing overlaps
/// the range, or once the stream has read it).
struct Found {
    blocks: Vec<Arc<Block>>,
    block_series: Vec<Arc<[BlockSeries]>>,
    head: Arc<[Arc<MemSeries>]>,
    snapshots: Vec<Option<SeriesSnapshot>>,
}

impl Found {
    fn block_series(&self, block: u32, series: u32) -> (&Block, &BlockSeries) {
        (&self.blocks[block as usize], &self.block_series[block as usize][series as usize])
    }
}

/// One matching series in one source of a query (indexes into [`Found`]): its label set is
/// compared as it lies there and turned into [`Labels`] only for a series the stream
/// returns; its data is read from there when the stream reaches it.
#[derive(Clone, Copy)]
enum SeriesKey {
    Block { block: u32, series: u32 },
    Head(u32),
}

impl SeriesKey {
    /// The `(name, value)` pairs in name order; as sequences they compare as [`Labels`] do.
    fn pairs(self, found: &Found) -> LabelPairs<'_> {
        match self {
            SeriesKey::Block { block, series } => {
                let (block, series) = found.block_series(block, series);
                LabelPairs::Symbols { symbols: block.symbols(), pairs: series.pairs.iter() }
            }
            SeriesKey::Head(i) => LabelPairs::Compact(found.head[i as usize].labels.raw_pairs()),
        }
    }

    fn labels(self, found: &Found) -> Labels {
        match self {
            SeriesKey::Block { block, series } => {
                let (block, series) = found.block_series(block, series);
                block.labels(&series.pairs)
            }
            SeriesKey::Head(i) => found.head[i as usize].labels.to_labels(),
        }
    }
}

/// A label set's `(name, value)` pairs as bytes, borrowed from wherever it lies: byte order
/// is `str` order, and the lexicographic order of the pair sequences (a prefix first) is
/// the order of [`Labels`].
enum LabelPairs<'a> {
    /// A block's symbol references, resolved through its symbol table.
    Symbols {
        symbols: &'a [String],
        pairs: std::slice::Iter<'a, (u32, u32)>,
    },
    Compact(RawPairs<'a>),
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            LabelPairs::Symbols { symbols, pairs } => {
                let &(n, v) = pairs.next()?;
                Some((symbols[n as usize].as_bytes(), symbols[v as usize].as_bytes()))
            }
            LabelPairs::Compact(pairs) => pairs.next(),
        }
    }
}

/// Matching series of a query, each with where its data lies, decoded one at a time as the
/// stream is read: a reader holds one series' samples rather than every matching one's.
/// Series without samples in the range are left out. A corrupt block chunk ends the stream
/// with its error. (Decoding batches of series on several threads was measured slower:
/// 1.1-1.2x on range queries over blocks, starting threads and freeing their allocations
/// elsewhere costing more than the decoding they shared.)
pub(crate) struct SeriesStream {
    found: Found,
    series: Merged<SeriesKey>,
    /// The next group of `series` to read.
    next: usize,
    span: Span,
    /// The last frame read of each block.
    frames: Vec<LastFrame>,
}

impl Default for SeriesStream {
    /// The stream of a tenant that does not exist: no series.
    fn default() -> SeriesStream {
        let found = Found { blocks: Vec::new(), block_series: Vec::new(), head: Arc::from([]), snapshots: Vec::new() };
        let span = Span { start: 0, end: 0, wanted: Wanted::BOTH, newest: false };
        SeriesStream::new(found, Merged { keys: Vec::new(), ends: Vec::new() }, span)
    }
}

impl SeriesStream {
    fn new(found: Found, series: Merged<SeriesKey>, span: Span) -> SeriesStream {
        let frames = found.blocks.iter().map(|_| LastFrame::shared()).collect();
        SeriesStream { found, series, next: 0, span, frames }
    }

    /// One series' samples of each kind from its sources, in source order, then sorted and
    /// deduplicated by timestamp where sources overlap (`None` for a series without samples
    /// in the range). A head snapshot is dropped once read, releasing the chunks it shares.
    fn decode(&mut self, group: usize) -> Result<Option<SeriesSamples>, TsdbError> {
        let Span { start, end, wanted, newest } = self.span;
        let (mut floats, mut histograms) = (Vec::new(), Vec::new());
        for &source in self.series.group(group) {
            match source {
                SeriesKey::Block { block: b, series } => {
                    let (block, series) = self.found.block_series(b, series);
                    let last = &mut self.frames[b as usize];
                    if wanted.floats {
                        let read = block.read_chunks::<Floats>(self.span.chunks(&series.chunks), start, end, last)?;
                        append(&mut floats, read);
                    }
                    if wanted.histograms {
                        let refs = self.span.chunks(&series.histogram_chunks);
                        append(&mut histograms, block.read_chunks::<Histograms>(refs, start, end, last)?);
                    }
                }
                SeriesKey::Head(i) => {
                    if let Some(snapshot) = self.found.snapshots[i as usize].take() {
                        append(&mut floats, snapshot.samples(start, end));
                        append(&mut histograms, snapshot.histograms(start, end));
                    }
                }
            }
        }
        if floats.is_empty() && histograms.is_empty() {
            return Ok(None);
        }
        sort_unique(&mut floats, |s| s.t);
        sort_unique(&mut histograms, |s| s.t);
        let labels = self.series.group(group)[0].labels(&self.found);
        let mut series = SeriesSamples { labels, floats, histograms };
        if newest {
            series.keep_newest();
        }
        Ok(Some(series))
    }
}

/// What a stream reads of each series.
#[derive(Clone, Copy)]
struct Span {
    start: Timestamp,
    end: Timestamp,
    wanted: Wanted,
    /// Only the newest sample (see [`TenantDb::select_series`]).
    newest: bool,
}

impl Span {
    /// The chunks of `refs` to read (reading skips those outside the range): all, or for the
    /// newest sample only the last one overlapping the range when the chunks follow each
    /// other in time (an earlier one ends before it begins, so holds no newer sample).
    fn chunks(self, refs: &[ChunkRef]) -> &[ChunkRef] {
        if self.newest && refs.windows(2).all(|w| w[0].max_t < w[1].min_t) {
            let to = refs.partition_point(|c| c.min_t <= self.end);
            match to.checked_sub(1) {
                Some(last) if refs[last].max_t >= self.start => &refs[last..to],
                _ => &[],
            }
        } else {
            refs
        }
    }
}

impl SeriesStream {
    /// Reads the stream's start timestamps rather than its samples: per series, each
    /// source's change points expanded against that source's samples, merged per sample as
    /// the samples are (the first source's wins where they overlap), and those without a
    /// start left out. Series none of whose sources has change points are skipped unread.
    fn start_timestamps(mut self) -> Result<Vec<SeriesStartTimestamps>, TsdbError> {
        let (start, end) = (self.span.start, self.span.end);
        let mut out = Vec::new();
        for group in 0..self.series.len() {
            let keys = self.series.group(group);
            let has_points = keys.iter().any(|&key| match key {
                SeriesKey::Block { block, series } => !self.found.block_series(block, series).1.starts.is_empty(),
                SeriesKey::Head(i) => self.found.snapshots[i as usize].as_ref().is_some_and(|s| !s.starts().is_empty()),
            });
            if !has_points {
                continue;
            }
            let mut pairs = Vec::new();
            for &key in keys {
                let (floats, histograms, points) = match key {
                    SeriesKey::Block { block, series } => {
                        let last = &mut self.frames[block as usize];
                        let (block, series) = self.found.block_series(block, series);
                        let floats = block.read_chunks::<Floats>(&series.chunks, start, end, last)?;
                        let histograms = block.read_chunks::<Histograms>(&series.histogram_chunks, start, end, last)?;
                        (floats, histograms, series.starts.clone())
                    }
                    SeriesKey::Head(i) => match self.found.snapshots[i as usize].take() {
                        Some(snapshot) => {
                            (snapshot.samples(start, end), snapshot.histograms(start, end), snapshot.starts().to_vec())
                        }
                        None => continue,
                    },
                };
                let mut times: Vec<i64> = floats.iter().map(|s| s.t).chain(histograms.iter().map(|h| h.t)).collect();
                times.sort_unstable();
                starts::expand(&points, times, &mut pairs);
            }
            let mut pairs = starts::merge_sources(pairs);
            pairs.retain(|p| p.1 != 0);
            if !pairs.is_empty() {
                let labels = self.series.group(group)[0].labels(&self.found);
                out.push(SeriesStartTimestamps { labels, starts: pairs });
            }
        }
        Ok(out)
    }
}

impl Iterator for SeriesStream {
    type Item = Result<SeriesSamples, TsdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.series.len() {
            let group = self.next;
            self.next += 1;
            match self.decode(group) {
                Ok(None) => continue,
                Ok(Some(series)) => return Some(Ok(series)),
                Err(e) => {
                    self.next = self.series.len();
                    self.found.snapshots.clear();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Appends `more` to `out`, reusing `more`'s allocation when `out` is empty (the common
/// case: one source).
fn append<T>(out: &mut Vec<T>, mut more: Vec<T>) {
    if out.is_empty() {
        std::mem::swap(out, &mut more);
    } else {
        out.append(&mut more);
    }
}

/// Sorts by `time` and keeps the first sample of each timestamp. Sources are in time order,
/// so a series is usually already strictly increasing and left alone; overlapping blocks
/// (out-of-order data) need the sort.
fn sort_unique<T>(samples: &mut Vec<T>, time: fn(&T) -> i64) {
    if !samples.windows(2).all(|w| time(&w[0]) < time(&w[1])) {
        samples.sort_by_key(time);
        samples.dedup_by_key(|s| time(s));
    }
}

/// Series merged from sorted runs, flat: group `i` (one series) is
/// `keys[ends[i - 1]..ends[i]]`, the keys of every run holding it in run order. Flat rather
/// than one `Vec` per series: per-series vectors, grown and moved at every merge level, were
/// most of the allocations (and all of the `memmove`) of a select's setup.
#[derive(Clone)]
struct Merged<K> {
    keys: Vec<K>,
    ends: Vec<u32>,
}

impl<K: Copy> Merged<K> {
    fn run(keys: Vec<K>) -> Merged<K> {
        let ends = (1..=keys.len() as u32).collect();
        Merged { keys, ends }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn group(&self, i: usize) -> &[K] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.keys[start..self.ends[i] as usize]
    }
}

/// Every matching series of `found`'s blocks, merged by labels (time ranges are left to the
/// reads). Every source yields its series in label order (a block's series ids follow its
/// labels; the head's are sorted by their compact form), so the sources merge pairwise,
/// comparing label sets where each source holds them: owned `Labels` are built only by the
/// stream, once per series it returns. Building them here, once per source, took most of
/// the call: selecting 6.7k of 10k series x 6 labels over 27h (4 blocks and the head,
/// release build, best of 7) took 67-98 ms to call and 135-176 ms to call and drain;
/// borrowed, 28-30 ms and 99-106 ms. Keys are indexes into the (cached) select results the
/// stream holds, so nothing per series is copied or reference-counted here.
fn merge_blocks(found: &Found) -> Merged<SeriesKey> {
    let runs = (found.block_series.iter().enumerate())
        .map(|(b, series)| (0..series.len() as u32).map(|i| SeriesKey::Block { block: b as u32, series: i }).collect())
        .collect();
    merge_all_label_runs(runs, |a, b| a.pairs(found).cmp(b.pairs(found)))
}

/// Merges lists of series sorted by their keys' order `cmp`, keeping each series' keys in
/// list order (a series' first key is its first list's). Pairs merge level by level, so a
/// series read from many blocks (a backfill not yet compacted) costs log(lists) merges
/// rather than one per list.
fn merge_all_label_runs<K: Copy>(runs: Vec<Vec<K>>, cmp: impl Fn(&K, &K) -> std::cmp::Ordering) -> Merged<K> {
    let mut runs: Vec<Merged<K>> = runs.into_iter().map(Merged::run).collect();
    while runs.len() > 1 {
        let mut next = Vec::with_capacity(runs.len().div_ceil(2));
        let mut pairs = runs.into_iter();
        while let Some(a) = pairs.next() {
            next.push(match pairs.next() {
                Some(b) => merge_label_runs(a, b, &cmp),
                None => a,
            });
        }
        runs = next;
    }
    runs.pop().unwrap_or(Merged { keys: Vec::new(), ends: Vec::new() })
}

/// Merges two sorted [`Merged`]; a series in both gets `a`'s keys, then `b`'s.
fn merge_label_runs<K: Copy>(a: Merged<K>, b: Merged<K>, cmp: &impl Fn(&K, &K) -> std::cmp::Ordering) -> Merged<K> {
    if a.len() == 0 {
        return b;
    }
    if b.len() == 0 {
        return a;
    }
    let mut out = Merged {
        keys: Vec::with_capacity(a.keys.len() + b.keys.len()),
        ends: Vec::with_capacity(a.len().max(b.len())),
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (i < a.len(), j < b.len()) {
            (true, true) => cmp(&a.group(i)[0], &b.group(j)[0]),
            (true, false) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        if order.is_le() {
            out.keys.extend_from_slice(a.group(i));
            i += 1;
        }
        if order.is_ge() {
            out.keys.extend_from_slice(b.group(j));
            j += 1;
        }
        out.ends.push(out.keys.len() as u32);
    }
    out
}

/// Blocks are kept in time order: retention deletes from the front, compaction plans over
/// neighbours.
fn sort_blocks(blocks: &mut [Arc<Block>]) {
    blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
}

fn visit_block_series(
    block: &Block,
    matchers: &[Matcher],
    start: Timestamp,
    end: Timestamp,
    visit: &mut dyn FnMut(&Labels),
) -> Result<(), TsdbError> {
    for series in block.select(matchers)?.iter().filter(|s| s.overlaps(start, end)) {
        visit(&block.labels(&series.pairs));
    }
    Ok(())
}

fn record_rejection(summary: &mut AppendSummary, outcome: Outcome, series: &PackedSeries<'_>, t: Timestamp) {
    let what = match outcome {
        Outcome::Appended | Outcome::Duplicate => return,
        Outcome::OutOfOrder => {
            summary.out_of_order += 1;
            "out of order sample"
        }
        Outcome::TooOld => {
            summary.too_old += 1;
            "out of bounds: sample is too old for the head and older data is already persisted"
        }
        Outcome::DuplicateDifferentValue => {
            summary.duplicate_with_different_value += 1;
            "duplicate sample for timestamp"
        }
    };
    if summary.first_rejection.is_none() {
        summary.first_rejection = Some(format!("{what}: series {}, timestamp {t}", series.to_labels()));
    }
}

/// Opens every block directory, removing leftovers of interrupted writes and compactions.
fn load_blocks(dir: &Path, report: &mut TenantOpen) -> Result<Vec<Arc<Block>>, TsdbError> {
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir).map_err(TsdbError::io(dir))? {
        let path = entry.map_err(TsdbError::io(dir))?.path();
        if !path.is_dir() {
            continue;
        }
        if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            fs::remove_dir_all(&path).map_err(TsdbError::io(&path))?;
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                tracing::warn!(block = %path.display(), error = %e, "skipping unreadable block");
                report.blocks_skipped.push((path, e.to_string()));
            }
        }
    }
    // A crash between writing a compacted block and deleting its parents leaves both.
    let superseded: BTreeSet<String> = blocks.iter().flat_map(|b| b.meta.compaction.parents.iter().cloned()).collect();
    let (stale, mut live): (Vec<_>, Vec<_>) = blocks.into_iter().partition(|b| superseded.contains(b.id()));
    for b in stale {
        fs::remove_dir_all(&b.dir).map_err(TsdbError::io(&b.dir))?;
    }
    sort_blocks(&mut live);
    Ok(live)
}

/// Applies WAL records to a head being rebuilt.
struct Replay<'a> {
    head: &'a Head,
    /// Samples whose series record comes later in the log (concurrent appenders may log
    /// samples of a series before its creator logs the series).
    pending: HashMap<u64, Vec<Sample>>,
    pending_histograms: HashMap<u64, Vec<HistogramSample>>,
    pending_starts: HashMap<u64, Vec<(i64, i64)>>,
    /// Logged ids that resolved to a series logged under another id (a series dropped from
    /// the head and created again before a checkpoint replaced the log).
    aliases: HashMap<u64, Arc<MemSeries>>,
    exemplars: Vec<(Arc<MemSeries>, Exemplar)>,
    metadata: HashMap<String, MetricMetadata>,
}

impl Replay<'_> {
    fn apply_histogram_chunk(&mut self, id: u64, bytes: &[u8]) {
        let mut samples = Vec::new();
        if decode_histogram_chunk(bytes, &mut samples).is_err() {
            tracing::warn!(series = id, "skipping undecodable histogram chunk in wal checkpoint");
            return;
        }
        match self.series(id) {
            Some(series) => self.add_histograms(&series, samples),
            None => self.pending_histograms.entry(id).or_default().extend(samples),
        }
    }

    fn series(&self, id: u64) -> Option<Arc<MemSeries>> {
        self.head.by_id(id).or_else(|| self.aliases.get(&id).cloned())
    }

    fn add_samples(&self, series: &MemSeries, samples: impl IntoIterator<Item = Sample>) {
        let boundary = self.head.boundary();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut data = series.data.lock();
        for s in samples.into_iter().filter(|s| s.t >= boundary) {
            data.append_replayed(s, self.head.block_range());
            min_t = min_t.min(s.t);
            max_t = max_t.max(s.t);
        }
        drop(data);
        self.head.observe_times(min_t, max_t);
    }

    fn add_histograms(&self, series: &MemSeries, samples: impl IntoIterator<Item = HistogramSample>) {
        self.head.note_histograms();
        let boundary = self.head.boundary();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut data = series.data.lock();
        for s in samples.into_iter().filter(|s| s.t >= boundary) {
            data.append_replayed_histogram(&s, self.head.block_range());
            min_t = min_t.min(s.t);
            max_t = max_t.max(s.t);
        }
        drop(data);
        self.head.observe_times(min_t, max_t);
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Series(list) => {
                for (id, labels) in list {
                    let series = self.head.create_with_id(id, labels);
                    if series.id != id {
                        self.aliases.insert(id, series.clone());
                    }
                    if let Some(samples) = self.pending.remove(&id) {
                        self.add_samples(&series, samples);
                    }
                    if let Some(samples) = self.pending_histograms.remove(&id) {
                        self.add_histograms(&series, samples);
                    }
                    if let Some(points) = self.pending_starts.remove(&id) {
                        let mut data = series.data.lock();
                        for (t, start) in points {
                            data.put_start(t, start);
                        }
                    }
                }
            }
            Record::Samples(list) => {
                for (id, s) in list {
                    match self.series(id) {
                        Some(series) => self.add_samples(&series, [s]),
                        None => self.pending.entry(id).or_default().push(s),
                    }
                }
            }
            Record::Histograms(list) => {
                for (id, s) in list {
                    match self.series(id) {
                        Some(series) => self.add_histograms(&series, [s]),
                        None => self.pending_histograms.entry(id).or_default().push(s),
                    }
                }
            }
            Record::Chunks(list) => {
                for (id, bytes) in list {
                    if bytes.first() == Some(&(ChunkEncoding::FloatHistogram as u8)) {
                        self.apply_histogram_chunk(id, &bytes);
                        continue;
                    }
                    let mut samples = Vec::new();
                    if osprey_codec::decode_chunk(&bytes, &mut samples).is_err() {
                        tracing::warn!(series = id, "skipping undecodable chunk in wal checkpoint");
                        continue;
                    }
                    match self.series(id) {
                        Some(series) => self.add_samples(&series, samples),
                        None => self.pending.entry(id).or_default().extend(samples),
                    }
                }
            }
            Record::Starts(list) => {
                for (id, t, start) in list {
                    match self.series(id) {
                        Some(series) => series.data.lock().put_start(t, start),
                        None => self.pending_starts.entry(id).or_default().push((t, start)),
                    }
                }
            }
            Record::Exemplars(list) => {
                for (id, e) in list {
                    if let Some(series) = self.series(id) {
                        self.exemplars.push((series, e));
                    }
                }
            }
            Record::Metadata(list) => {
                for m in list {
                    self.metadata.insert(m.metric_family_name.clone(), m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact_labels::CompactLabels;
    use proptest::prelude::*;

    /// A label set as a block holds it: a symbol table (in reverse string order, so that
    /// symbol ids sort opposite to their strings) and (name, value) references into it.
    fn as_symbols(labels: &Labels) -> (Vec<String>, Vec<(u32, u32)>) {
        let mut symbols: Vec<String> = labels.iter().flat_map(|l| [l.name.clone(), l.value.clone()]).collect();
        symbols.sort_unstable_by(|a, b| b.cmp(a));
        symbols.dedup();
        let id = |s: &str| symbols.iter().position(|x| x == s).unwrap_or_default() as u32;
        let pairs = labels.iter().map(|l| (id(&l.name), id(&l.value))).collect();
        (symbols, pairs)
    }

    /// Pairs of label sets, often close: one a prefix of the other, the same names with one
    /// value changed, or one label more.
    fn label_set_pairs() -> impl Strategy<Value = (Labels, Labels)> {
        let set = || proptest::collection::vec(("[a-c]{1,3}", "[a-z0-9é]{1,4}|x{120,140}"), 0..5);
        (set(), set(), 0..4usize, any::<prop::sample::Index>(), "[a-z]{1,3}").prop_map(|(a, b, how, i, v)| {
            let a = Labels::from_pairs(a);
            let b = match how {
                0 => Labels::from_pairs(b),
                1 => Labels::from_sorted(a.as_slice()[..i.index(a.len() + 1)].to_vec()),
                2 if !a.is_empty() => {
                    let mut labels = a.clone().into_vec();
                    labels[i.index(a.len())].value = v;
                    Labels::from_sorted(labels)
                }
                _ => {
                    let mut builder = a.to_builder();
                    builder.set(format!("{}z", a.iter().last().map_or("", |l| l.name.as_str())), v);
                    builder.build()
                }
            };
            (a, b)
        })
    }

    fn symbols<'a>(symbols: &'a [String], pairs: &'a [(u32, u32)]) -> LabelPairs<'a> {
        LabelPairs::Symbols { symbols, pairs: pairs.iter() }
    }

    fn compact(labels: &CompactLabels) -> LabelPairs<'_> {
        LabelPairs::Compact(labels.raw_pairs())
    }

    proptest! {
        #[test]
        fn borrowed_label_pairs_compare_as_labels_do((a, b) in label_set_pairs()) {
            let ((sa, pa), (sb, pb)) = (as_symbols(&a), as_symbols(&b));
            let (ca, cb) = (CompactLabels::new(&a), CompactLabels::new(&b));
            let want = a.cmp(&b);
            prop_assert_eq!(symbols(&sa, &pa).cmp(symbols(&sb, &pb)), want);
            prop_assert_eq!(symbols(&sa, &pa).cmp(compact(&cb)), want);
            prop_assert_eq!(compact(&ca).cmp(symbols(&sb, &pb)), want);
            prop_assert_eq!(compact(&ca).cmp(compact(&cb)), want);
        }
    }

    #[test]
    fn many_sorted_runs_merge_into_one_keeping_source_order() {
        // Run k holds series "a" and, for odd k, "b"; keys name their series and run.
        let runs: Vec<Vec<(&str, i32)>> =
            (0..5).map(|k| if k % 2 == 1 { vec![("a", k), ("b", k)] } else { vec![("a", k)] }).collect();
        let merged = merge_all_label_runs(runs, |x, y| x.0.cmp(y.0));
        assert_eq!(merged.len(), 2);
        assert_eq!(merged.group(0), [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("a", 4)]);
        assert_eq!(merged.group(1), [("b", 1), ("b", 3)]);
        let one_sided = merge_all_label_runs(vec![vec![("a", 0)], vec![("b", 1), ("c", 1)]], |x, y| x.0.cmp(y.0));
        assert_eq!((0..3).map(|i| one_sided.group(i)[0].0).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(merge_all_label_runs::<(&str, i32)>(Vec::new(), |x, y| x.0.cmp(y.0)).len(), 0);
    }
}
