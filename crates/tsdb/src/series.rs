//! One in-memory series: per sample kind (floats, native histograms) sealed compressed
//! chunks, the open (appendable) chunk and a small sorted buffer of out-of-order samples,
//! merged into chunks when it grows.
//!
//! A series may hold floats and histograms at different timestamps, as in Prometheus: the
//! series' newest timestamp (over both kinds) decides what is out of order, and a timestamp
//! holds one kind only. Histogram storage is boxed and absent until a series receives one,
//! so float-only series pay one pointer and float appends one branch (`ingest_bench`, 20k
//! series x 240 scrapes, 1 thread, 5 alternating runs each on a loaded 2-core box: 848k
//! samples per CPU second before histogram support, 851k after, run-to-run noise +-15%).

use osprey_codec::{
    decode_chunk, decode_histogram_chunk, decode_xor_tail, encode_chunk, encode_histogram_chunk, CodecError,
    HistogramAppender, XorAppender, XorTail,
};
use osprey_model::{FloatHistogram, HistogramSample, Sample};

use std::sync::Arc;

use crate::compact_labels::CompactLabels;
use crate::starts::StartRuns;
use parking_lot::Mutex;

/// Samples per head chunk: as Prometheus, bounds the cost of decoding a chunk for a query.
pub(crate) const HEAD_CHUNK_SAMPLES: usize = 120;
/// Out-of-order samples buffered per series before they are merged into the chunks.
const OOO_MERGE_AT: usize = 64;

pub(crate) struct MemSeries {
    pub(crate) id: u64,
    /// The head's hash of the labels (the key of its stripe map).
    pub(crate) hash: u64,
    pub(crate) labels: CompactLabels,
    pub(crate) data: Mutex<SeriesData>,
}

/// A kind of sample and its chunk encoding.
pub(crate) trait Kind {
    type Sample: Clone;
    type Appender: Default;
    fn t(s: &Self::Sample) -> i64;
    /// Whether two samples are the same bit for bit (a harmless duplicate).
    fn same(a: &Self::Sample, b: &Self::Sample) -> bool;
    fn appender_len(a: &Self::Appender) -> usize;
    fn push(a: &mut Self::Appender, s: &Self::Sample);
    fn bytes(a: &Self::Appender) -> &[u8];
    fn seal(a: Self::Appender) -> Vec<u8>;
    fn encode(samples: &[Self::Sample]) -> Vec<u8>;
    fn decode(bytes: &[u8], out: &mut Vec<Self::Sample>) -> Result<(), CodecError>;
    /// The newest samples of an open chunk, copied from a point where decoding can resume
    /// (see [`XorAppender::tail_since`]); histogram chunks have none.
    type Tail;
    fn tail_since(a: &Self::Appender, t: i64) -> Option<Self::Tail>;
    fn decode_tail(tail: &Self::Tail, out: &mut Vec<Self::Sample>) -> Result<(), CodecError>;
}

/// Float samples in XOR/decimal chunks.
pub(crate) enum Floats {}
/// Native-histogram samples in histogram chunks.
pub(crate) enum Histograms {}

impl Kind for Floats {
    type Sample = Sample;
    type Appender = XorAppender;
    fn t(s: &Sample) -> i64 {
        s.t
    }
    fn same(a: &Sample, b: &Sample) -> bool {
        a.v.to_bits() == b.v.to_bits()
    }
    fn appender_len(a: &XorAppender) -> usize {
        a.len()
    }
    fn push(a: &mut XorAppender, s: &Sample) {
        a.append(s.t, s.v);
    }
    fn bytes(a: &XorAppender) -> &[u8] {
        a.bytes()
    }
    fn seal(a: XorAppender) -> Vec<u8> {
        a.finish()
    }
    fn encode(samples: &[Sample]) -> Vec<u8> {
        encode_chunk(samples)
    }
    fn decode(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), CodecError> {
        decode_chunk(bytes, out)
    }
    type Tail = XorTail;
    fn tail_since(a: &XorAppender, t: i64) -> Option<XorTail> {
        a.tail_since(t)
    }
    fn decode_tail(tail: &XorTail, out: &mut Vec<Sample>) -> Result<(), CodecError> {
        decode_xor_tail(tail, out)
    }
}

impl Kind for Histograms {
    type Sample = HistogramSample;
    type Appender = HistogramAppender;
    fn t(s: &HistogramSample) -> i64 {
        s.t
    }
    fn same(a: &HistogramSample, b: &HistogramSample) -> bool {
        same_histogram(&a.h, &b.h)
    }
    fn appender_len(a: &HistogramAppender) -> usize {
        a.len()
    }
    fn push(a: &mut HistogramAppender, s: &HistogramSample) {
        a.append(s.t, &s.h);
    }
    fn bytes(a: &HistogramAppender) -> &[u8] {
        a.bytes()
    }
    fn seal(a: HistogramAppender) -> Vec<u8> {
        a.finish()
    }
    fn encode(samples: &[HistogramSample]) -> Vec<u8> {
        encode_histogram_chunk(samples)
    }
    fn decode(bytes: &[u8], out: &mut Vec<HistogramSample>) -> Result<(), CodecError> {
        decode_histogram_chunk(bytes, out)
    }
    type Tail = std::convert::Infallible;
    fn tail_since(_: &HistogramAppender, _: i64) -> Option<Self::Tail> {
        None
    }
    fn decode_tail(tail: &Self::Tail, _: &mut Vec<HistogramSample>) -> Result<(), CodecError> {
        match *tail {}
    }
}

