//! One in-memory series: sealed compressed chunks, the open (appendable) chunk and a small
//! sorted buffer of out-of-order samples, merged into chunks when it grows.

use osprey_codec::{decode_chunk, encode_chunk, XorAppender};
use osprey_model::Sample;

use crate::compact_labels::CompactLabels;
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

struct SealedChunk {
    min_t: i64,
    max_t: i64,
    bytes: Box<[u8]>,
}

pub(crate) struct SeriesData {
    sealed: Vec<SealedChunk>,
    open: XorAppender,
    open_min_t: i64,
    /// Newest timestamp (of the open chunk); `i64::MIN` while empty.
    pub(crate) max_t: i64,
    last_v_bits: u64,
    /// Sorted, unique timestamps, all older than `max_t` and absent from the chunks.
    ooo: Vec<Sample>,
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
        SeriesData {
            sealed: Vec::new(),
            open: XorAppender::new(),
            open_min_t: i64::MIN,
            max_t: i64::MIN,
            last_v_bits: 0,
            ooo: Vec::new(),
            removed: false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.max_t == i64::MIN
    }

    pub(crate) fn min_t(&self) -> Option<i64> {
        let chunk_min = self.sealed.first().map(|c| c.min_t).or((!self.open.is_empty()).then_some(self.open_min_t));
        match (chunk_min, self.ooo.first()) {
            (Some(a), Some(b)) => Some(a.min(b.t)),
            (a, b) => a.or(b.map(|s| s.t)),
        }
    }

