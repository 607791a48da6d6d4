//! The in-memory head of one tenant: series in lock-striped maps (by label hash for
//! appenders, by id for WAL replay and queries), the inverted index, and the head's time
//! bounds. Sample storage per series lives in `series.rs`.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use osprey_model::{Labels, Matcher};
use parking_lot::RwLock;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::compact_labels::CompactLabels;
use crate::postings::Postings;
use crate::select_cache::SelectCache;
use crate::series::{AppendLimits, MemSeries};

/// Stripes of the series maps. Appenders of different series rarely share a lock.
const STRIPES: usize = 64;

/// Bounds of [`Head::select_sorted`]'s cache: matcher sets, and series references over all
/// of them (8 bytes each, so at most 8 MiB of pointers).
const SELECT_CACHE_ENTRIES: usize = 64;
const SELECT_CACHE_SERIES: usize = 1 << 20;

/// Matching head series in label order, as cached: the head generation they were read at.
type SortedSeries = (u64, Arc<[Arc<MemSeries>]>);

/// The maps are keyed by label hashes (well mixed) or by series ids (sequential, and within
/// one stripe all equal in their low bits). The hash table takes its bucket from the low bits
/// and its tag from the high ones, so ids are mixed once (multiply, fold the high half down):
/// kept as they are, a stripe's ids would share buckets and tags and every lookup would scan.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
/// Lock-striped maps: a key lives in stripe `key % STRIPES`.
type Striped<V> = Box<[RwLock<IdMap<V>>]>;

/// Series by label hash. Almost every hash has one series, kept directly in `first` so that a
/// lookup is one probe and one label comparison; further series with the same hash go to
/// `collisions`.
#[derive(Default)]
struct HashStripe {
    first: IdMap<Arc<MemSeries>>,
    collisions: IdMap<Vec<Arc<MemSeries>>>,
}

impl HashStripe {
    /// `key` is the label set's [`CompactLabels`] encoding.
    fn find(&self, hash: u64, key: &[u8]) -> Option<&Arc<MemSeries>> {
        match self.first.get(&hash) {
            Some(s) if s.labels.as_bytes() == key => Some(s),
            Some(_) if !self.collisions.is_empty() => {
                self.collisions.get(&hash)?.iter().find(|s| s.labels.as_bytes() == key)
            }
            _ => None,
        }
    }

    fn insert(&mut self, hash: u64, series: Arc<MemSeries>) {
        if let Some(series) = self.first.insert(hash, series) {
            // Keep the earlier series first; the new one is the collision.
            let newer = self.first.insert(hash, series);
            self.collisions.entry(hash).or_default().extend(newer);
        }
    }

    fn remove(&mut self, hash: u64, id: u64) {
        if self.first.get(&hash).is_some_and(|s| s.id == id) {
            self.first.remove(&hash);
            if let Some(list) = self.collisions.get_mut(&hash) {
                if let Some(promoted) = list.pop() {
                    self.first.insert(hash, promoted);
                }
                if list.is_empty() {
                    self.collisions.remove(&hash);
                }
            }
        } else if let Some(list) = self.collisions.get_mut(&hash) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                self.collisions.remove(&hash);
            }
        }
    }
}

pub(crate) struct Head {
    /// Random per process, so that label sets chosen to collide cannot be precomputed.
    hash_seed: u64,
    by_hash: Box<[RwLock<HashStripe>]>,
    by_id: Striped<Arc<MemSeries>>,
    postings: RwLock<Postings>,
    next_id: AtomicU64,
    active: AtomicUsize,
    /// Samples older than this were persisted to blocks; older appends are out of bounds.
    boundary: AtomicI64,
    /// Held shared by appenders while they store samples, exclusively to raise `boundary`:
    /// once raised, no appender still holds limits computed from the old boundary.
    append_gate: RwLock<()>,
    min_t: AtomicI64,
    max_t: AtomicI64,
    block_range: i64,
    ooo_window: i64,
    /// Set once any series received a histogram (never cleared while open: clearing could
    /// race with an appender), so histogram queries of float-only tenants skip the head.
    holds_histograms: AtomicBool,
    /// Bumped after a series is created or removed (once it is in, or out of, every map and
    /// the postings): a select read at an older generation may miss or hold series.
    generation: AtomicU64,
    select_cache: SelectCache<SortedSeries>,
}