/// Bit-for-bit equality of two histograms (so NaNs equal themselves, `0.0` differs from `-0.0`).
pub(crate) fn same_histogram(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let f = |x: f64, y: f64| x.to_bits() == y.to_bits();
    let buckets = |x: &[(i32, f64)], y: &[(i32, f64)]| {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.0 == q.0 && f(p.1, q.1))
    };
    a.counter_reset_hint == b.counter_reset_hint
        && a.schema == b.schema
        && f(a.zero_threshold, b.zero_threshold)
        && f(a.zero_count, b.zero_count)
        && f(a.count, b.count)
        && f(a.sum, b.sum)
        && buckets(&a.positive, &b.positive)
        && buckets(&a.negative, &b.negative)
        && a.custom_values.len() == b.custom_values.len()
        && a.custom_values.iter().zip(&b.custom_values).all(|(x, y)| f(*x, *y))
}

/// A full head chunk. The bytes are shared so that a query can hold on to them after the
/// series lock is released (see [`ChunksSnapshot`]). The reference counts cost 16 bytes per
/// chunk: `ingest_bench 2000 480 1` stores 2.98 bytes/sample in head chunks, ~358 bytes per
/// 120-sample chunk, so 4.5% on top of sealed chunk bytes (48 bytes per series for a 2h head
/// at 15s scrapes, whose open chunk is not shared).
#[derive(Clone)]
struct SealedChunk {
    min_t: i64,
    max_t: i64,
    bytes: Arc<[u8]>,
}

impl SealedChunk {
    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_t <= maxt && self.max_t >= mint
    }

    fn as_slice(&self) -> (i64, i64, &[u8]) {
        (self.min_t, self.max_t, &self.bytes)
    }
}

/// Which kinds of samples a read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) floats: bool,
    pub(crate) histograms: bool,
    /// The start timestamps' change points too (which need both kinds' timestamps).
    pub(crate) starts: bool,
}

impl Wanted {
    pub(crate) const FLOATS: Wanted = Wanted { floats: true, histograms: false, starts: false };
    pub(crate) const HISTOGRAMS: Wanted = Wanted { floats: false, histograms: true, starts: false };
    pub(crate) const BOTH: Wanted = Wanted { floats: true, histograms: true, starts: false };
    pub(crate) const STARTS: Wanted = Wanted { floats: true, histograms: true, starts: true };
}

/// The samples of one kind of one series.
pub(crate) struct Chunks<K: Kind> {
    sealed: Vec<SealedChunk>,
    open: K::Appender,
    open_min_t: i64,
    /// Newest timestamp (of the open chunk); `i64::MIN` while empty.
    max_t: i64,
    /// Sorted, unique timestamps, all older than `max_t` and absent from the chunks.
    ooo: Vec<K::Sample>,
}

impl<K: Kind> Chunks<K> {
    fn new() -> Chunks<K> {
        Chunks {
            sealed: Vec::new(),
            open: K::Appender::default(),
            open_min_t: i64::MIN,
            max_t: i64::MIN,
            ooo: Vec::new(),
        }
    }

    fn open_is_empty(&self) -> bool {
        K::appender_len(&self.open) == 0
    }

    fn is_empty(&self) -> bool {
        self.max_t == i64::MIN
    }

    fn min_t(&self) -> Option<i64> {
        let chunk_min = self.sealed.first().map(|c| c.min_t).or((!self.open_is_empty()).then_some(self.open_min_t));
        match (chunk_min, self.ooo.first()) {
            (Some(a), Some(b)) => Some(a.min(K::t(b))),
            (a, b) => a.or(b.map(K::t)),
        }
    }

    fn num_chunks(&self) -> usize {
        self.sealed.len() + usize::from(!self.open_is_empty()) + usize::from(!self.ooo.is_empty())
    }

    fn chunk_bytes(&self) -> usize {
        self.sealed.iter().map(|c| c.bytes.len()).sum::<usize>()
            + K::bytes(&self.open).len()
            + self.ooo.len() * std::mem::size_of::<K::Sample>()
    }

    /// Appends a sample newer than every stored one. A chunk is sealed when full or when the
    /// sample crosses a block boundary, so head truncation rarely splits chunks.
    fn append_newest(&mut self, s: &K::Sample, block_range: i64) {
        let t = K::t(s);
        let open_len = K::appender_len(&self.open);
        let crosses = open_len > 0 && t.div_euclid(block_range) != self.open_min_t.div_euclid(block_range);
        if open_len >= HEAD_CHUNK_SAMPLES || crosses {
            self.seal();
        }
        if self.open_is_empty() {
            self.open_min_t = t;
        }
        K::push(&mut self.open, s);
        self.max_t = t;
    }

