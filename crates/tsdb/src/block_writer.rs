//! Writing a block: chunks stream into zstd frames as series are added (in label order);
//! `finish` writes the index and `meta.json` into a temporary directory, fsyncs, and renames
//! it into place, so a crash never leaves a half-written block under a block name.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use osprey_codec::{put_uvarint, put_varint};
use osprey_model::{HistogramSample, Sample};

use crate::block::{
    BlockCompaction, BlockMeta, BlockStats, ChunkRef, CHUNKS_MAGIC, FILE_HEADER_LEN, FORMAT_VERSION, INDEX_MAGIC,
    INDEX_VERSION,
};
use crate::compact_labels::CompactLabels;
use crate::postings::Postings;
use crate::series::{Floats, Histograms, Kind};
use crate::wal::sync_dir;

/// Samples per chunk in blocks: larger than the head's 120 because blocks are read in bulk
/// and per-chunk headers cost bytes.
const BLOCK_CHUNK_SAMPLES: usize = 240;
/// Uncompressed bytes per zstd frame: large enough for zstd to find redundancy across
/// neighbouring series, small enough that a query decompresses little it does not need.
const FRAME_TARGET_BYTES: usize = 128 << 10;
const ZSTD_LEVEL: i32 = 9;

/// Suffix of a block directory still being written; such directories are deleted on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) struct BlockWriter {
    blocks_dir: PathBuf,
    id: String,
    tmp: PathBuf,
    chunks: BufWriter<File>,
    /// Offset in the chunks file where the current frame will start.
    frame_start: u64,
    frame: Vec<u8>,
    /// Every series' labels stay until `finish` writes the index: compact (one allocation of
    /// ~200 bytes for ten labels, where `Labels` takes ~1 KiB in 21 allocations), because
    /// persisting the head holds one entry per series. Measured on the remote-write benchmark
    /// (peak RSS after the flush): 100k series x 40 samples 194-196 -> 132-134 MiB; the full
    /// workload (100k x 120) 286 -> 198 MiB.
    series: Vec<IndexEntry>,
    stats: BlockStats,
}

/// What the index records of one series.
struct IndexEntry {
    labels: CompactLabels,
    chunks: Vec<ChunkRef>,
    histogram_chunks: Vec<ChunkRef>,
    /// Start-timestamp change points (see `starts.rs`); empty for most series.
    starts: Vec<(i64, i64)>,
}

