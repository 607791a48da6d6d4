//! Ingest throughput and bytes per sample on disk, on synthetic scrape-like data.
//!
//! `cargo run --release -p osprey-tsdb --example ingest_bench -- [series] [scrapes] [threads] [mem|packed]`
//!
//! With `packed`, batches are appended as the remote-write handler appends them
//! ([`Tsdb::append_packed`], labels packed before the clock starts) instead of as owned
//! [`WriteRequest`]s. With `mem` as the fourth argument, batches are generated while appending (one thread) and the
//! resident memory the engine added is reported per series instead of the ingest rate.
//!
//! Series are a mix like node_exporter's: integer counters with irregular increments, float
//! gauges with two decimals, and constants; scrapes are 15s apart with +-25ms jitter. Each
//! append carries one scrape of a slice of the series, as a remote-write batch would.

use std::sync::Arc;
use std::time::Instant;

use osprey_model::{Labels, PackedWriteRequest, Sample, TenantId, TimeSeries, WriteRequest};
use osprey_tsdb::{Tsdb, TsdbOptions, WalSync};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`; the machine may
/// be shared, so throughput per CPU second is the steadier figure.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident set size in bytes, from `/proc/self/statm` (pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// One scrape of every series, as remote-write sized batches.
fn scrape_batches(labels: &[Labels], values: &mut [f64], rng: &mut Rng, t: i64, batch: usize) -> Vec<WriteRequest> {
    let mut out = Vec::new();
    for start in (0..labels.len()).step_by(batch) {
        let mut req = WriteRequest::default();
        for i in start..(start + batch).min(labels.len()) {
            let jitter = rng.below(51) as i64 - 25;
            values[i] = match i % 10 {
                0..=4 => values[i] + rng.below(10_000) as f64,
                5..=7 => ((values[i] + (rng.below(200) as f64 - 100.0) / 100.0) * 100.0).round() / 100.0,
                _ => values[i],
            };
            req.series.push(TimeSeries {
                labels: labels[i].clone(),
                samples: vec![Sample::new(t + jitter, values[i])],
                exemplars: Vec::new(),
                histograms: Vec::new(),
                start_timestamps: Vec::new(),
            });
        }
        out.push(req);
    }
    out
}

/// A batch as the engine is handed it.
enum Batch {
    Owned(WriteRequest),
    Packed(PackedWriteRequest),
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let series = args.first().copied().unwrap_or(20_000);
    let scrapes = args.get(1).copied().unwrap_or(480);
    let threads = args.get(2).copied().unwrap_or(2).max(1);
    let batch_series = 2_000;

    let labels: Vec<Labels> = (0..series)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("metric_{}", i % 200)),
                ("instance", format!("host-{}.example.org:9100", i / 200)),
                ("job", "node".to_string()),
                ("cpu", format!("{}", i % 8)),
            ])
        })
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values: Vec<f64> = (0..series).map(|i| (i % 1000) as f64).collect();
    let start_ms = 1_700_000_000_000i64;
    if std::env::args().any(|a| a == "mem") {
        measure_memory(&labels, &mut values, &mut rng, start_ms, scrapes, batch_series);
        return;
    }
    // Pre-build the batches so the timing covers only the engine.
    let mut batches = Vec::new();
    for scrape in 0..scrapes {
        let t = start_ms + scrape as i64 * 15_000;
        batches.extend(scrape_batches(&labels, &mut values, &mut rng, t, batch_series));
    }
    let total_samples = (series * scrapes) as f64;

    let dir = tempfile::tempdir().expect("temp dir");
    let opts =
        TsdbOptions { wal_sync: WalSync::Interval(std::time::Duration::from_secs(1)), ..TsdbOptions::new(dir.path()) };
    let (db, _) = Tsdb::open(opts).expect("open");
    let db = Arc::new(db);
    let tenant = TenantId::default_tenant();
    // Scrape rounds must stay in order per series: threads take alternate series slices.
    let per_round = series.div_ceil(batch_series);
    let packed = std::env::args().any(|a| a == "packed");
    let mut per_thread: Vec<Vec<Batch>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        let b = if packed { Batch::Packed(PackedWriteRequest::from(b)) } else { Batch::Owned(b) };
        per_thread[(i % per_round) % threads].push(b);
    }
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let handles: Vec<_> = per_thread
        .into_iter()
        .map(|reqs| {
            let (db, tenant) = (db.clone(), tenant.clone());
            std::thread::spawn(move || {
                for r in reqs {
                    match r {
                        Batch::Owned(r) => db.append(&tenant, r),
                        Batch::Packed(r) => db.append_packed(&tenant, r),
                    }
                    .expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    let stats = db.stats();
    let head = db.head_stats(&tenant);
    println!(
        "ingest{}: {} samples in {:.2}s = {:.0} samples/s ({} threads), {:.2} CPU s = {:.0} samples per CPU second; \
         head chunk bytes {:.2} B/sample; wal {:.2} B/sample",
        if packed { " (packed)" } else { "" },
        stats.samples_appended,
        secs,
        total_samples / secs,
        threads,
        cpu,
        total_samples / cpu,
        head.chunk_bytes as f64 / total_samples,
        stats.wal_bytes_written as f64 / total_samples,
    );
    let started = Instant::now();
    db.flush_head().expect("flush");
    let flushed = db.stats();
    println!(
        "flush: {:.2}s; blocks {} bytes {} = {:.3} B/sample on disk",
        started.elapsed().as_secs_f64(),
        flushed.blocks,
        flushed.block_bytes,
        flushed.block_bytes as f64 / total_samples
    );
}

fn measure_memory(labels: &[Labels], values: &mut [f64], rng: &mut Rng, start_ms: i64, scrapes: usize, batch: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let before = rss_bytes();
    let (db, _) = Tsdb::open(TsdbOptions::new(dir.path())).expect("open");
    let tenant = TenantId::default_tenant();
    for scrape in 0..scrapes {
        let t = start_ms + scrape as i64 * 15_000;
        // One batch at a time, so that freed requests are not counted as engine memory.
        for start in (0..labels.len()).step_by(batch) {
            let end = (start + batch).min(labels.len());
            for r in scrape_batches(&labels[start..end], &mut values[start..end], rng, t, batch) {
                db.append(&tenant, r).expect("append");
            }
        }
    }
    let added = rss_bytes().saturating_sub(before);
    let head = db.head_stats(&tenant);
    println!(
        "memory: {} series x {} samples: resident +{:.1} MiB = {:.0} bytes/series (chunks {:.0} bytes/series)",
        labels.len(),
        scrapes,
        added as f64 / (1 << 20) as f64,
        added as f64 / labels.len() as f64,
        head.chunk_bytes as f64 / labels.len() as f64,
    );
}