    fn seal(&mut self) {
        if self.open_is_empty() {
            return;
        }
        let open = std::mem::take(&mut self.open);
        self.sealed.push(SealedChunk { min_t: self.open_min_t, max_t: self.max_t, bytes: K::seal(open).into() });
    }

    /// The stored sample at `t`, if any (decodes the one chunk that may hold it).
    fn at(&self, t: i64) -> Option<K::Sample> {
        if let Ok(i) = self.ooo.binary_search_by_key(&t, K::t) {
            return Some(self.ooo[i].clone());
        }
        if t > self.max_t {
            return None;
        }
        let bytes = if !self.open_is_empty() && t >= self.open_min_t {
            K::bytes(&self.open)
        } else {
            let c = self.sealed.iter().find(|c| c.min_t <= t && t <= c.max_t)?;
            &c.bytes
        };
        let mut out = Vec::new();
        K::decode(bytes, &mut out).ok()?;
        out.binary_search_by_key(&t, K::t).ok().map(|i| out[i].clone())
    }

    /// Stores an accepted sample with no sample of this kind at its timestamp.
    fn insert(&mut self, s: &K::Sample, block_range: i64) {
        if K::t(s) > self.max_t {
            self.append_newest(s, block_range);
        } else {
            self.insert_ooo(s.clone(), block_range);
        }
    }

    /// Stores a sample read back from the WAL or a checkpoint: it was accepted once, so only
    /// exact repeats (a sample logged twice around a checkpoint) are skipped.
    fn append_replayed(&mut self, s: &K::Sample, block_range: i64) {
        let t = K::t(s);
        if t > self.max_t {
            self.append_newest(s, block_range);
        } else if t < self.max_t && self.at(t).is_none() {
            self.insert_ooo(s.clone(), block_range);
        }
    }

    fn insert_ooo(&mut self, s: K::Sample, block_range: i64) {
        if let Err(i) = self.ooo.binary_search_by_key(&K::t(&s), K::t) {
            self.ooo.insert(i, s);
        }
        if self.ooo.len() >= OOO_MERGE_AT {
            let all = self.samples(i64::MIN, i64::MAX);
            self.rebuild(&all, block_range);
        }
    }

    /// Re-encodes from `samples` (sorted, unique timestamps).
    fn rebuild(&mut self, samples: &[K::Sample], block_range: i64) {
        *self = Chunks::new();
        for s in samples {
            self.append_newest(s, block_range);
        }
    }

    /// The open chunk as `(min_t, max_t, bytes)`, unless it is empty.
    fn open_slice(&self) -> Option<(i64, i64, &[u8])> {
        (!self.open_is_empty()).then(|| (self.open_min_t, self.max_t, K::bytes(&self.open)))
    }

    /// Samples with `mint <= t <= maxt`, in time order.
    fn samples(&self, mint: i64, maxt: i64) -> Vec<K::Sample> {
        let chunks = self.sealed.iter().map(SealedChunk::as_slice).chain(self.open_slice());
        decode_head_chunks::<K>(chunks, None, &self.ooo, mint, maxt)
    }

    /// What [`Chunks::samples`] would decode for `[mint, maxt]`, without decoding it: the
    /// sealed chunks overlapping the range (shared), a copy of the open chunk if it does (at
    /// most one chunk's bytes) and the out-of-order samples in the range.
    fn snapshot(&self, mint: i64, maxt: i64) -> ChunksSnapshot<K> {
        let mut chunks: Vec<SealedChunk> = self.sealed.iter().filter(|c| c.overlaps(mint, maxt)).cloned().collect();
        let mut open_tail = None;
        if let Some((min_t, max_t, bytes)) = self.open_slice().filter(|&(lo, hi, _)| lo <= maxt && hi >= mint) {
            // Only the samples from the newest resume point before the range on, when there
            // is one: fewer bytes to copy and to decode.
            open_tail = K::tail_since(&self.open, mint);
            if open_tail.is_none() {
                chunks.push(SealedChunk { min_t, max_t, bytes: bytes.into() });
            }
        }
        let ooo = self.ooo.iter().filter(|s| (mint..=maxt).contains(&K::t(s))).cloned().collect();
        ChunksSnapshot { chunks, open_tail, ooo }
    }

    /// Drops samples older than `t` (they have been persisted to a block).
    fn truncate_before(&mut self, t: i64, block_range: i64) {
        if self.min_t().is_none_or(|min| min >= t) {
            return;
        }
        let straddles = self.sealed.iter().any(|c| c.min_t < t && c.max_t >= t)
            || (!self.open_is_empty() && self.open_min_t < t && self.max_t >= t);
        if straddles {
            let keep = self.samples(t, i64::MAX);
            self.rebuild(&keep, block_range);
            return;
        }
        self.sealed.retain(|c| c.min_t >= t);
        self.ooo.retain(|s| K::t(s) >= t);
        if !self.open_is_empty() && self.max_t < t {
            self.open = K::Appender::default();
        }
        if self.sealed.is_empty() && self.open_is_empty() && self.ooo.is_empty() {
            self.max_t = i64::MIN;
        }
    }