    pub(crate) fn num_chunks(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty()) + usize::from(!self.ooo.is_empty())
    }

    pub(crate) fn chunk_bytes(&self) -> usize {
        self.sealed.iter().map(|c| c.bytes.len()).sum::<usize>()
            + self.open.bytes().len()
            + self.ooo.len() * std::mem::size_of::<Sample>()
    }

    /// Appends a sample newer than every stored one. A chunk is sealed when full or when the
    /// sample crosses a block boundary, so head truncation rarely splits chunks.
    fn append_newest(&mut self, s: Sample, block_range: i64) {
        let crosses = !self.open.is_empty() && s.t.div_euclid(block_range) != self.open_min_t.div_euclid(block_range);
        if self.open.len() >= HEAD_CHUNK_SAMPLES || crosses {
            self.seal();
        }
        if self.open.is_empty() {
            self.open_min_t = s.t;
        }
        self.open.append(s.t, s.v);
        self.max_t = s.t;
        self.last_v_bits = s.v.to_bits();
    }

    fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let open = std::mem::take(&mut self.open);
        self.sealed.push(SealedChunk { min_t: self.open_min_t, max_t: self.max_t, bytes: open.finish().into() });
    }

    /// The stored value at `t`, if any (decodes the one chunk that may hold it).
    fn value_at(&self, t: i64) -> Option<f64> {
        if let Ok(i) = self.ooo.binary_search_by_key(&t, |s| s.t) {
            return Some(self.ooo[i].v);
        }
        let bytes = if !self.open.is_empty() && t >= self.open_min_t {
            self.open.bytes()
        } else {
            let c = self.sealed.iter().find(|c| c.min_t <= t && t <= c.max_t)?;
            &c.bytes
        };
        let mut out = Vec::new();
        decode_chunk(bytes, &mut out).ok()?;
        out.binary_search_by_key(&t, |s| s.t).ok().map(|i| out[i].v)
    }

    /// Validates and stores one sample.
    pub(crate) fn append(&mut self, s: Sample, limits: &AppendLimits) -> Outcome {
        if s.t < limits.min_valid_time {
            return Outcome::TooOld;
        }
        if s.t > self.max_t {
            self.append_newest(s, limits.block_range);
            return Outcome::Appended;
        }
        if s.t == self.max_t {
            return if s.v.to_bits() == self.last_v_bits {
                Outcome::Duplicate
            } else {
                Outcome::DuplicateDifferentValue
            };
        }
        if self.max_t - s.t > limits.ooo_window {
            return Outcome::OutOfOrder;
        }
        match self.value_at(s.t) {
            Some(v) if v.to_bits() == s.v.to_bits() => Outcome::Duplicate,
            Some(_) => Outcome::DuplicateDifferentValue,
            None => {
                self.insert_ooo(s, limits.block_range);
                Outcome::Appended
            }
        }
    }

    /// Stores a sample read back from the WAL or a checkpoint: it was accepted once, so only
    /// exact repeats (a sample logged twice around a checkpoint) are skipped.
    pub(crate) fn append_replayed(&mut self, s: Sample, block_range: i64) {
        if s.t > self.max_t {
            self.append_newest(s, block_range);
        } else if s.t < self.max_t && self.value_at(s.t).is_none() {
            self.insert_ooo(s, block_range);
        }
    }

    fn insert_ooo(&mut self, s: Sample, block_range: i64) {
        if let Err(i) = self.ooo.binary_search_by_key(&s.t, |x| x.t) {
            self.ooo.insert(i, s);
        }
        if self.ooo.len() >= OOO_MERGE_AT {
            let all = self.samples(i64::MIN, i64::MAX);
            self.rebuild(&all, block_range);
        }
    }

    /// Re-encodes the series from `samples` (sorted, unique timestamps).
    fn rebuild(&mut self, samples: &[Sample], block_range: i64) {
        let removed = self.removed;
        *self = SeriesData::new();
        self.removed = removed;
        for &s in samples {
            self.append_newest(s, block_range);
        }
    }

    /// Samples with `mint <= t <= maxt`, in time order.
    pub(crate) fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        let open = (!self.open.is_empty()).then(|| (self.open_min_t, self.max_t, self.open.bytes()));
        let chunks = self.sealed.iter().map(|c| (c.min_t, c.max_t, &c.bytes[..])).chain(open);
        for (lo, hi, bytes) in chunks {
            if hi < mint || lo > maxt {
                continue;
            }
            let start = out.len();
            let decoded = decode_chunk(bytes, &mut out);
            debug_assert!(decoded.is_ok(), "head chunk failed to decode");
            if decoded.is_err() {
                out.truncate(start);
            }
        }
        out.retain(|s| s.t >= mint && s.t <= maxt);
        let ooo: Vec<Sample> = self.ooo.iter().filter(|s| s.t >= mint && s.t <= maxt).copied().collect();
        if ooo.is_empty() {
            return out;
        }
        merge_sorted(out, ooo)
    }

    /// Drops samples older than `t` (they have been persisted to a block).
    pub(crate) fn truncate_before(&mut self, t: i64, block_range: i64) {
        if self.min_t().is_none_or(|min| min >= t) {
            return;
        }
        let straddles = self.sealed.iter().any(|c| c.min_t < t && c.max_t >= t)
            || (!self.open.is_empty() && self.open_min_t < t && self.max_t >= t);
        if straddles {
            let keep = self.samples(t, i64::MAX);
            self.rebuild(&keep, block_range);
            return;
        }
        self.sealed.retain(|c| c.min_t >= t);
        self.ooo.retain(|s| s.t >= t);
        if !self.open.is_empty() && self.max_t < t {
            self.open = XorAppender::new();
        }
        if self.sealed.is_empty() && self.open.is_empty() && self.ooo.is_empty() {
            self.max_t = i64::MIN;
        }
    }

    /// The series as encoded chunks, for a WAL checkpoint.
    pub(crate) fn encoded_chunks(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.sealed.iter().map(|c| c.bytes.to_vec()).collect();
        if !self.open.is_empty() {
            out.push(self.open.bytes().to_vec());
        }
        for part in self.ooo.chunks(osprey_codec::MAX_CHUNK_SAMPLES) {
            out.push(encode_chunk(part));
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
pub(crate) fn merge_sorted(a: Vec<Sample>, b: Vec<Sample>) -> Vec<Sample> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].t.cmp(&b[j].t) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
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
}
