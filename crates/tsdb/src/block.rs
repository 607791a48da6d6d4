//! Immutable blocks: reading them. A block is a directory `<id>/` holding `meta.json`,
//! `index` (symbols, series with chunk references, postings; each section CRC32-checked) and
//! `chunks` (zstd frames of encoded chunks, each CRC32-checked). Layouts, byte by byte, are in
//! `docs/format/block-index.md` and `docs/format/chunks.md`.
//!
//! Files are read through [`BlockReader`], a byte-range interface: local files are mmapped
//! today, an object store can serve the same format later.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use osprey_codec::{decode_chunk, get_uvarint, get_varint, CodecError};
use osprey_model::{Label, Labels, Matcher, Sample};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::postings::{matches_all, Postings};
use crate::TsdbError;

pub(crate) const INDEX_MAGIC: u32 = 0x4F53_5049; // "OSPI"
pub(crate) const CHUNKS_MAGIC: u32 = 0x4F53_5043; // "OSPC"
pub(crate) const FORMAT_VERSION: u8 = 1;
pub(crate) const FILE_HEADER_LEN: u64 = 8;
pub(crate) const FRAME_HEADER_LEN: u64 = 12;
pub(crate) const INDEX_TRAILER_LEN: u64 = 32;
/// A frame claiming more than this is taken as corruption.
const MAX_FRAME_BYTES: u64 = 256 << 20;

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
    pub num_samples: u64,
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

pub(crate) struct BlockSeries {
    pub(crate) labels: Labels,
    pub(crate) chunks: Vec<ChunkRef>,
}

pub(crate) struct Block {
    pub(crate) dir: PathBuf,
    pub(crate) meta: BlockMeta,
    pub(crate) series: Vec<BlockSeries>,
    postings: Postings,
    chunks: Box<dyn BlockReader>,
    pub(crate) disk_bytes: u64,
    /// The last decompressed frame: series are read in index order, so consecutive reads
    /// mostly hit the same frame.
    last_frame: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

fn corrupt(path: &Path, what: &'static str, reason: impl Into<String>) -> TsdbError {
    TsdbError::Corrupt { path: path.to_path_buf(), what, reason: reason.into() }
}

/// Reads `[len u32 BE][payload][crc32 u32 BE]` at `offset`, checking the CRC.
fn read_section<'a>(buf: &'a [u8], offset: u64, path: &Path, what: &'static str) -> Result<&'a [u8], TsdbError> {
    let start = offset as usize;
    let len_bytes = buf.get(start..start + 4).ok_or_else(|| corrupt(path, what, "section offset beyond file"))?;
    let len = u32::from_be_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
    let payload = buf.get(start + 4..start + 4 + len).ok_or_else(|| corrupt(path, what, "section beyond file"))?;
    let crc_bytes =
        buf.get(start + 4 + len..start + 8 + len).ok_or_else(|| corrupt(path, what, "section beyond file"))?;
    if crc32fast::hash(payload) != u32::from_be_bytes(crc_bytes.try_into().unwrap_or_default()) {
        return Err(corrupt(path, what, "checksum mismatch"));
    }
    Ok(payload)
}

fn check_header(buf: &[u8], magic: u32, path: &Path, what: &'static str) -> Result<(), TsdbError> {
    if buf.len() < FILE_HEADER_LEN as usize || u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) != magic {
        return Err(corrupt(path, what, "bad magic number"));
    }
    if buf[4] != FORMAT_VERSION {
        return Err(corrupt(path, what, format!("unsupported format version {}", buf[4])));
    }
    Ok(())
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn uvarint(&mut self) -> Result<u64, CodecError> {
        get_uvarint(self.buf, &mut self.pos)
    }
    fn varint(&mut self) -> Result<i64, CodecError> {
        get_varint(self.buf, &mut self.pos)
    }
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.uvarint()? as usize;
        (n <= self.buf.len() - self.pos).then_some(n).ok_or(CodecError::Corrupt("count exceeds section size"))
    }
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

fn symbol(symbols: &[String], i: u64) -> Result<&str, CodecError> {
    symbols.get(i as usize).map(String::as_str).ok_or(CodecError::Corrupt("symbol reference out of range"))
}

fn parse_series(payload: &[u8], symbols: &[String]) -> Result<Vec<BlockSeries>, CodecError> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let n = c.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = c.count()?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let name = symbol(symbols, c.uvarint()?)?.to_string();
            let value = symbol(symbols, c.uvarint()?)?.to_string();
            labels.push(Label { name, value });
        }
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
        out.push(BlockSeries { labels: crate::record::labels_from_vec(labels), chunks });
    }
    Ok(out)
}

fn parse_postings(payload: &[u8], symbols: &[String], num_series: usize) -> Result<Postings, CodecError> {
    let mut c = Cursor { buf: payload, pos: 0 };
    let n = c.count()?;
    let mut p = Postings::default();
    for _ in 0..n {
        let name = symbol(symbols, c.uvarint()?)?;
        let value = symbol(symbols, c.uvarint()?)?;
        let k = c.count()?;
        let mut ids = Vec::with_capacity(k);
        let mut id = 0u64;
        for _ in 0..k {
            id = id.wrapping_add(c.uvarint()?);
            if id as usize >= num_series {
                return Err(CodecError::Corrupt("posting beyond series count"));
            }
            ids.push(id);
        }
        p.insert_list(name, value, ids);
    }
    p.set_all((0..num_series as u64).collect());
    Ok(p)
}