    fn encoded_chunks(&self, out: &mut Vec<Vec<u8>>) {
        out.extend(self.sealed.iter().map(|c| c.bytes.to_vec()));
        if !self.open_is_empty() {
            out.push(K::bytes(&self.open).to_vec());
        }
        for part in self.ooo.chunks(osprey_codec::MAX_CHUNK_SAMPLES) {
            out.push(K::encode(part));
        }
    }
}

/// The head chunks of one kind of one series that overlap a query's range, taken under the
/// series lock and decoded after it is released. Holding the chunks rather than the series
/// keeps a query's view whole when a head cut truncates the series meanwhile.
pub(crate) struct ChunksSnapshot<K: Kind> {
    chunks: Vec<SealedChunk>,
    /// The open chunk's newest samples, when it was not copied whole into `chunks`.
    open_tail: Option<K::Tail>,
    /// Out-of-order samples in the range, sorted.
    ooo: Vec<K::Sample>,
}

impl<K: Kind> ChunksSnapshot<K> {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.open_tail.is_none() && self.ooo.is_empty()
    }

    /// Samples with `mint <= t <= maxt`, in time order.
    fn samples(&self, mint: i64, maxt: i64) -> Vec<K::Sample> {
        let chunks = self.chunks.iter().map(SealedChunk::as_slice);
        decode_head_chunks::<K>(chunks, self.open_tail.as_ref(), &self.ooo, mint, maxt)
    }
}

/// Decodes the time-ordered, non-overlapping chunks `(min_t, max_t, bytes)` that overlap
/// `[mint, maxt]` and merges in the sorted out-of-order samples `ooo` (absent from the
/// chunks): the samples in the range, in time order. Head chunks were encoded by this
/// process, so one that fails to decode is a bug, not bad input: it is left out (and
/// asserted against in debug builds) rather than failing the read.
fn decode_head_chunks<'a, K: Kind>(
    chunks: impl Iterator<Item = (i64, i64, &'a [u8])>,
    open_tail: Option<&K::Tail>,
    ooo: &[K::Sample],
    mint: i64,
    maxt: i64,
) -> Vec<K::Sample> {
    let mut out = Vec::new();
    for (lo, hi, bytes) in chunks {
        if hi < mint || lo > maxt {
            continue;
        }
        keep_decoded(&mut out, |out| K::decode(bytes, out));
    }
    // The newest samples: after every sealed chunk.
    if let Some(tail) = open_tail {
        keep_decoded(&mut out, |out| K::decode_tail(tail, out));
    }
    out.retain(|s| (mint..=maxt).contains(&K::t(s)));
    let ooo: Vec<K::Sample> = ooo.iter().filter(|s| (mint..=maxt).contains(&K::t(s))).cloned().collect();
    if ooo.is_empty() {
        return out;
    }
    merge_sorted::<K>(out, ooo)
}

/// Appends what `decode` decodes to `out`, or nothing if it fails (see
/// [`decode_head_chunks`]).
fn keep_decoded<T>(out: &mut Vec<T>, decode: impl FnOnce(&mut Vec<T>) -> Result<(), CodecError>) {
    let start = out.len();
    let result = decode(out);
    debug_assert!(result.is_ok(), "head chunk failed to decode");
    if result.is_err() {
        out.truncate(start);
    }
}

/// One head series' chunks of the wanted kinds overlapping a query's range (see
/// [`ChunksSnapshot`]).
pub(crate) struct SeriesSnapshot {
    floats: Option<ChunksSnapshot<Floats>>,
    histograms: Option<ChunksSnapshot<Histograms>>,
    /// The start timestamps' change points, when wanted and the series has any.
    starts: Vec<(i64, i64)>,
}

impl SeriesSnapshot {
    /// Whether no chunk or out-of-order sample overlaps the range (the series has nothing
    /// there; a non-empty snapshot may still hold no sample inside the range).
    pub(crate) fn is_empty(&self) -> bool {
        self.floats.as_ref().is_none_or(ChunksSnapshot::is_empty)
            && self.histograms.as_ref().is_none_or(ChunksSnapshot::is_empty)
    }

    /// A snapshot of one float sample alone (see [`SeriesData::newest_float_in`]).
    pub(crate) fn of_float(sample: Sample) -> SeriesSnapshot {
        SeriesSnapshot {
            floats: Some(ChunksSnapshot { chunks: Vec::new(), open_tail: None, ooo: vec![sample] }),
            histograms: None,
            starts: Vec::new(),
        }
    }

