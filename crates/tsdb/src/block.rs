//! Immutable blocks: reading them. A block is a directory `<id>/` holding `meta.json`,
//! `index` (symbols, series with chunk references, postings; each section CRC32-checked) and
//! `chunks` (zstd frames of encoded chunks, each CRC32-checked). Layouts, byte by byte, are in
//! `docs/format/block-index.md` and `docs/format/chunks.md`.
//!
//! Files are read through [`BlockReader`], a byte-range interface: local files are mmapped
//! today, an object store can serve the same format later.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use osprey_codec::CodecError;
use osprey_model::{HistogramSample, Label, Labels, MatchOp, Matcher, Sample};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::frame_cache::{next_block_key, FRAMES};
use crate::postings::{select_candidates, union};
use crate::record::Cursor;
use crate::select_cache::{SelectCache, SharedBudget};
use crate::series::{Floats, Histograms, Kind};
use crate::TsdbError;

pub(crate) const INDEX_MAGIC: u32 = 0x4F53_5049; // "OSPI"
pub(crate) const CHUNKS_MAGIC: u32 = 0x4F53_5043; // "OSPC"
/// Version of the chunks file (and of the index before native histograms).
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Version of the index: 2 adds each series' histogram chunk list, 3 its start-timestamp
/// change points; older versions are still read.
pub(crate) const INDEX_VERSION: u8 = 3;
pub(crate) const FILE_HEADER_LEN: u64 = 8;
pub(crate) const FRAME_HEADER_LEN: u64 = 12;
pub(crate) const INDEX_TRAILER_LEN: u64 = 32;
/// A frame claiming more than this is taken as corruption.
const MAX_FRAME_BYTES: u64 = 256 << 20;
/// Bounds of each block's cache of [`Block::select`] results: matcher sets, and bytes over
/// all of them (see [`BlockSeries::cached_bytes`]); a dashboard's 1.2k series with ten
/// labels and 48 chunks each (a day's block at 15s) take ~2.3 MiB.
pub(crate) const SELECT_CACHE_ENTRIES: usize = 16;
const SELECT_CACHE_BYTES: usize = 8 << 20;
/// What every block's select cache holds together, in every tenant: their number must not
/// multiply the memory.
static SELECT_CACHES_BYTES: SharedBudget = SharedBudget::new(64 << 20);

/// Random access to the bytes of one block file.
pub trait BlockReader: Send + Sync {
    fn size(&self) -> u64;
    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes>;
}

/// A local file, memory-mapped once; ranges are zero-copy slices of the map.
pub struct MmapReader {
    bytes: Bytes,
}

impl MmapReader {
    pub fn open(path: &Path) -> io::Result<MmapReader> {
        let file = fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(MmapReader { bytes: Bytes::new() });
        }
        // SAFETY: block files are immutable once renamed into place; nothing writes to or
        // truncates them while mapped (deletion unlinks, which keeps the mapping valid).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(MmapReader { bytes: Bytes::from_owner(map) })
    }
}

impl BlockReader for MmapReader {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let end = offset.checked_add(len).filter(|&e| e <= self.size()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, format!("range {offset}+{len} beyond {} bytes", self.size()))
        })?;
        Ok(self.bytes.slice(offset as usize..end as usize))
    }
}

/// `meta.json`, Prometheus-shaped. The time range is half-open: `[minTime, maxTime)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    pub version: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Float samples.
    pub num_samples: u64,
    #[serde(default)]
    pub num_histogram_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCompaction {
    pub level: u32,
    /// The level-1 blocks whose data this block holds.
    pub sources: Vec<String>,
    /// The blocks compacted into this one; on open, any still present are deleted (a crash
    /// between writing this block and deleting them leaves both).
    #[serde(default)]
    pub parents: Vec<String>,
}

/// Where a chunk lives: the chunks-file offset of its frame, and its range in the
/// decompressed frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ChunkRef {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) frame: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