impl Block {
    /// Opens the block in `dir`, reading and verifying `meta.json` and the whole index.
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
        check_header(&buf, INDEX_MAGIC, &index_path, what)?;
        if (buf.len() as u64) < FILE_HEADER_LEN + INDEX_TRAILER_LEN {
            return Err(corrupt(&index_path, what, "file too short"));
        }
        let trailer = &buf[buf.len() - INDEX_TRAILER_LEN as usize..];
        let word = |i: usize| u64::from_be_bytes(trailer[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let crc = u32::from_be_bytes(trailer[24..28].try_into().unwrap_or_default());
        if crc32fast::hash(&trailer[..24]) != crc
            || u32::from_be_bytes(trailer[28..32].try_into().unwrap_or_default()) != INDEX_MAGIC
        {
            return Err(corrupt(&index_path, what, "table of contents checksum mismatch"));
        }
        let parse_err = |e: CodecError| corrupt(&index_path, what, e.to_string());
        let symbols = parse_symbols(read_section(&buf, word(0), &index_path, what)?).map_err(parse_err)?;
        let series = parse_series(read_section(&buf, word(1), &index_path, what)?, &symbols).map_err(parse_err)?;
        let postings = parse_postings(read_section(&buf, word(2), &index_path, what)?, &symbols, series.len())
            .map_err(parse_err)?;
        let chunks_path = dir.join("chunks");
        let head = chunks.read_range(0, FILE_HEADER_LEN.min(chunks.size())).map_err(TsdbError::io(&chunks_path))?;
        check_header(&head, CHUNKS_MAGIC, &chunks_path, "chunks file")?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            series,
            postings,
            chunks,
            disk_bytes: 0,
            last_frame: Mutex::new(None),
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.meta.ulid
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    /// Indexes of series matching every matcher with a chunk overlapping `[mint, maxt]`.
    pub(crate) fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<usize> {
        self.postings
            .candidates(matchers)
            .into_iter()
            .map(|i| i as usize)
            .filter(|&i| {
                let s = &self.series[i];
                matches_all(&s.labels, matchers) && s.chunks.iter().any(|c| c.min_t <= maxt && c.max_t >= mint)
            })
            .collect()
    }

    pub(crate) fn postings(&self) -> &Postings {
        &self.postings
    }

    /// Whether all of the block's data lies inside `[mint, maxt]`.
    pub(crate) fn within(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time >= mint && self.meta.max_time.saturating_sub(1) <= maxt
    }

    fn frame(&self, offset: u64) -> Result<Arc<Vec<u8>>, TsdbError> {
        if let Some((o, f)) = self.last_frame.lock().as_ref() {
            if *o == offset {
                return Ok(f.clone());
            }
        }
        let path = self.dir.join("chunks");
        let what = "chunks file";
        let header =
            self.chunks.read_range(offset, FRAME_HEADER_LEN).map_err(|e| corrupt(&path, what, e.to_string()))?;
        let word = |i: usize| u32::from_be_bytes(header[i * 4..i * 4 + 4].try_into().unwrap_or_default());
        let (clen, rlen, crc) = (u64::from(word(0)), u64::from(word(1)), word(2));
        if clen > MAX_FRAME_BYTES || rlen > MAX_FRAME_BYTES {
            return Err(corrupt(&path, what, format!("implausible frame size at offset {offset}")));
        }
        let data =
            self.chunks.read_range(offset + FRAME_HEADER_LEN, clen).map_err(|e| corrupt(&path, what, e.to_string()))?;
        if crc32fast::hash(&data) != crc {
            return Err(corrupt(&path, what, format!("checksum mismatch in frame at offset {offset}")));
        }
        let raw = zstd::bulk::decompress(&data, rlen as usize)
            .map_err(|e| corrupt(&path, what, format!("frame at offset {offset}: {e}")))?;
        let raw = Arc::new(raw);
        *self.last_frame.lock() = Some((offset, raw.clone()));
        Ok(raw)
    }

    /// Samples of series `i` with `mint <= t <= maxt`, in time order.
    pub(crate) fn samples(&self, i: usize, mint: i64, maxt: i64) -> Result<Vec<Sample>, TsdbError> {
        let mut out = Vec::new();
        let path = self.dir.join("chunks");
        for c in self.series[i].chunks.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            let frame = self.frame(c.frame)?;
            let (start, end) = (c.offset as usize, c.offset as usize + c.len as usize);
            let bytes = frame.get(start..end).ok_or_else(|| corrupt(&path, "chunks file", "chunk beyond its frame"))?;
            decode_chunk(bytes, &mut out).map_err(|e| corrupt(&path, "chunk", e.to_string()))?;
        }
        out.retain(|s| s.t >= mint && s.t <= maxt);
        Ok(out)
    }
}