    /// Float samples with `mint <= t <= maxt`, in time order.
    pub(crate) fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        self.floats.as_ref().map(|c| c.samples(mint, maxt)).unwrap_or_default()
    }

    /// Histogram samples with `mint <= t <= maxt`, in time order.
    pub(crate) fn histograms(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        self.histograms.as_ref().map(|c| c.samples(mint, maxt)).unwrap_or_default()
    }

    /// The start timestamps' change points (empty unless wanted).
    pub(crate) fn starts(&self) -> &[(i64, i64)] {
        &self.starts
    }
}

pub(crate) struct SeriesData {
    floats: Chunks<Floats>,
    /// Bits of the newest float, for the common duplicate check without decoding.
    last_v_bits: u64,
    histograms: Option<Box<Chunks<Histograms>>>,
    /// Start timestamps, absent until a sample of the series carries one.
    starts: Option<Box<StartRuns>>,
    /// Set when garbage collection dropped the series from the head; appenders holding it
    /// must look the series up again.
    pub(crate) removed: bool,
}

/// What happened to one appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Appended,
    /// Same timestamp and same value as stored: accepted without storing, as Prometheus does.
    Duplicate,
    DuplicateDifferentValue,
    OutOfOrder,
    TooOld,
}

impl MemSeries {
    pub(crate) fn new(id: u64, hash: u64, labels: CompactLabels) -> MemSeries {
        MemSeries { id, hash, labels, data: Mutex::new(SeriesData::new()) }
    }
}

impl SeriesData {
    fn new() -> SeriesData {
        SeriesData { floats: Chunks::new(), last_v_bits: 0, histograms: None, starts: None, removed: false }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.floats.is_empty() && self.histograms.as_ref().is_none_or(|h| h.is_empty())
    }

    /// Newest timestamp over both kinds; `i64::MIN` while empty.
    pub(crate) fn max_t(&self) -> i64 {
        self.histograms.as_ref().map_or(self.floats.max_t, |h| h.max_t.max(self.floats.max_t))
    }

    pub(crate) fn min_t(&self) -> Option<i64> {
        let floats = self.floats.min_t();
        match self.histograms.as_ref().and_then(|h| h.min_t()) {
            Some(h) => Some(floats.map_or(h, |f| f.min(h))),
            None => floats,
        }
    }

    pub(crate) fn num_chunks(&self) -> usize {
        self.floats.num_chunks() + self.histograms.as_ref().map_or(0, |h| h.num_chunks())
    }

    pub(crate) fn chunk_bytes(&self) -> usize {
        self.floats.chunk_bytes() + self.histograms.as_ref().map_or(0, |h| h.chunk_bytes())
    }

    /// Validates and stores one float sample.
    pub(crate) fn append(&mut self, s: Sample, limits: &AppendLimits) -> Outcome {
        if s.t < limits.min_valid_time {
            return Outcome::TooOld;
        }
        if self.histograms.is_some() {
            return self.append_mixed_float(s, limits);
        }
        let max_t = self.floats.max_t;
        if s.t > max_t {
            self.floats.append_newest(&s, limits.block_range);
            self.last_v_bits = s.v.to_bits();
            return Outcome::Appended;
        }
        if s.t == max_t {
            return if s.v.to_bits() == self.last_v_bits {
                Outcome::Duplicate
            } else {
                Outcome::DuplicateDifferentValue
            };
        }
        if max_t - s.t > limits.ooo_window {
            return Outcome::OutOfOrder;
        }
        match self.floats.at(s.t) {
            Some(v) if Floats::same(&v, &s) => Outcome::Duplicate,
            Some(_) => Outcome::DuplicateDifferentValue,
            None => {
                self.floats.insert_ooo(s, limits.block_range);
                Outcome::Appended
            }
        }
    }

    /// The out-of-order rule over both kinds: whether a sample at `t` (not newer than every
    /// stored sample) may still be stored.
    fn within_window(&self, t: i64, limits: &AppendLimits) -> bool {
        let newest = self.max_t();
        t >= newest || newest - t <= limits.ooo_window
    }

    fn append_mixed_float(&mut self, s: Sample, limits: &AppendLimits) -> Outcome {
        if !self.within_window(s.t, limits) {
            return Outcome::OutOfOrder;
        }
        if self.histograms.as_ref().is_some_and(|h| h.at(s.t).is_some()) {
            return Outcome::DuplicateDifferentValue;
        }
        match self.floats.at(s.t) {
            Some(v) if Floats::same(&v, &s) => Outcome::Duplicate,
            Some(_) => Outcome::DuplicateDifferentValue,
            None => {
                let newest = s.t > self.floats.max_t;
                self.floats.insert(&s, limits.block_range);
                if newest {
                    self.last_v_bits = s.v.to_bits();
                }
                Outcome::Appended
            }
        }
    }

    /// Validates and stores one histogram sample (callers store stale histograms as float
    /// staleness markers instead).
    pub(crate) fn append_histogram(&mut self, s: &HistogramSample, limits: &AppendLimits) -> Outcome {
        if s.t < limits.min_valid_time {
            return Outcome::TooOld;
        }
        if !self.within_window(s.t, limits) {
            return Outcome::OutOfOrder;
        }
        if s.t <= self.floats.max_t && self.floats.at(s.t).is_some() {
            return Outcome::DuplicateDifferentValue;
        }
        let histograms = self.histograms.get_or_insert_with(|| Box::new(Chunks::new()));
        match histograms.at(s.t) {
            Some(h) if Histograms::same(&h, s) => Outcome::Duplicate,
            Some(_) => Outcome::DuplicateDifferentValue,
            None => {
                histograms.insert(s, limits.block_range);
                Outcome::Appended
            }
        }
    }