fn stripe(key: u64) -> usize {
    // Ids are sequential and hashes well mixed: the low bits spread both.
    (key as usize) & (STRIPES - 1)
}

impl Head {
    pub(crate) fn new(block_range: i64, ooo_window: i64) -> Head {
        Head {
            hash_seed: RandomState::new().hash_one(0x6f73_7072_6579_u64),
            by_hash: (0..STRIPES).map(|_| RwLock::new(HashStripe::default())).collect(),
            by_id: (0..STRIPES).map(|_| RwLock::new(IdMap::default())).collect(),
            postings: RwLock::new(Postings::default()),
            next_id: AtomicU64::new(1),
            active: AtomicUsize::new(0),
            boundary: AtomicI64::new(i64::MIN),
            append_gate: RwLock::new(()),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            block_range,
            ooo_window,
            holds_histograms: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            select_cache: SelectCache::new(SELECT_CACHE_ENTRIES, SELECT_CACHE_SERIES, None),
        }
    }

    /// Called before a histogram is stored.
    pub(crate) fn note_histograms(&self) {
        self.holds_histograms.store(true, Ordering::Release);
    }

    pub(crate) fn holds_histograms(&self) -> bool {
        self.holds_histograms.load(Ordering::Acquire)
    }

    /// The hash of a label set's [`CompactLabels`] encoding. Seeded xxh3 over the encoded
    /// bytes replaced SipHash over `Labels` (one hasher call per string, ~6% of the server's
    /// CPU in a profile of the remote-write benchmark, where the lookup, `HashStripe::find`
    /// and its per-string `memcmp` calls, took another ~16%: now one `memcmp` per lookup).
    /// Measured: `TenantDb::append` 4,626 -> 3,615 instructions per sample (callgrind,
    /// `examples/ingest_bench 20000 20 1`); server CPU while receiving 4M samples of the
    /// remote-write benchmark (100k series x 40 samples) 8.0-8.4 -> 7.0-7.1 CPU seconds.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, self.hash_seed)
    }

    pub(crate) fn lookup(&self, hash: u64, key: &[u8]) -> Option<Arc<MemSeries>> {
        self.by_hash[stripe(hash)].read().find(hash, key).cloned()
    }

    /// Returns the series with these labels, creating it (with a fresh id) when absent; the
    /// flag says whether it was created.
    pub(crate) fn get_or_create(&self, hash: u64, key: &[u8]) -> (Arc<MemSeries>, bool) {
        let mut map = self.by_hash[stripe(hash)].write();
        if let Some(s) = map.find(hash, key) {
            return (s.clone(), false);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let series = Arc::new(MemSeries::new(id, hash, CompactLabels::from_encoded(key)));
        map.insert(hash, series.clone());
        drop(map);
        self.register(&series);
        (series, true)
    }

    /// Recreates a series read from the WAL under its logged id (idempotent).
    pub(crate) fn create_with_id(&self, id: u64, labels: Labels) -> Arc<MemSeries> {
        if let Some(s) = self.by_id(id) {
            return s;
        }
        let labels = CompactLabels::new(&labels);
        let hash = self.hash(labels.as_bytes());
        let mut map = self.by_hash[stripe(hash)].write();
        if let Some(s) = map.find(hash, labels.as_bytes()) {
            return s.clone();
        }
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
        let series = Arc::new(MemSeries::new(id, hash, labels));
        map.insert(hash, series.clone());
        drop(map);
        self.register(&series);
        series
    }

    fn register(&self, series: &Arc<MemSeries>) {
        self.by_id[stripe(series.id)].write().insert(series.id, series.clone());
        self.postings.write().add(series.id, series.labels.iter());
        self.active.fetch_add(1, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn by_id(&self, id: u64) -> Option<Arc<MemSeries>> {
        self.by_id[stripe(id)].read().get(&id).cloned()
    }

    /// Reserves room for `n` new series under `limit`; false when it would be exceeded.
    pub(crate) fn reserve_series(&self, n: usize, limit: Option<usize>) -> bool {
        let Some(limit) = limit else { return true };
        self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| (cur + n <= limit).then_some(cur)).is_ok()
    }

    pub(crate) fn num_series(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn limits(&self) -> AppendLimits {
        let max_t = self.max_t.load(Ordering::Acquire);
        let boundary = self.boundary.load(Ordering::Acquire);
        let behind = (self.block_range / 2).max(self.ooo_window);
        let min_valid_time = if max_t == i64::MIN { boundary } else { boundary.max(max_t.saturating_sub(behind)) };
        AppendLimits { min_valid_time, ooo_window: self.ooo_window, block_range: self.block_range }
    }

    pub(crate) fn block_range(&self) -> i64 {
        self.block_range
    }

    pub(crate) fn observe_times(&self, min_t: i64, max_t: i64) {
        if min_t <= max_t {
            self.min_t.fetch_min(min_t, Ordering::AcqRel);
            self.max_t.fetch_max(max_t, Ordering::AcqRel);
        }
    }

    /// `(min_t, max_t)` of the head's samples, or `None` when it holds none.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let (min, max) = (self.min_t.load(Ordering::Acquire), self.max_t.load(Ordering::Acquire));
        (min <= max).then_some((min, max))
    }

    pub(crate) fn boundary(&self) -> i64 {
        self.boundary.load(Ordering::Acquire)
    }

    /// From now on, samples older than `t` are refused (they are about to be persisted).
    /// Returns once every appender that might have accepted such a sample is done storing.
    pub(crate) fn raise_boundary(&self, t: i64) {
        let _exclusive = self.append_gate.write();
        self.boundary.fetch_max(t, Ordering::AcqRel);
    }

    /// Held while storing a batch's samples with limits from [`Head::limits`].
    pub(crate) fn append_gate(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.append_gate.read()
    }

    pub(crate) fn all_series(&self) -> Vec<Arc<MemSeries>> {
        let mut out = Vec::with_capacity(self.num_series());
        for stripe in self.by_id.iter() {
            out.extend(stripe.read().values().cloned());
        }
        out
    }

    /// Series matching every matcher (not yet filtered by time).
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let ids = self.postings.read().candidates(matchers);
        ids.into_iter().filter_map(|id| self.by_id(id)).filter(|s| s.labels.matches(matchers)).collect()
    }

    /// [`Head::select`] sorted by labels, cached per matcher set until a series is created
    /// or removed: dashboards repeat the same selects, and the lookups (a cache miss on each
    /// series' reference count) and the sort were a quarter of such a query.
    pub(crate) fn select_sorted(&self, matchers: &[Matcher]) -> Arc<[Arc<MemSeries>]> {
        // Read before the lookup: a series created meanwhile bumps past it, so a result that
        // may lack the series is never reused.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((cached, series)) = self.select_cache.get(matchers) {
            if cached == generation {
                return series;
            }
        }
        let mut series = self.select(matchers);
        series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let series: Arc<[Arc<MemSeries>]> = series.into();
        if self.generation.load(Ordering::Acquire) == generation {
            self.select_cache.insert(matchers, (generation, series.clone()), series.len());
        }
        series
    }

    pub(crate) fn postings(&self) -> parking_lot::RwLockReadGuard<'_, Postings> {
        self.postings.read()
    }

    /// Drops samples older than `t` and then every series left empty; recomputes the head's
    /// time bounds.
    pub(crate) fn truncate(&self, t: i64) {
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut removed = Vec::new();
        for series in self.all_series() {
            let mut data = series.data.lock();
            data.truncate_before(t, self.block_range);
            if data.is_empty() {
                data.removed = true;
                drop(data);
                self.by_hash[stripe(series.hash)].write().remove(series.hash, series.id);
                self.by_id[stripe(series.id)].write().remove(&series.id);
                removed.push(series);
                continue;
            }
            min_t = min_t.min(data.min_t().unwrap_or(i64::MAX));
            max_t = max_t.max(data.max_t());
        }
        // Out of the maps above already, so appenders create fresh series (with new ids) for
        // these labels; queries skip ids that no longer resolve.
        self.postings.write().remove_many(removed.iter().map(|s| (s.id, s.labels.iter())));
        self.active.fetch_sub(removed.len(), Ordering::Relaxed);
        if !removed.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            // Stale entries would keep the removed series alive until evicted.
            self.select_cache.clear();
        }
        self.min_t.store(min_t, Ordering::Release);
        self.max_t.fetch_max(max_t, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_one_stripe_spread_over_buckets_and_tags() {
        use std::collections::HashSet;
        let hash = |id: u64| {
            let mut h = IdHasher::default();
            h.write_u64(id);
            h.finish()
        };
        // The ids of stripe 5 share their low six bits; their hashes must not.
        let ids: Vec<u64> = (0..1024u64).map(|i| i * STRIPES as u64 + 5).collect();
        let buckets: HashSet<u64> = ids.iter().map(|&id| hash(id) & 1023).collect();
        let tags: HashSet<u64> = ids.iter().map(|&id| hash(id) >> 57).collect();
        assert!(buckets.len() > 512, "{} buckets of 1024", buckets.len());
        assert_eq!(tags.len(), 128, "every 7-bit tag is used");
    }

    #[test]
    fn hash_collisions_keep_series_apart() {
        let mut stripe = HashStripe::default();
        let (a, b) = (Labels::from_pairs([("a", "1")]), Labels::from_pairs([("a", "2")]));
        let (a, b) = (CompactLabels::new(&a), CompactLabels::new(&b));
        stripe.insert(7, Arc::new(MemSeries::new(1, 7, a.clone())));
        stripe.insert(7, Arc::new(MemSeries::new(2, 7, b.clone())));
        let (a, b) = (a.as_bytes(), b.as_bytes());
        assert_eq!(stripe.find(7, a).map(|s| s.id), Some(1));
        assert_eq!(stripe.find(7, b).map(|s| s.id), Some(2));
        stripe.remove(7, 1);
        assert!(stripe.find(7, a).is_none());
        assert_eq!(stripe.find(7, b).map(|s| s.id), Some(2));
        assert!(stripe.collisions.is_empty());
        stripe.remove(7, 2);
        assert!(stripe.first.is_empty());
    }

    #[test]
    fn cached_selects_follow_series_created_and_removed() {
        let head = Head::new(7_200_000, 0);
        let create = |v: &str| {
            let key = CompactLabels::new(&Labels::from_pairs([("__name__", "m"), ("i", v)]));
            head.get_or_create(head.hash(key.as_bytes()), key.as_bytes()).0
        };
        let matchers = [Matcher::equal("__name__", "m")];
        let names = |series: &[Arc<MemSeries>]| series.iter().map(|s| s.labels.to_labels()).collect::<Vec<_>>();
        let uncached = || {
            let mut series = head.select(&matchers);
            series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
            names(&series)
        };
        for v in ["c", "a", "b"] {
            create(v);
        }
        let first = head.select_sorted(&matchers);
        assert_eq!(names(&first), uncached());
        assert_eq!(first.len(), 3);
        assert!(Arc::ptr_eq(&first, &head.select_sorted(&matchers)), "a repeated select is a cache hit");
        // Looking an existing series up creates nothing: still a hit.
        create("a");
        assert!(Arc::ptr_eq(&first, &head.select_sorted(&matchers)));

        create("0");
        let grown = head.select_sorted(&matchers);
        assert_eq!((names(&grown), grown.len()), (uncached(), 4));

        // Series without samples are dropped by truncation.
        head.truncate(0);
        assert!(head.select_sorted(&matchers).is_empty());
        assert_eq!(head.select_cache.len(), 1, "only the entry read after truncation");
        create("d");
        let after = head.select_sorted(&matchers);
        assert_eq!((names(&after), after.len()), (uncached(), 1));
    }
}