/// One series of a block, decoded from the index on demand: its labels as (name, value)
/// references into the block's symbols (strings are copied only by [`Block::labels`]), and
/// its chunks.
pub(crate) struct BlockSeries {
    pub(crate) pairs: Vec<(u32, u32)>,
    /// Float chunks.
    pub(crate) chunks: Vec<ChunkRef>,
    pub(crate) histogram_chunks: Vec<ChunkRef>,
    /// Start-timestamp change points of the series' samples (see `starts.rs`).
    pub(crate) starts: Vec<(i64, i64)>,
}

impl BlockSeries {
    /// Heap bytes held by a cached series: the struct and its three vectors' contents, plus
    /// an allocator's overhead per allocation.
    fn cached_bytes(&self) -> usize {
        std::mem::size_of::<BlockSeries>()
            + 4 * 16
            + self.pairs.len() * std::mem::size_of::<(u32, u32)>()
            + self.starts.len() * std::mem::size_of::<(i64, i64)>()
            + (self.chunks.len() + self.histogram_chunks.len()) * std::mem::size_of::<ChunkRef>()
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.chunks.iter().chain(&self.histogram_chunks).any(|c| c.min_t <= maxt && c.max_t >= mint)
    }
}

/// Where one postings list starts in the index, and its length.
struct PostingList {
    value: u32,
    offset: u64,
    len: u32,
}

/// An open block. Only the symbols, one offset per series and one reference per postings
/// list stay in memory; series entries and postings lists are decoded from the (mmapped)
/// index when a query needs them, so a block costs about 8 bytes per series plus its
/// distinct label strings.
pub(crate) struct Block {
    pub(crate) dir: PathBuf,
    pub(crate) meta: BlockMeta,
    index: Bytes,
    index_version: u8,
    symbols: Vec<String>,
    /// Offset of each series entry in `index`, in series order.
    series: Vec<u64>,
    /// Label name -> lists sorted by value.
    postings: HashMap<String, Vec<PostingList>>,
    chunks: Box<dyn BlockReader>,
    pub(crate) disk_bytes: u64,
    /// The last decompressed frame of readers without their own ([`Block::samples`]).
    last_frame: Mutex<LastFrame>,
    /// This block's key in [`FRAMES`] and in the tenant's merged select results: unique
    /// among the blocks the process opened.
    pub(crate) frames_key: u64,
    select_cache: SelectCache<Arc<[BlockSeries]>>,
}

/// The chunk frame a reader used last. Series are read in index order, so a reader's
/// consecutive chunks mostly lie in one frame, found once. Each reader keeps its own, so
/// that readers on different threads do not evict each other's. Queries share the frames
/// they decompress with later queries ([`FRAMES`]); a scan of every frame (compaction)
/// does not, so as not to evict what queries use.
pub(crate) struct LastFrame {
    frame: Option<(u64, Arc<Vec<u8>>)>,
    share: bool,
}

impl LastFrame {
    /// A query's reader.
    pub(crate) fn shared() -> LastFrame {
        LastFrame { frame: None, share: true }
    }

    /// A scan's reader.
    fn private() -> LastFrame {
        LastFrame { frame: None, share: false }
    }
}

fn corrupt(path: &Path, what: &'static str, reason: impl Into<String>) -> TsdbError {
    TsdbError::Corrupt { path: path.to_path_buf(), what, reason: reason.into() }
}

/// Checks the section at `offset` (`[len u32 BE][payload][crc32 u32 BE]`) and returns the
/// payload's range in `buf`.
fn section(buf: &[u8], offset: u64, path: &Path, what: &'static str) -> Result<(usize, usize), TsdbError> {
    let start = usize::try_from(offset).map_err(|_| corrupt(path, what, "section offset beyond file"))?;
    let len_bytes =
        buf.get(start..start.saturating_add(4)).ok_or_else(|| corrupt(path, what, "section offset beyond file"))?;
    let len = u32::from_be_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
    let (from, to) = (start + 4, start + 4 + len);
    let payload = buf.get(from..to).ok_or_else(|| corrupt(path, what, "section beyond file"))?;
    let crc_bytes = buf.get(to..to + 4).ok_or_else(|| corrupt(path, what, "section beyond file"))?;
    if crc32fast::hash(payload) != u32::from_be_bytes(crc_bytes.try_into().unwrap_or_default()) {
        return Err(corrupt(path, what, "checksum mismatch"));
    }
    Ok((from, to))
}