    /// Whether any sample has a start timestamp: then every appended sample must say its
    /// own, even none.
    pub(crate) fn has_starts(&self) -> bool {
        self.starts.is_some()
    }

    /// Records the start timestamp (0: none) of the sample just stored at `t`; `log` gets
    /// the change points written, for the WAL (see [`StartRuns::set`]).
    pub(crate) fn set_start(&mut self, t: i64, start: i64, log: &mut impl FnMut(i64, i64)) {
        let later = t < self.max_t();
        match &mut self.starts {
            Some(runs) => runs.set(t, start, later, log),
            None if start == 0 => {}
            None => self.starts.insert(Box::default()).set(t, start, later, log),
        }
    }

    /// Writes a change point read back from the WAL or a checkpoint.
    pub(crate) fn put_start(&mut self, t: i64, start: i64) {
        self.starts.get_or_insert_with(Box::default).put(t, start);
    }

    /// The start timestamps' change points describing samples in `[from, to)` (for a block).
    pub(crate) fn start_points(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.starts.as_ref().map(|s| s.window(from, to)).unwrap_or_default()
    }

    /// All change points (for a WAL checkpoint).
    pub(crate) fn all_start_points(&self) -> &[(i64, i64)] {
        self.starts.as_ref().map_or(&[], |s| s.points())
    }

    /// Stores a float read back from the WAL or a checkpoint.
    pub(crate) fn append_replayed(&mut self, s: Sample, block_range: i64) {
        let newest = s.t > self.floats.max_t;
        self.floats.append_replayed(&s, block_range);
        if newest {
            self.last_v_bits = s.v.to_bits();
        }
    }

    /// Stores a histogram read back from the WAL or a checkpoint.
    pub(crate) fn append_replayed_histogram(&mut self, s: &HistogramSample, block_range: i64) {
        self.histograms.get_or_insert_with(|| Box::new(Chunks::new())).append_replayed(s, block_range);
    }

    /// Float samples with `mint <= t <= maxt`, in time order.
    pub(crate) fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        self.floats.samples(mint, maxt)
    }

    /// The series' newest sample if it is a float inside `[mint, maxt]`, known without
    /// decoding: what an instant selector at the present reads.
    pub(crate) fn newest_float_in(&self, mint: i64, maxt: i64) -> Option<Sample> {
        let t = self.floats.max_t;
        let newest = (mint..=maxt).contains(&t) && self.histograms.as_ref().is_none_or(|h| h.max_t < t);
        newest.then(|| Sample { t, v: f64::from_bits(self.last_v_bits) })
    }

    /// Histogram samples with `mint <= t <= maxt`, in time order.
    pub(crate) fn histograms(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        self.histograms.as_ref().map(|h| h.samples(mint, maxt)).unwrap_or_default()
    }

    /// The chunks of the wanted kinds overlapping `[mint, maxt]`, to decode later with the
    /// lock released.
    pub(crate) fn snapshot(&self, mint: i64, maxt: i64, wanted: Wanted) -> SeriesSnapshot {
        SeriesSnapshot {
            floats: wanted.floats.then(|| self.floats.snapshot(mint, maxt)),
            histograms: self.histograms.as_ref().filter(|_| wanted.histograms).map(|h| h.snapshot(mint, maxt)),
            starts: match &self.starts {
                Some(runs) if wanted.starts => runs.points().to_vec(),
                _ => Vec::new(),
            },
        }
    }

    /// Drops samples older than `t` (they have been persisted to a block).
    pub(crate) fn truncate_before(&mut self, t: i64, block_range: i64) {
        self.floats.truncate_before(t, block_range);
        if let Some(h) = &mut self.histograms {
            h.truncate_before(t, block_range);
            if h.is_empty() {
                self.histograms = None;
            }
        }
        if let Some(runs) = &mut self.starts {
            runs.truncate_before(t);
            if runs.is_empty() || self.is_empty() {
                self.starts = None;
            }
        }
    }

    /// The series as encoded chunks of both kinds (told apart by their encoding byte), for a
    /// WAL checkpoint.
    pub(crate) fn encoded_chunks(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.floats.encoded_chunks(&mut out);
        if let Some(h) = &self.histograms {
            h.encoded_chunks(&mut out);
        }
        out
    }
}

/// Limits for one batch, computed once from the head's state.
pub(crate) struct AppendLimits {
    pub(crate) min_valid_time: i64,
    pub(crate) ooo_window: i64,
    pub(crate) block_range: i64,
}