/// A ULID-shaped id: 48 bits of milliseconds then 80 random bits in Crockford base32, so ids
/// sort by the time they carry (we pass the block's min time, not the wall clock).
pub(crate) fn new_block_id(time_ms: i64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let random =
        (u128::from(RandomState::new().hash_one(time_ms)) << 64) | u128::from(RandomState::new().hash_one(1u8));
    let value = (u128::from(time_ms.clamp(0, (1 << 48) - 1) as u64) << 80) | (random & ((1u128 << 80) - 1));
    (0..26).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

impl BlockWriter {
    pub(crate) fn new(blocks_dir: &Path, id_time_ms: i64) -> io::Result<BlockWriter> {
        let id = new_block_id(id_time_ms);
        let tmp = blocks_dir.join(format!("{id}{TMP_SUFFIX}"));
        fs::create_dir_all(&tmp)?;
        let mut chunks = BufWriter::new(File::create(tmp.join("chunks"))?);
        chunks.write_all(&file_header(CHUNKS_MAGIC, FORMAT_VERSION))?;
        Ok(BlockWriter {
            blocks_dir: blocks_dir.to_path_buf(),
            id,
            tmp,
            chunks,
            frame_start: FILE_HEADER_LEN,
            frame: Vec::new(),
            series: Vec::new(),
            stats: BlockStats::default(),
        })
    }

    /// Adds a series' float and histogram samples (each time-sorted) and the change points
    /// of their start timestamps; calls must come in increasing label order. Series without
    /// samples are skipped.
    pub(crate) fn add_series(
        &mut self,
        labels: CompactLabels,
        samples: &[Sample],
        histograms: &[HistogramSample],
        starts: &[(i64, i64)],
    ) -> io::Result<()> {
        if samples.is_empty() && histograms.is_empty() {
            return Ok(());
        }
        debug_assert!(self.series.last().is_none_or(|e| e.labels < labels), "series out of order");
        let chunks = self.add_chunks::<Floats>(samples);
        let histogram_chunks = self.add_chunks::<Histograms>(histograms);
        self.stats.num_samples += samples.len() as u64;
        self.stats.num_histogram_samples += histograms.len() as u64;
        self.stats.num_chunks += (chunks.len() + histogram_chunks.len()) as u64;
        self.stats.num_series += 1;
        self.series.push(IndexEntry { labels, chunks, histogram_chunks, starts: starts.to_vec() });
        if self.frame.len() >= FRAME_TARGET_BYTES {
            self.flush_frame()?;
        }
        Ok(())
    }

    /// Encodes samples into chunks appended to the current frame.
    fn add_chunks<K: Kind>(&mut self, samples: &[K::Sample]) -> Vec<ChunkRef> {
        let mut refs = Vec::with_capacity(samples.len().div_ceil(BLOCK_CHUNK_SAMPLES));
        for part in samples.chunks(BLOCK_CHUNK_SAMPLES) {
            let bytes = K::encode(part);
            refs.push(ChunkRef {
                min_t: K::t(&part[0]),
                max_t: K::t(&part[part.len() - 1]),
                frame: self.frame_start,
                offset: self.frame.len() as u32,
                len: bytes.len() as u32,
            });
            self.frame.extend_from_slice(&bytes);
        }
        refs
    }

    fn flush_frame(&mut self) -> io::Result<()> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let compressed = zstd::bulk::compress(&self.frame, ZSTD_LEVEL)?;
        let mut header = [0u8; 12];
        header[0..4].copy_from_slice(&(compressed.len() as u32).to_be_bytes());
        header[4..8].copy_from_slice(&(self.frame.len() as u32).to_be_bytes());
        header[8..12].copy_from_slice(&crc32fast::hash(&compressed).to_be_bytes());
        self.chunks.write_all(&header)?;
        self.chunks.write_all(&compressed)?;
        self.frame_start += (header.len() + compressed.len()) as u64;
        self.frame.clear();
        Ok(())
    }

    /// Completes the block covering `[min_time, max_time)`. Returns `None` (and removes the
    /// temporary directory) when no series was added.
    pub(crate) fn finish(
        mut self,
        min_time: i64,
        max_time: i64,
        compaction: BlockCompaction,
    ) -> io::Result<Option<PathBuf>> {
        if self.series.is_empty() {
            drop(self.chunks);
            fs::remove_dir_all(&self.tmp)?;
            return Ok(None);
        }
        self.flush_frame()?;
        let chunks = self.chunks.into_inner().map_err(|e| e.into_error())?;
        chunks.sync_all()?;
        write_index(&self.tmp.join("index"), &self.series)?;
        let mut compaction = compaction;
        if compaction.sources.is_empty() {
            compaction.sources.push(self.id.clone());
        }
        let meta = BlockMeta { ulid: self.id.clone(), min_time, max_time, stats: self.stats, compaction, version: 1 };
        let json = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        let mut f = File::create(self.tmp.join("meta.json"))?;
        f.write_all(&json)?;
        f.sync_all()?;
        sync_dir(&self.tmp)?;
        let dir = self.blocks_dir.join(&self.id);
        fs::rename(&self.tmp, &dir)?;
        sync_dir(&self.blocks_dir)?;
        Ok(Some(dir))
    }
}

fn file_header(magic: u32, version: u8) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0..4].copy_from_slice(&magic.to_be_bytes());
    h[4] = version;
    h
}

fn put_chunk_refs(payload: &mut Vec<u8>, chunks: &[ChunkRef]) {
    put_uvarint(payload, chunks.len() as u64);
    let mut prev_max = 0i64;
    for c in chunks {
        put_varint(payload, c.min_t.wrapping_sub(prev_max));
        put_uvarint(payload, c.max_t.wrapping_sub(c.min_t) as u64);
        put_uvarint(payload, c.frame);
        put_uvarint(payload, u64::from(c.offset));
        put_uvarint(payload, u64::from(c.len));
        prev_max = c.max_t;
    }
}

fn put_start_points(payload: &mut Vec<u8>, points: &[(i64, i64)]) {
    put_uvarint(payload, points.len() as u64);
    let (mut prev_t, mut prev_start) = (0i64, 0i64);
    for &(t, start) in points {
        put_varint(payload, t.wrapping_sub(prev_t));
        put_varint(payload, start.wrapping_sub(prev_start));
        (prev_t, prev_start) = (t, start);
    }
}

fn write_section(out: &mut Vec<u8>, payload: &[u8]) -> u64 {
    let offset = out.len() as u64;
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    offset
}