/// Checks magic and version; returns the version.
fn check_header(buf: &[u8], magic: u32, newest: u8, path: &Path, what: &'static str) -> Result<u8, TsdbError> {
    if buf.len() < FILE_HEADER_LEN as usize || u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) != magic {
        return Err(corrupt(path, what, "bad magic number"));
    }
    if !(1..=newest).contains(&buf[4]) {
        return Err(corrupt(path, what, format!("unsupported format version {}", buf[4])));
    }
    Ok(buf[4])
}

fn parse_symbols(payload: &[u8]) -> Result<Vec<String>, CodecError> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let n = c.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = c.count()?;
        let s =
            std::str::from_utf8(&payload[c.pos..c.pos + len]).map_err(|_| CodecError::Corrupt("symbol not UTF-8"))?;
        out.push(s.to_string());
        c.pos += len;
    }
    Ok(out)
}

fn decode_chunk_refs(c: &mut Cursor<'_>) -> Result<Vec<ChunkRef>, CodecError> {
    let nc = c.count()?;
    let mut chunks = Vec::with_capacity(nc);
    let mut prev_max = 0i64;
    for _ in 0..nc {
        let min_t = prev_max.wrapping_add(c.varint()?);
        let max_t = min_t.wrapping_add(c.uvarint()? as i64);
        let frame = c.uvarint()?;
        let offset = u32::try_from(c.uvarint()?).map_err(|_| CodecError::Corrupt("chunk offset"))?;
        let len = u32::try_from(c.uvarint()?).map_err(|_| CodecError::Corrupt("chunk length"))?;
        chunks.push(ChunkRef { min_t, max_t, frame, offset, len });
        prev_max = max_t;
    }
    Ok(chunks)
}

fn decode_start_points(c: &mut Cursor<'_>) -> Result<Vec<(i64, i64)>, CodecError> {
    let n = c.count()?;
    let mut points = Vec::with_capacity(n);
    let (mut t, mut start) = (0i64, 0i64);
    for _ in 0..n {
        t = t.wrapping_add(c.varint()?);
        start = start.wrapping_add(c.varint()?);
        if points.last().is_some_and(|&(prev, _)| prev >= t) {
            return Err(CodecError::Corrupt("start timestamp points out of order"));
        }
        points.push((t, start));
    }
    Ok(points)
}

/// Decodes one series entry at `c.pos` of an index of `version`.
fn decode_series(c: &mut Cursor<'_>, symbols: usize, version: u8) -> Result<BlockSeries, CodecError> {
    let nl = c.count()?;
    let mut labels = Vec::with_capacity(nl);
    for _ in 0..nl {
        labels.push((c.symbol(symbols)?, c.symbol(symbols)?));
    }
    let chunks = decode_chunk_refs(c)?;
    let histogram_chunks = if version >= 2 { decode_chunk_refs(c)? } else { Vec::new() };
    let starts = if version >= 3 { decode_start_points(c)? } else { Vec::new() };
    Ok(BlockSeries { pairs: labels, chunks, histogram_chunks, starts })
}