/// Merges two time-sorted lists; on equal timestamps keeps the first list's sample.
fn merge_sorted<K: Kind>(a: Vec<K::Sample>, b: Vec<K::Sample>) -> Vec<K::Sample> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        match K::t(x).cmp(&K::t(y)) {
            std::cmp::Ordering::Less => out.extend(a.next()),
            std::cmp::Ordering::Greater => out.extend(b.next()),
            std::cmp::Ordering::Equal => {
                out.extend(a.next());
                b.next();
            }
        }
    }
    out.extend(a);
    out.extend(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AppendLimits = AppendLimits { min_valid_time: 0, ooo_window: 0, block_range: 7_200_000 };

    #[test]
    fn ooo_within_window_merges_and_outside_is_rejected() {
        let mut d = SeriesData::new();
        let ooo = AppendLimits { ooo_window: 10_000, ..LIMITS };
        for t in (100_000..200_000).step_by(1000) {
            assert_eq!(d.append(Sample::new(t, t as f64), &ooo), Outcome::Appended);
        }
        assert_eq!(d.append(Sample::new(198_500, 1.0), &ooo), Outcome::Appended);
        assert_eq!(d.append(Sample::new(150_500, 1.0), &ooo), Outcome::OutOfOrder);
        assert_eq!(d.append(Sample::new(198_000, 5.0), &ooo), Outcome::DuplicateDifferentValue);
        assert_eq!(d.append(Sample::new(198_000, 198_000.0), &ooo), Outcome::Duplicate);
        assert_eq!(d.append(Sample::new(198_500, 1.0), &ooo), Outcome::Duplicate);
        let s = d.samples(198_000, 199_000);
        assert_eq!(s.iter().map(|s| s.t).collect::<Vec<_>>(), vec![198_000, 198_500, 199_000]);
        // Enough out-of-order samples to force a merge into chunks keeps every sample.
        for t in (190_100..199_000).step_by(100).filter(|t| t % 1000 != 0 && *t != 198_500) {
            assert_eq!(d.append(Sample::new(t, 0.5), &ooo), Outcome::Appended, "t={t}");
        }
        let all = d.samples(i64::MIN, i64::MAX);
        assert!(all.windows(2).all(|w| w[0].t < w[1].t));
        assert_eq!(all.len(), 100 + 1 + 80);
    }

    #[test]
    fn snapshots_of_an_open_chunk_read_its_newest_samples_from_a_resume_point() {
        let mut d = SeriesData::new();
        let ooo = AppendLimits { ooo_window: 60_000, ..LIMITS };
        // 100 samples in one open chunk, values that need the XOR encoding, one out of order.
        for i in 0..100i64 {
            assert_eq!(d.append(Sample::new(i * 15_000, i as f64 / 3.0), &ooo), Outcome::Appended);
        }
        assert_eq!(d.append(Sample::new(95 * 15_000 + 7, -1.0), &ooo), Outcome::Appended);
        let bits = |v: Vec<Sample>| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
        for lo_i in [0, 32, 64, 95, 96, 97, 99, 100] {
            for hi in [lo_i * 15_000 + 60_000, i64::MAX] {
                let lo = lo_i * 15_000;
                let snapshot = d.snapshot(lo, hi, Wanted::FLOATS);
                let tail_used = snapshot.floats.as_ref().is_some_and(|f| f.open_tail.is_some());
                // The newest resume point is at sample 96; from 100 on, nothing overlaps.
                assert_eq!(tail_used, (96..100).contains(&lo_i), "from sample {lo_i}");
                assert_eq!(bits(snapshot.samples(lo, hi)), bits(d.samples(lo, hi)), "[{lo}, {hi}]");
            }
        }
    }

    #[test]
    fn truncation_keeps_newer_samples() {
        let mut d = SeriesData::new();
        for t in 0..1000 {
            d.append(Sample::new(t * 10, 1.0), &LIMITS);
        }
        d.truncate_before(5005, LIMITS.block_range);
        let s = d.samples(i64::MIN, i64::MAX);
        assert_eq!(s.first().map(|s| s.t), Some(5010));
        assert_eq!(s.len(), 499);
        d.truncate_before(20_000, LIMITS.block_range);
        assert!(d.is_empty());
    }

    /// A sample of either kind, as the reference model stores it.
    #[derive(Debug, Clone)]
    enum Stored {
        Float(u64),
        Histogram(FloatHistogram),
    }

    fn h(i: u8) -> FloatHistogram {
        let c = f64::from(i);
        FloatHistogram {
            schema: i32::from(i % 3),
            count: c,
            sum: c * 0.5,
            positive: vec![(1, c)],
            ..Default::default()
        }
    }

    /// Prometheus's rules over a plain map: too old, then newer than everything, then out of
    /// order beyond the window, then duplicate (same value: harmless) at the timestamp.
    fn model_append(
        model: &mut std::collections::BTreeMap<i64, Stored>,
        t: i64,
        new: Stored,
        limits: &AppendLimits,
    ) -> Outcome {
        if t < limits.min_valid_time {
            return Outcome::TooOld;
        }
        let newest = model.keys().next_back().copied().unwrap_or(i64::MIN);
        if t > newest {
            model.insert(t, new);
            return Outcome::Appended;
        }
        if t < newest && newest - t > limits.ooo_window {
            return Outcome::OutOfOrder;
        }
        match (model.get(&t), &new) {
            (None, _) => {
                model.insert(t, new);
                Outcome::Appended
            }
            (Some(Stored::Float(a)), Stored::Float(b)) if a == b => Outcome::Duplicate,
            (Some(Stored::Histogram(a)), Stored::Histogram(b)) if same_histogram(a, b) => Outcome::Duplicate,
            _ => Outcome::DuplicateDifferentValue,
        }
    }

    fn check_against(d: &SeriesData, model: &std::collections::BTreeMap<i64, Stored>) {
        let floats: Vec<(i64, u64)> = d.samples(i64::MIN, i64::MAX).iter().map(|s| (s.t, s.v.to_bits())).collect();
        let want: Vec<(i64, u64)> = model
            .iter()
            .filter_map(|(&t, s)| match s {
                Stored::Float(b) => Some((t, *b)),
                Stored::Histogram(_) => None,
            })
            .collect();
        assert_eq!(floats, want);
        let hists = d.histograms(i64::MIN, i64::MAX);
        let want: Vec<(i64, &FloatHistogram)> = model
            .iter()
            .filter_map(|(&t, s)| match s {
                Stored::Histogram(h) => Some((t, h)),
                Stored::Float(_) => None,
            })
            .collect();
        assert_eq!(hists.len(), want.len());
        for (got, (t, h)) in hists.iter().zip(want) {
            assert!(got.t == t && same_histogram(&got.h, h), "{got:?} vs {t} {h:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn mixed_series_follow_prometheus_rules(
            ops in proptest::collection::vec((0i64..400, proptest::prelude::any::<bool>(), 0u8..4), 1..300),
            window in proptest::prop_oneof![proptest::strategy::Just(0i64), 0i64..100],
            cut in 0i64..400,
        ) {
            let limits = AppendLimits { min_valid_time: 10, ooo_window: window, block_range: 100 };
            let mut d = SeriesData::new();
            let mut model = std::collections::BTreeMap::new();
            for (t, is_float, v) in ops {
                let (got, want) = if is_float {
                    let s = Sample::new(t, f64::from(v));
                    (d.append(s, &limits), model_append(&mut model, t, Stored::Float(s.v.to_bits()), &limits))
                } else {
                    let s = HistogramSample { t, h: h(v) };
                    (d.append_histogram(&s, &limits), model_append(&mut model, t, Stored::Histogram(s.h.clone()), &limits))
                };
                proptest::prop_assert_eq!(got, want, "t={} float={}", t, is_float);
            }
            check_against(&d, &model);
            proptest::prop_assert_eq!(d.max_t(), model.keys().next_back().copied().unwrap_or(i64::MIN));
            proptest::prop_assert_eq!(d.min_t(), model.keys().next().copied());

            // A checkpoint's chunks replay into the same series.
            let mut replayed = SeriesData::new();
            for bytes in d.encoded_chunks() {
                if bytes[0] == osprey_codec::ChunkEncoding::FloatHistogram as u8 {
                    let mut out = Vec::new();
                    decode_histogram_chunk(&bytes, &mut out).unwrap();
                    out.iter().for_each(|s| replayed.append_replayed_histogram(s, limits.block_range));
                } else {
                    let mut out = Vec::new();
                    decode_chunk(&bytes, &mut out).unwrap();
                    out.into_iter().for_each(|s| replayed.append_replayed(s, limits.block_range));
                }
            }
            check_against(&replayed, &model);

            // A snapshot decodes what the series held when it was taken, after a truncation too.
            let (lo, hi) = (cut - 50, cut + 50);
            let snapshot = d.snapshot(lo, hi, Wanted::BOTH);
            let floats = |v: Vec<Sample>| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            let (want_floats, want_hists) = (floats(d.samples(lo, hi)), d.histograms(lo, hi));
            proptest::prop_assert!(!snapshot.is_empty() || (want_floats.is_empty() && want_hists.is_empty()));
            let float_only = d.snapshot(lo, hi, Wanted::FLOATS);

            d.truncate_before(cut, limits.block_range);
            model.retain(|&t, _| t >= cut);
            check_against(&d, &model);
            proptest::prop_assert_eq!(floats(snapshot.samples(lo, hi)), want_floats.clone());
            let hists = snapshot.histograms(lo, hi);
            let same = |(a, b): (&HistogramSample, &HistogramSample)| a.t == b.t && same_histogram(&a.h, &b.h);
            proptest::prop_assert!(hists.len() == want_hists.len() && hists.iter().zip(&want_hists).all(same));
            proptest::prop_assert_eq!(floats(float_only.samples(lo, hi)), want_floats);
            proptest::prop_assert!(float_only.histograms(lo, hi).is_empty());
            proptest::prop_assert_eq!(d.is_empty(), model.is_empty());
        }
    }
}