fn write_index(path: &Path, series: &[IndexEntry]) -> io::Result<()> {
    let mut postings = Postings::default();
    for (i, e) in series.iter().enumerate() {
        postings.add(i as u64, e.labels.iter());
    }
    let symbols: Vec<&str> = postings.symbols().into_iter().collect();
    let sym_index: HashMap<&str, u64> = symbols.iter().enumerate().map(|(i, s)| (*s, i as u64)).collect();
    let sym = |s: &str| sym_index.get(s).copied().unwrap_or_default();

    let mut out = file_header(INDEX_MAGIC, INDEX_VERSION).to_vec();
    let mut payload = Vec::new();
    put_uvarint(&mut payload, symbols.len() as u64);
    for s in &symbols {
        put_uvarint(&mut payload, s.len() as u64);
        payload.extend_from_slice(s.as_bytes());
    }
    let sym_off = write_section(&mut out, &payload);

    payload.clear();
    put_uvarint(&mut payload, series.len() as u64);
    for e in series {
        put_uvarint(&mut payload, e.labels.len() as u64);
        for (name, value) in e.labels.iter() {
            put_uvarint(&mut payload, sym(name));
            put_uvarint(&mut payload, sym(value));
        }
        put_chunk_refs(&mut payload, &e.chunks);
        put_chunk_refs(&mut payload, &e.histogram_chunks);
        put_start_points(&mut payload, &e.starts);
    }
    let series_off = write_section(&mut out, &payload);

    payload.clear();
    let entries = postings.sorted_entries();
    put_uvarint(&mut payload, entries.len() as u64);
    for (name, value, ids) in entries {
        put_uvarint(&mut payload, sym(name));
        put_uvarint(&mut payload, sym(value));
        put_uvarint(&mut payload, ids.len() as u64);
        let mut prev = 0;
        for &id in ids {
            put_uvarint(&mut payload, id - prev);
            prev = id;
        }
    }
    let postings_off = write_section(&mut out, &payload);

    let toc_start = out.len();
    for off in [sym_off, series_off, postings_off] {
        out.extend_from_slice(&off.to_be_bytes());
    }
    let crc = crc32fast::hash(&out[toc_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&INDEX_MAGIC.to_be_bytes());
    let mut f = File::create(path)?;
    f.write_all(&out)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, BlockSeries, SELECT_CACHE_ENTRIES};
    use osprey_model::{FloatHistogram, Labels, Matcher, STALE_NAN};
    use std::sync::Arc;

    fn histogram(i: i64) -> FloatHistogram {
        let c = i as f64;
        FloatHistogram {
            schema: 2,
            count: 3.0 * c,
            sum: 1.5 * c,
            positive: vec![(1, c), (2, 2.0 * c)],
            ..Default::default()
        }
    }

    fn write_block(dir: &Path, n: usize) -> PathBuf {
        let mut w = BlockWriter::new(dir, 0).unwrap();
        let mut series: Vec<Labels> =
            (0..n).map(|i| Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:04}"))])).collect();
        series.sort();
        for (i, labels) in series.into_iter().enumerate() {
            let mut samples: Vec<Sample> = (0..500).map(|t| Sample::new(t * 15_000, (t * i as i64) as f64)).collect();
            samples.push(Sample::new(500 * 15_000, STALE_NAN));
            // Every third series also has histograms, after its floats.
            let histograms: Vec<HistogramSample> = (0..if i % 3 == 0 { 300 } else { 0 })
                .map(|t| HistogramSample { t: 600 * 15_000 + t * 15_000, h: histogram(t) })
                .collect();
            // Every fifth series has start timestamps: a counter reset in the middle.
            let starts: &[(i64, i64)] = if i % 5 == 0 { &[(0, -1), (250 * 15_000, 3_749_000)] } else { &[] };
            w.add_series(CompactLabels::new(&labels), &samples, &histograms, starts).unwrap();
        }
        w.finish(0, 7_200_000, BlockCompaction { level: 1, ..Default::default() }).unwrap().unwrap()
    }

    #[test]
    fn block_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_block(tmp.path(), 300);
        let b = Block::open(&dir).unwrap();
        assert_eq!(b.meta.stats.num_series, 300);
        assert_eq!(b.meta.stats.num_samples, 300 * 501);
        assert_eq!(b.meta.stats.num_histogram_samples, 100 * 300);
        let found = b.select(&[Matcher::equal("i", "0007")]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(b.labels(&found[0].pairs), Labels::from_pairs([("__name__", "m"), ("i", "0007")]));
        let s = b.samples(&found[0], 15_000, 30_000).unwrap();
        assert_eq!(s, vec![Sample::new(15_000, 7.0), Sample::new(30_000, 14.0)]);
        let last = b.samples(&found[0], 500 * 15_000, i64::MAX).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].v.to_bits(), STALE_NAN.to_bits());
        assert!(b.histograms(&found[0], 0, i64::MAX).unwrap().is_empty());
        assert!(found[0].starts.is_empty());
        let reset = b.select(&[Matcher::equal("i", "0010")]).unwrap();
        assert_eq!(reset[0].starts, [(0, -1), (250 * 15_000, 3_749_000)]);
        let with = b.select(&[Matcher::equal("i", "0009")]).unwrap();
        let h = b.histograms(&with[0], 600 * 15_000, 601 * 15_000).unwrap();
        assert_eq!(
            h,
            vec![
                HistogramSample { t: 600 * 15_000, h: histogram(0) },
                HistogramSample { t: 601 * 15_000, h: histogram(1) },
            ]
        );
        // Found by a time range holding only its histograms.
        let all = b.select(&[Matcher::equal("__name__", "m")]).unwrap();
        assert_eq!(all.iter().filter(|s| s.overlaps(700 * 15_000, 800 * 15_000)).count(), 100);
        assert_eq!(all.iter().filter(|s| s.overlaps(0, 10)).count(), 300);
        let re = Matcher::new(osprey_model::MatchOp::RegexMatch, "i", "000[1-3]").unwrap();
        assert_eq!(b.select(&[re]).unwrap().len(), 3);
        assert!(b.select(&[Matcher::equal("i", "nope")]).unwrap().is_empty());
        assert_eq!(b.label_values("__name__").collect::<Vec<_>>(), vec!["m"]);
    }

    #[test]
    fn block_selects_are_cached_per_matcher_set_and_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let b = Block::open(&write_block(tmp.path(), 40)).unwrap();
        let re = || Matcher::new(osprey_model::MatchOp::RegexMatch, "i", "000[1-3]").unwrap();
        let first = b.select(&[re()]).unwrap();
        let again = b.select(&[re()]).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a repeated select is a cache hit");
        let uncached = b.select_uncached(&[re()]).unwrap();
        let labels = |all: &[BlockSeries]| all.iter().map(|s| b.labels(&s.pairs)).collect::<Vec<_>>();
        assert_eq!(labels(&again), labels(&uncached));
        assert_eq!(
            again.iter().map(|s| s.chunks.clone()).collect::<Vec<_>>(),
            uncached.iter().map(|s| s.chunks.clone()).collect::<Vec<_>>()
        );
        for i in 0..40 {
            let one = b.select(&[Matcher::equal("i", format!("{i:04}"))]).unwrap();
            assert_eq!(labels(&one), vec![Labels::from_pairs([("__name__", "m"), ("i", format!("{i:04}").as_str())])]);
        }
        assert_eq!(b.cached_selects(), SELECT_CACHE_ENTRIES);
        assert!(!Arc::ptr_eq(&first, &b.select(&[re()]).unwrap()), "the oldest entry was evicted");
    }

    #[test]
    fn corrupt_chunks_and_index_give_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_block(tmp.path(), 10);
        let chunks = dir.join("chunks");
        let mut bytes = fs::read(&chunks).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        fs::write(&chunks, &bytes).unwrap();
        let b = Block::open(&dir).unwrap();
        let all = b.select(&[]).unwrap();
        let err = all.iter().map(|s| b.samples(s, 0, i64::MAX)).find_map(Result::err).unwrap().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");

        let index = dir.join("index");
        let mut bytes = fs::read(&index).unwrap();
        bytes[20] ^= 0x01;
        fs::write(&index, &bytes).unwrap();
        let err = Block::open(&dir).err().unwrap().to_string();
        assert!(err.contains("corrupt block index") && err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn damaged_blocks_never_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_block(tmp.path(), 20);
        let (index, chunks) = (fs::read(dir.join("index")).unwrap(), fs::read(dir.join("chunks")).unwrap());
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let (file, original) = if round % 2 == 0 { ("index", &index) } else { ("chunks", &chunks) };
            let mut bytes = original.clone();
            let at = (seed as usize) % bytes.len();
            bytes[at] ^= (seed >> 32) as u8 | 1;
            if round % 7 == 0 {
                bytes.truncate(at);
            }
            fs::write(dir.join(file), &bytes).unwrap();
            if let Ok(b) = Block::open(&dir) {
                for s in b.select(&[]).iter().flat_map(|all| all.iter()) {
                    let _ = b.samples(s, i64::MIN, i64::MAX);
                    let _ = b.histograms(s, i64::MIN, i64::MAX);
                }
            }
            fs::write(dir.join(file), original).unwrap();
        }
    }

    #[test]
    fn ids_are_ulid_shaped_and_sort_by_time() {
        let (a, b) = (new_block_id(1_000), new_block_id(2_000));
        assert_eq!(a.len(), 26);
        assert!(a < b);
    }
}
