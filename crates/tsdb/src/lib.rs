//! Osprey's metrics storage engine: a per-tenant in-memory head backed by a write-ahead log,
//! persisted into immutable, compressed, checksummed blocks that are compacted into larger
//! ones and deleted by retention.
//!
//! Invariants:
//! - Tenancy is structural: each tenant has its own head, WAL and blocks under
//!   `<dir>/tenants/<tenant>/`; no code path reads across tenants.
//! - An acknowledged append has been `write()`-n to the WAL (survives a killed process);
//!   fsync follows [`WalSync`]. A damaged WAL tail is truncated and reported on open.
//! - The engine reads no clock: time only enters through sample timestamps and the `now_ms`
//!   argument of [`Tsdb::run_maintenance`].
//! - Every on-disk structure has a magic number, a version and CRC32 checksums; layouts are
//!   in `docs/format/`. Blocks are read through [`BlockReader`] byte ranges.
//! - Block directories appear atomically (written under a temporary name, then renamed);
//!   compaction deletes its sources only after the merged block is in place.
//!
//! Measured with `examples/ingest_bench.rs` (20k series of node_exporter-like data, 15s
//! scrapes with +-25ms jitter, 2000-series batches, release build, on a shared 2-core box):
//! ~1.15M samples appended per CPU second including WAL writes and dropping the requests
//! (1.1M samples/s wall-clock with 2 appender threads when the box was quiet); WAL 9.0
//! bytes/sample (snappy); 3.0 bytes/sample in head chunks; 2.8 bytes/sample on disk after
//! `flush_head` (regular counters: 0.12 bytes/sample, see
//! `regular_series_take_under_one_byte_per_sample_on_disk`). Head memory (`mem` mode, 200k
//! series x 120 samples): ~1.2 KiB resident per series including ~560 bytes of chunks.
//!
//! Native histograms are stored beside floats: a series holds floats, histograms or both at
//! different timestamps (Prometheus's rules: one newest timestamp per series decides what is out
//! of order, a timestamp holds one kind). Histograms have their own WAL record, head chunks
//! (allocated only for series that receive one) and per-series chunk list in block indexes;
//! [`Tsdb::select_histograms`] reads them. A stale histogram (sum = staleness NaN) is stored
//! as a float staleness marker, so `select` returns the marker that ends a series of either
//! kind and `select_histograms` never returns stale histograms.
//!
//! Start timestamps (OpenTelemetry's start time, Prometheus's created timestamp) are kept per
//! series as change points `(first sample t, start)` (`starts.rs`): a counter's start changes
//! only at resets, so a series holds one point per reset and series without any hold nothing
//! (a `None` pointer; appends of such series skip them without a lookup). Appends log the
//! points they change in their own WAL record, head cuts write each window's points into the
//! block's series entry (index version 3), compaction merges them per sample, and
//! [`Tsdb::select_start_timestamps`] expands them against the selected samples.
//!
//! Reads: [`Tsdb::select_series`] (the engine's `MetricsQuerier::select_series`) resolves at
//! call time only which series match and where their data is: per block the chunk
//! references from its index, per head series a snapshot of its chunks overlapping the range
//! (sealed chunks shared by reference count, the open chunk and out-of-order samples
//! copied), merged by labels. Each `next()` decodes one series, so a query holds one
//! series' samples at a time; the head snapshot is taken before the block list, so a head cut
//! while the stream is open loses nothing. `select` and `select_histograms` collect the same
//! stream for one kind (the latter skipping float-only blocks and a float-only head).
//! Which series match is cached per matcher set, as dashboards repeat their selects: the
//! head keeps its matching series sorted by labels until a series is created or removed
//! (64 sets, 1M series references in all), each block its matching series entries (16 sets,
//! 8 MiB); the time range is applied per query. The stream merges sources as flat index
//! keys into these results. Selecting 6.7k of 10k series x 6 labels (4 blocks and the
//! head, release build) took 29-36 ms to call before; now 22 ms the first time and 9-12 ms
//! repeated (call and drain: 69-77 -> 48-56 ms).
//!
//! Non-goals: integer-count histogram chunks (counts are floats, as PromQL computes with
//! them); remote storage (the [`BlockReader`] seam is where it would
//! plug in); query evaluation (PromQL lives in its own crate).

mod block;
mod block_writer;
mod compact_labels;
mod compactor;
mod db;
mod error;
mod exemplars;
mod frame_cache;
mod head;
mod options;
mod postings;
mod record;
mod select_cache;
mod series;
mod starts;
mod stats;
mod tenant;
mod wal;

pub use block::{BlockReader, MmapReader};
pub use db::{MaintenanceReport, OpenReport, Tsdb};
pub use error::TsdbError;
pub use options::{TsdbOptions, WalSync};
pub use stats::{HeadStats, TsdbStats};
pub use wal::WalRepair;

#[cfg(test)]
mod tests;