impl Drop for Block {
    fn drop(&mut self) {
        FRAMES.forget_block(self.frames_key);
    }
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json`, verifies the index (magic, version, every
    /// section's checksum, every reference) and the chunks file header.
    pub(crate) fn open(dir: &Path) -> Result<Block, TsdbError> {
        let meta_path = dir.join("meta.json");
        let meta_bytes = fs::read(&meta_path).map_err(TsdbError::io(&meta_path))?;
        let meta: BlockMeta =
            serde_json::from_slice(&meta_bytes).map_err(|e| corrupt(&meta_path, "block meta", e.to_string()))?;
        let index_path = dir.join("index");
        let index = MmapReader::open(&index_path).map_err(TsdbError::io(&index_path))?;
        let chunks_path = dir.join("chunks");
        let chunks = MmapReader::open(&chunks_path).map_err(TsdbError::io(&chunks_path))?;
        let mut block = Block::from_readers(dir, meta, &index, Box::new(chunks))?;
        block.disk_bytes = index.size() + block.chunks.size() + meta_bytes.len() as u64;
        Ok(block)
    }

    fn from_readers(
        dir: &Path,
        meta: BlockMeta,
        index: &dyn BlockReader,
        chunks: Box<dyn BlockReader>,
    ) -> Result<Block, TsdbError> {
        let index_path = dir.join("index");
        let buf = index.read_range(0, index.size()).map_err(TsdbError::io(&index_path))?;
        let what = "block index";
        let index_version = check_header(&buf, INDEX_MAGIC, INDEX_VERSION, &index_path, what)?;
        if (buf.len() as u64) < FILE_HEADER_LEN + INDEX_TRAILER_LEN {
            return Err(corrupt(&index_path, what, "file too short"));
        }
        let trailer = &buf[buf.len() - INDEX_TRAILER_LEN as usize..];
        let word = |i: usize| u64::from_be_bytes(trailer[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let crc = u32::from_be_bytes(trailer[24..28].try_into().unwrap_or_default());
        let magic = u32::from_be_bytes(trailer[28..32].try_into().unwrap_or_default());
        if crc32fast::hash(&trailer[..24]) != crc || magic != INDEX_MAGIC {
            return Err(corrupt(&index_path, what, "table of contents checksum mismatch"));
        }
        let parse_err = |e: CodecError| corrupt(&index_path, what, e.to_string());
        let (from, to) = section(&buf, word(0), &index_path, what)?;
        let symbols = parse_symbols(&buf[from..to]).map_err(parse_err)?;

        let (from, to) = section(&buf, word(1), &index_path, what)?;
        let mut c = Cursor { buf: &buf[..to], pos: from };
        let n = c.count().map_err(parse_err)?;
        let mut series = Vec::with_capacity(n);
        for _ in 0..n {
            series.push(c.pos as u64);
            decode_series(&mut c, symbols.len(), index_version).map_err(parse_err)?;
        }

        let (from, to) = section(&buf, word(2), &index_path, what)?;
        let mut c = Cursor { buf: &buf[..to], pos: from };
        let n = c.count().map_err(parse_err)?;
        let mut postings: HashMap<String, Vec<PostingList>> = HashMap::new();
        for _ in 0..n {
            let name = c.symbol(symbols.len()).map_err(parse_err)?;
            let value = c.symbol(symbols.len()).map_err(parse_err)?;
            let len = c.count().map_err(parse_err)?;
            let offset = c.pos as u64;
            let mut id = 0u64;
            for _ in 0..len {
                id = id.wrapping_add(c.uvarint().map_err(parse_err)?);
                if id >= series.len() as u64 {
                    return Err(corrupt(&index_path, what, "posting beyond series count"));
                }
            }
            let name = &symbols[name as usize];
            let lists = match postings.get_mut(name.as_str()) {
                Some(lists) => lists,
                None => postings.entry(name.clone()).or_default(),
            };
            lists.push(PostingList { value, offset, len: len as u32 });
        }
        for lists in postings.values_mut() {
            lists.sort_by(|a, b| symbols[a.value as usize].cmp(&symbols[b.value as usize]));
        }

        let chunks_path = dir.join("chunks");
        let head = chunks.read_range(0, FILE_HEADER_LEN.min(chunks.size())).map_err(TsdbError::io(&chunks_path))?;
        check_header(&head, CHUNKS_MAGIC, FORMAT_VERSION, &chunks_path, "chunks file")?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index: buf,
            index_version,
            symbols,
            series,
            postings,
            chunks,
            disk_bytes: 0,
            last_frame: Mutex::new(LastFrame::private()),
            frames_key: next_block_key(),
            select_cache: SelectCache::new(SELECT_CACHE_ENTRIES, SELECT_CACHE_BYTES, Some(&SELECT_CACHES_BYTES)),
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.meta.ulid
    }

    pub(crate) fn num_series(&self) -> usize {
        self.series.len()
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    /// Whether all of the block's data lies inside `[mint, maxt]`.
    pub(crate) fn within(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time >= mint && self.meta.max_time.saturating_sub(1) <= maxt
    }

    fn index_error(&self, e: CodecError) -> TsdbError {
        corrupt(&self.dir.join("index"), "block index", e.to_string())
    }

    fn decode_posting_list(&self, list: &PostingList) -> Result<Vec<u64>, CodecError> {
        let mut c = Cursor { buf: &self.index, pos: list.offset as usize };
        let mut ids = Vec::with_capacity(list.len as usize);
        let mut id = 0u64;
        for _ in 0..list.len {
            id = id.wrapping_add(c.uvarint()?);
            ids.push(id);
        }
        Ok(ids)
    }

    /// Series `i`: its label symbol pairs and chunk references.
    pub(crate) fn series(&self, i: usize) -> Result<BlockSeries, TsdbError> {
        let offset =
            *self.series.get(i).ok_or_else(|| self.index_error(CodecError::Corrupt("series id out of range")))?;
        let mut c = Cursor { buf: &self.index, pos: offset as usize };
        decode_series(&mut c, self.symbols.len(), self.index_version).map_err(|e| self.index_error(e))
    }

    /// The symbol table that [`BlockSeries::pairs`] refer to; every reference was checked
    /// against it when the block was opened.
    pub(crate) fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The owned labels of a series' [`BlockSeries::pairs`].
    pub(crate) fn labels(&self, pairs: &[(u32, u32)]) -> Labels {
        let labels = pairs
            .iter()
            .map(|&(n, v)| Label { name: self.symbols[n as usize].clone(), value: self.symbols[v as usize].clone() })
            .collect();
        crate::record::labels_from_vec(labels)
    }

    /// Series matching every matcher, in label order, whatever their time range (callers
    /// filter chunks per query). The block is immutable, so results are cached per matcher
    /// set: dashboards repeat the same selects, and decoding postings and series entries was
    /// most of their index work.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Result<Arc<[BlockSeries]>, TsdbError> {
        if let Some(series) = self.select_cache.get(matchers) {
            return Ok(series);
        }
        let series: Arc<[BlockSeries]> = self.select_uncached(matchers)?.into();
        self.select_cache.insert(matchers, series.clone(), series.iter().map(BlockSeries::cached_bytes).sum());
        Ok(series)
    }

    /// How many matcher sets have cached results.
    #[cfg(test)]
    pub(crate) fn cached_selects(&self) -> usize {
        self.select_cache.len()
    }

    /// [`Block::select`] without the cache.
    pub(crate) fn select_uncached(&self, matchers: &[Matcher]) -> Result<Vec<BlockSeries>, TsdbError> {
        let mut failure = None;
        let ids = select_candidates(
            matchers,
            |m| {
                let Some(lists) = self.postings.get(m.name.as_str()) else { return Vec::new() };
                let value = |l: &PostingList| self.symbols[l.value as usize].as_str();
                let chosen: Vec<&PostingList> = if m.op == MatchOp::Equal {
                    let found = lists.binary_search_by(|l| value(l).cmp(m.value.as_str()));
                    found.map(|i| vec![&lists[i]]).unwrap_or_default()
                } else {
                    lists.iter().filter(|l| m.matches(value(l))).collect()
                };
                let mut decoded = Vec::with_capacity(chosen.len());
                for l in chosen {
                    match self.decode_posting_list(l) {
                        Ok(ids) => decoded.push(ids),
                        Err(e) => failure = Some(e),
                    }
                }
                union(decoded.iter().map(Vec::as_slice))
            },
            || (0..self.series.len() as u64).collect(),
        );
        if let Some(e) = failure {
            return Err(self.index_error(e));
        }
        let mut out = Vec::new();
        for id in ids {
            let series = self.series(id as usize)?;
            let value_of = |name: &str| {
                series
                    .pairs
                    .iter()
                    .find(|&&(n, _)| self.symbols[n as usize] == name)
                    .map(|&(_, v)| self.symbols[v as usize].as_str())
            };
            if matchers.iter().all(|m| m.matches(value_of(&m.name).unwrap_or(""))) {
                out.push(series);
            }
        }
        Ok(out)
    }

    pub(crate) fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(String::as_str)
    }

    pub(crate) fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.postings.get(name).into_iter().flatten().map(|l| self.symbols[l.value as usize].as_str())
    }

    fn frame(&self, offset: u64, last: &mut LastFrame) -> Result<Arc<Vec<u8>>, TsdbError> {
        if let Some((o, f)) = &last.frame {
            if *o == offset {
                return Ok(f.clone());
            }
        }
        if let Some(f) = FRAMES.get(self.frames_key, offset) {
            last.frame = Some((offset, f.clone()));
            return Ok(f);
        }
        let path = || self.dir.join("chunks");
        let what = "chunks file";
        let header =
            self.chunks.read_range(offset, FRAME_HEADER_LEN).map_err(|e| corrupt(&path(), what, e.to_string()))?;
        let word = |i: usize| u32::from_be_bytes(header[i * 4..i * 4 + 4].try_into().unwrap_or_default());
        let (clen, rlen, crc) = (u64::from(word(0)), u64::from(word(1)), word(2));
        if clen > MAX_FRAME_BYTES || rlen > MAX_FRAME_BYTES {
            return Err(corrupt(&path(), what, format!("implausible frame size at offset {offset}")));
        }
        let data = self
            .chunks
            .read_range(offset + FRAME_HEADER_LEN, clen)
            .map_err(|e| corrupt(&path(), what, e.to_string()))?;
        if crc32fast::hash(&data) != crc {
            return Err(corrupt(&path(), what, format!("checksum mismatch in frame at offset {offset}")));
        }
        let raw = zstd::bulk::decompress(&data, rlen as usize)
            .map_err(|e| corrupt(&path(), what, format!("frame at offset {offset}: {e}")))?;
        let raw = Arc::new(raw);
        if last.share {
            FRAMES.insert(self.frames_key, offset, raw.clone());
        }
        last.frame = Some((offset, raw.clone()));
        Ok(raw)
    }

    /// Float samples of a series with `mint <= t <= maxt`, in time order.
    pub(crate) fn samples(&self, series: &BlockSeries, mint: i64, maxt: i64) -> Result<Vec<Sample>, TsdbError> {
        self.read_chunks::<Floats>(&series.chunks, mint, maxt, &mut self.last_frame.lock())
    }

    /// Histogram samples of a series with `mint <= t <= maxt`, in time order.
    pub(crate) fn histograms(
        &self,
        series: &BlockSeries,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<HistogramSample>, TsdbError> {
        self.read_chunks::<Histograms>(&series.histogram_chunks, mint, maxt, &mut self.last_frame.lock())
    }

    /// Samples of one kind in the chunks `refs` of a series with `mint <= t <= maxt`, in time
    /// order; `last` is the reader's last frame.
    pub(crate) fn read_chunks<K: Kind>(
        &self,
        refs: &[ChunkRef],
        mint: i64,
        maxt: i64,
        last: &mut LastFrame,
    ) -> Result<Vec<K::Sample>, TsdbError> {
        let mut out = Vec::new();
        let path = || self.dir.join("chunks");
        for c in refs.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            let frame = self.frame(c.frame, last)?;
            let (start, end) = (c.offset as usize, c.offset as usize + c.len as usize);
            let bytes =
                frame.get(start..end).ok_or_else(|| corrupt(&path(), "chunks file", "chunk beyond its frame"))?;
            K::decode(bytes, &mut out).map_err(|e| corrupt(&path(), "chunk", e.to_string()))?;
        }
        out.retain(|s| (mint..=maxt).contains(&K::t(s)));
        Ok(out)
    }
}
