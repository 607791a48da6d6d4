//! Behaviour of the engine through its public API: durability, rejection rules, blocks,
//! compaction, retention, tenancy.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use osprey_model::{
    ErrorKind, Exemplar, Labels, MatchOp, Matcher, MetricMetadata, MetricType, MetricsQuerier, Sample, Series,
    TenantId, TimeSeries, WriteRequest, STALE_NAN,
};

use crate::{Tsdb, TsdbOptions, WalSync};

mod histograms;
mod packed;
mod starts;
mod stream;

const HOUR: i64 = 3_600_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels(pairs),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
        start_timestamps: Vec::new(),
    }
}

fn write(series: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest { series, metadata: Vec::new() }
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

fn open(dir: &Path) -> Tsdb {
    open_with(TsdbOptions::new(dir))
}

fn open_with(opts: TsdbOptions) -> Tsdb {
    Tsdb::open(opts).unwrap().0
}

fn select_all(db: &Tsdb, t: &TenantId, name: &str) -> Vec<Series> {
    db.select(t, &[Matcher::equal("__name__", name)], i64::MIN, i64::MAX).unwrap()
}

/// `n` samples every 15s from `start`, value = index.
fn regular(start: i64, n: usize) -> Vec<(i64, f64)> {
    (0..n).map(|i| (start + i as i64 * 15_000, i as f64)).collect()
}

/// Series as comparable data: NaNs (staleness markers) compare by bits.
fn bits(series: &[Series]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    series.iter().map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect())).collect()
}

fn times(s: &Series) -> Vec<i64> {
    s.samples.iter().map(|s| s.t).collect()
}

#[test]
fn engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tsdb>();
}

#[test]
fn select_returns_sorted_series_with_samples_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = tenant("a");
    let summary = db
        .append(
            &t,
            write(vec![
                series(&[("__name__", "up"), ("job", "b")], &[(1000, 1.0), (2000, 2.0)]),
                series(&[("__name__", "up"), ("job", "a")], &[(1000, 3.0)]),
                series(&[("__name__", "down")], &[(1000, 0.0)]),
            ]),
        )
        .unwrap();
    assert_eq!((summary.samples_appended, summary.series_created), (4, 3));
    let got = select_all(&db, &t, "up");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels, labels(&[("__name__", "up"), ("job", "a")]));
    assert_eq!(times(&got[1]), vec![1000, 2000]);
    let late = db.select(&t, &[Matcher::equal("__name__", "up")], 1500, 5000).unwrap();
    assert_eq!(late.len(), 1, "only series with samples in range");
    let re = Matcher::new(MatchOp::RegexNoMatch, "job", "a").unwrap();
    let got = db.select(&t, &[Matcher::equal("__name__", "up"), re], 0, 5000).unwrap();
    assert_eq!(got[0].labels.get("job"), Some("b"));
    assert_eq!(db.label_names(&t, &[], 0, 5000).unwrap(), vec!["__name__", "job"]);
    assert_eq!(db.label_values(&t, "job", &[], 0, 5000).unwrap(), vec!["a", "b"]);
    assert_eq!(db.label_values(&t, "__name__", &[Matcher::equal("job", "a")], 0, 5000).unwrap(), vec!["up"]);
    assert!(db.label_names(&t, &[], 10_000, 20_000).unwrap().is_empty());
    let names = MetricsQuerier::series(&db, &t, &[Matcher::equal("job", "a")], 0, 5000).unwrap();
    assert_eq!(names, vec![labels(&[("__name__", "up"), ("job", "a")])]);
}

#[test]
fn acknowledged_batches_survive_drop_without_close() {
    for sync in [WalSync::Always, WalSync::Interval(Duration::from_secs(3600))] {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("a");
        {
            let db = open_with(TsdbOptions { wal_sync: sync, ..TsdbOptions::new(dir.path()) });
            db.append(&t, write(vec![series(&[("__name__", "m")], &regular(0, 10))])).unwrap();
            db.append(&t, write(vec![series(&[("__name__", "m")], &[(1_000_000, STALE_NAN)])])).unwrap();
        }
        let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
        assert!(report.wal_repairs.is_empty());
        let got = select_all(&db, &t, "m");
        assert_eq!(got[0].samples.len(), 11, "{sync:?}");
        assert_eq!(got[0].samples[10].v.to_bits(), STALE_NAN.to_bits());
    }
}

#[test]
fn torn_wal_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    {
        let db = open(dir.path());
        for i in 0..5 {
            db.append(&t, write(vec![series(&[("__name__", "m")], &[(i * 1000, i as f64)])])).unwrap();
        }
        db.close().unwrap();
    }
    let wal = dir.path().join("tenants/a/wal/00000000");
    let len = fs::metadata(&wal).unwrap().len();
    fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(len - 5).unwrap();
    let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
    assert_eq!(report.wal_repairs.len(), 1);
    assert!(report.wal_repairs[0].bytes_dropped > 0);
    assert_eq!(report.wal_repairs[0].records_dropped, 1);
    assert_eq!(times(&select_all(&db, &t, "m")[0]), vec![0, 1000, 2000, 3000]);
    // The engine keeps working after the repair.
    db.append(&t, write(vec![series(&[("__name__", "m")], &[(9000, 1.0)])])).unwrap();
    assert_eq!(select_all(&db, &t, "m")[0].samples.len(), 5);
}

#[test]
fn out_of_order_rejected_by_default_and_merged_within_window() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    db.append(&t, write(vec![series(&[("__name__", "m")], &[(10_000, 1.0)])])).unwrap();
    let s = db.append(&t, write(vec![series(&[("__name__", "m")], &[(5_000, 1.0)])])).unwrap();
    assert_eq!(s.out_of_order, 1);
    assert!(s.first_rejection.unwrap().starts_with("out of order sample"));

    let dir = tempfile::tempdir().unwrap();
    let db = open_with(TsdbOptions { out_of_order_window: Duration::from_secs(60), ..TsdbOptions::new(dir.path()) });
    db.append(&t, write(vec![series(&[("__name__", "m")], &[(100_000, 1.0), (90_000, 2.0)])])).unwrap();
    let s = db.append(&t, write(vec![series(&[("__name__", "m")], &[(95_000, 3.0), (30_000, 4.0)])])).unwrap();
    assert_eq!((s.samples_appended, s.out_of_order), (1, 1));
    assert_eq!(times(&select_all(&db, &t, "m")[0]), vec![90_000, 95_000, 100_000]);
    drop(db);
    let db = open_with(TsdbOptions { out_of_order_window: Duration::from_secs(60), ..TsdbOptions::new(dir.path()) });
    assert_eq!(times(&select_all(&db, &t, "m")[0]), vec![90_000, 95_000, 100_000]);
}

#[test]
fn duplicates_and_too_old_samples_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    db.append(&t, write(vec![series(&[("__name__", "m")], &[(10 * HOUR, 1.0)])])).unwrap();
    let s = db.append(&t, write(vec![series(&[("__name__", "m")], &[(10 * HOUR, 1.0)])])).unwrap();
    assert_eq!((s.samples_appended, s.rejected()), (0, 0), "identical duplicate is a no-op");
    let s = db.append(&t, write(vec![series(&[("__name__", "m")], &[(10 * HOUR, 2.0)])])).unwrap();
    assert_eq!(s.duplicate_with_different_value, 1);
    assert!(s.first_rejection.unwrap().starts_with("duplicate sample for timestamp"));
    // A new series far behind the head's newest sample is out of bounds.
    let s = db.append(&t, write(vec![series(&[("__name__", "other")], &[(HOUR, 2.0)])])).unwrap();
    assert_eq!(s.too_old, 1);
    assert!(s.first_rejection.unwrap().contains("too old"));
}

#[test]
fn tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (a, b) = (tenant("a"), tenant("b"));
    let mut req = write(vec![series(&[("__name__", "secret"), ("team", "a")], &[(1000, 1.0)])]);
    req.series[0].exemplars.push(Exemplar { labels: labels(&[("trace_id", "x")]), t: 1000, v: 1.0 });
    req.metadata.push(MetricMetadata {
        metric_family_name: "secret".into(),
        metric_type: MetricType::Gauge,
        help: "h".into(),
        unit: String::new(),
    });
    db.append(&a, req).unwrap();
    db.append(&b, write(vec![series(&[("__name__", "public")], &[(1000, 1.0)])])).unwrap();
    assert!(select_all(&db, &b, "secret").is_empty());
    assert_eq!(db.label_values(&b, "__name__", &[], 0, 2000).unwrap(), vec!["public"]);
    assert_eq!(db.label_names(&b, &[], 0, 2000).unwrap(), vec!["__name__"]);
    assert!(db.exemplars(&b, &[], 0, 2000).is_empty());
    assert!(db.metadata(&b).is_empty());
    assert_eq!(db.exemplars(&a, &[], 0, 2000).len(), 1);
    assert_eq!(db.metadata(&a).len(), 1);
    assert!(select_all(&db, &tenant("nobody"), "secret").is_empty());
    // After restart, and after data moves into blocks, still isolated.
    db.flush_head().unwrap();
    drop(db);
    let db = open(dir.path());
    assert!(select_all(&db, &b, "secret").is_empty());
    assert_eq!(db.label_values(&b, "__name__", &[], 0, 2000).unwrap(), vec!["public"]);
    assert_eq!(db.label_names(&b, &[], 0, 2000).unwrap(), vec!["__name__"]);
    assert_eq!(select_all(&db, &a, "secret").len(), 1);
    assert_eq!(db.metadata(&a).len(), 1);
    assert_eq!(db.exemplars(&a, &[], 0, 2000).len(), 1);
}

#[test]
fn series_limit_is_per_tenant_and_refuses_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(TsdbOptions { max_series_per_tenant: Some(2), ..TsdbOptions::new(dir.path()) });
    let (a, b) = (tenant("a"), tenant("b"));
    db.append(
        &a,
        write(vec![
            series(&[("__name__", "x"), ("i", "1")], &[(1, 1.0)]),
            series(&[("__name__", "x"), ("i", "2")], &[(1, 1.0)]),
        ]),
    )
    .unwrap();
    let err = db
        .append(
            &a,
            write(vec![
                series(&[("__name__", "x"), ("i", "3")], &[(2, 1.0)]),
                series(&[("__name__", "x"), ("i", "1")], &[(2, 1.0)]),
            ]),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyRequests);
    assert!(err.to_string().contains("per-tenant series limit of 2 reached"), "{err}");
    assert_eq!(select_all(&db, &a, "x")[0].samples.len(), 1, "nothing of the refused batch stored");
    // Existing series still accept samples, other tenants have their own budget.
    db.append(&a, write(vec![series(&[("__name__", "x"), ("i", "1")], &[(3, 1.0)])])).unwrap();
    db.append(&b, write(vec![series(&[("__name__", "x"), ("i", "3")], &[(3, 1.0)])])).unwrap();
}

#[test]
fn a_backfilled_head_is_cut_in_one_pass_as_soon_as_it_spans_a_range_and_a_half() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    // 1h of data: nothing to cut yet.
    db.append(&t, write(vec![series(&[("__name__", "m")], &regular(0, (HOUR / 15_000) as usize))])).unwrap();
    assert!(!db.head_needs_cut());
    // A backfill up to 7 days: everything but the last range and a half goes at once.
    let week = (7 * 24 * HOUR / 15_000) as usize;
    db.append(&t, write(vec![series(&[("__name__", "m")], &regular(HOUR, week))])).unwrap();
    assert!(db.head_needs_cut());
    let before = select_all(&db, &t, "m");
    let report = db.run_maintenance(0).unwrap();
    assert_eq!(report.blocks_written, 83, "[0, 166h) in 2h blocks; the head keeps [166h, 169h)");
    assert_eq!(db.stats().head_cuts, 1, "one cut, so one WAL checkpoint");
    assert!(!db.head_needs_cut());
    assert_eq!(bits(&select_all(&db, &t, "m")), bits(&before));
}

#[test]
fn maintenance_cuts_blocks_and_queries_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let n = (5 * HOUR / 15_000) as usize;
    let mut batch = Vec::new();
    for i in 0..20 {
        let mut samples = regular(0, n);
        samples[100].1 = STALE_NAN;
        batch.push(series(&[("__name__", "m"), ("i", &i.to_string())], &samples));
    }
    db.append(&t, write(batch)).unwrap();
    let before = select_all(&db, &t, "m");
    let report = db.run_maintenance(5 * HOUR).unwrap();
    assert_eq!(report.blocks_written, 1, "5h of data: [0,2h) cut, head keeps the rest");
    let after = select_all(&db, &t, "m");
    assert_eq!(bits(&after), bits(&before));
    // Out of bounds now: the cut window is persisted.
    let s = db.append(&t, write(vec![series(&[("__name__", "m"), ("i", "0")], &[(HOUR, 1.0)])])).unwrap();
    assert_eq!(s.too_old, 1);
    drop(db);
    // Restart: block + checkpointed WAL give back the same data.
    let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
    assert_eq!(report.blocks_loaded, 1);
    let again = select_all(&db, &t, "m");
    assert_eq!(bits(&again), bits(&after));
    assert_eq!(again.iter().map(|s| s.samples.len()).sum::<usize>(), 20 * n);
    assert!(again[0].samples[100].v.to_bits() == STALE_NAN.to_bits());
    let stats = db.stats();
    assert_eq!(stats.blocks, 1);
}

#[test]
fn compaction_merges_blocks_and_queries_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let mut expected = 0;
    // 8h of data in 1h steps; maintenance after each step cuts 2h blocks as they complete.
    for h in 0..8 {
        let mut batch = Vec::new();
        for i in 0..5 {
            batch.push(series(&[("__name__", "m"), ("i", &i.to_string())], &regular(h * HOUR, 240)));
            expected += 240;
        }
        db.append(&t, write(batch)).unwrap();
        db.run_maintenance((h + 1) * HOUR).unwrap();
    }
    // Blocks [0,2h) [2h,4h) [4h,6h) were cut and compacted into one [0,6h) block.
    let stats = db.stats();
    assert_eq!(stats.blocks, 1, "{stats:?}");
    assert!(stats.compactions >= 1);
    let got = select_all(&db, &t, "m");
    assert_eq!(got.iter().map(|s| s.samples.len()).sum::<usize>(), expected);
    assert!(got.iter().all(|s| s.samples.windows(2).all(|w| w[0].t < w[1].t)));
    let blocks: Vec<_> = fs::read_dir(dir.path().join("tenants/a/blocks")).unwrap().collect();
    assert_eq!(blocks.len(), 1, "sources deleted");
    drop(db);
    let db = open(dir.path());
    assert_eq!(select_all(&db, &t, "m").iter().map(|s| s.samples.len()).sum::<usize>(), expected);
}

#[test]
fn overlapping_blocks_from_flushes_are_merged_and_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open_with(TsdbOptions { out_of_order_window: Duration::from_secs(3600), ..TsdbOptions::new(dir.path()) });
    db.append(&t, write(vec![series(&[("__name__", "m")], &regular(0, 100))])).unwrap();
    db.flush_head().unwrap();
    db.append(&t, write(vec![series(&[("__name__", "m")], &regular(100 * 15_000, 100))])).unwrap();
    db.flush_head().unwrap();
    assert_eq!(db.stats().blocks, 2);
    db.run_maintenance(0).unwrap();
    assert_eq!(db.stats().blocks, 1);
    assert_eq!(times(&select_all(&db, &t, "m")[0]), regular(0, 200).iter().map(|s| s.0).collect::<Vec<_>>());
}

#[test]
fn retention_by_time_and_size_with_a_fake_clock() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let opts = TsdbOptions { retention: Duration::from_secs(10 * 3600), ..TsdbOptions::new(dir.path()) };
    let db = open_with(opts);
    for h in (0..12).step_by(2) {
        db.append(&t, write(vec![series(&[("__name__", "m")], &regular(h * HOUR, 480))])).unwrap();
        db.flush_head().unwrap();
    }
    let blocks = db.stats().blocks;
    assert!(blocks >= 2);
    // At 11h with 10h retention, only blocks entirely older than 1h go: [0,2h) stays.
    db.run_maintenance(11 * HOUR).unwrap();
    let first = select_all(&db, &t, "m")[0].samples[0].t;
    assert_eq!(first, 0);
    // Much later everything persisted has expired.
    let r = db.run_maintenance(100 * HOUR).unwrap();
    assert!(r.blocks_deleted >= 1);
    assert_eq!(db.stats().blocks, 0);
    assert!(select_all(&db, &t, "m").is_empty());

    let dir = tempfile::tempdir().unwrap();
    let db = open_with(TsdbOptions { max_bytes: Some(1), ..TsdbOptions::new(dir.path()) });
    db.append(&t, write(vec![series(&[("__name__", "m")], &regular(0, 100))])).unwrap();
    db.flush_head().unwrap();
    assert_eq!(db.stats().blocks, 1);
    db.run_maintenance(0).unwrap();
    assert_eq!(db.stats().blocks, 0, "over max_bytes: oldest block deleted");
    assert_eq!(db.stats().blocks_deleted_by_retention, 1);
}

#[test]
fn head_stats_report_cardinality() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    db.append(
        &t,
        write(vec![
            series(&[("__name__", "up"), ("job", "a")], &[(1, 1.0)]),
            series(&[("__name__", "up"), ("job", "b")], &[(2, 1.0)]),
            series(&[("__name__", "x")], &[(3, 1.0)]),
        ]),
    )
    .unwrap();
    let s = db.head_stats(&t);
    assert_eq!((s.num_series, s.num_chunks, s.min_time, s.max_time), (3, 3, Some(1), Some(3)));
    assert_eq!(s.series_count_by_metric_name, vec![("up".to_string(), 2), ("x".to_string(), 1)]);
    assert_eq!(s.label_value_count_by_label_name[0], ("__name__".to_string(), 2));
    assert_eq!(s.series_count_by_label_value_pair[0], ("__name__=up".to_string(), 2));
    let g = db.stats();
    assert_eq!((g.samples_appended, g.series_created, g.head_series), (3, 3, 3));
    assert!(g.wal_bytes_written > 0);
}

#[test]
fn concurrent_appenders_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open_with(TsdbOptions { wal_sync: WalSync::Always, ..TsdbOptions::new(dir.path()) }));
    let t = tenant("a");
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let (db, t) = (db.clone(), t.clone());
            std::thread::spawn(move || {
                for step in 0..50 {
                    let batch = (0..10)
                        .map(|i| {
                            series(&[("__name__", "m"), ("i", &format!("{}", (i + w) % 12))], &[(step * 1000 + w, 1.0)])
                        })
                        .collect();
                    db.append(&t, write(batch)).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let count = |db: &Tsdb| select_all(db, &t, "m").iter().map(|s| s.samples.len()).sum::<usize>();
    let stored = count(&db);
    assert_eq!(stored as u64, db.stats().samples_appended);
    drop(db);
    let db = open_with(TsdbOptions { out_of_order_window: Duration::ZERO, ..TsdbOptions::new(dir.path()) });
    assert_eq!(count(&db), stored, "replay restores every acknowledged sample");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn interrupted_compaction_and_block_writes_leave_a_readable_state() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let blocks_dir = dir.path().join("tenants/a/blocks");
    let saved = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        db.append(&t, write(vec![series(&[("__name__", "m")], &regular(0, 100))])).unwrap();
        db.flush_head().unwrap();
        db.append(&t, write(vec![series(&[("__name__", "m")], &regular(100 * 15_000, 100))])).unwrap();
        db.flush_head().unwrap();
        // Keep copies of the two sources, as if the crash came before deleting them.
        for entry in fs::read_dir(&blocks_dir).unwrap() {
            let path = entry.unwrap().path();
            copy_dir(&path, &saved.path().join(path.file_name().unwrap()));
        }
        assert_eq!(db.run_maintenance(0).unwrap().compactions, 1);
    }
    for entry in fs::read_dir(saved.path()).unwrap() {
        let path = entry.unwrap().path();
        copy_dir(&path, &blocks_dir.join(path.file_name().unwrap()));
    }
    // And a half-written block from a crash mid-write.
    fs::create_dir_all(blocks_dir.join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp")).unwrap();
    let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
    assert_eq!(report.blocks_loaded, 1, "sources superseded by the compacted block are dropped");
    assert_eq!(fs::read_dir(&blocks_dir).unwrap().count(), 1);
    assert_eq!(select_all(&db, &t, "m")[0].samples.len(), 200);
}

#[test]
fn unreadable_blocks_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    {
        let db = open(dir.path());
        db.append(&t, write(vec![series(&[("__name__", "m")], &regular(0, 100))])).unwrap();
        db.flush_head().unwrap();
    }
    let blocks_dir = dir.path().join("tenants/a/blocks");
    let block = fs::read_dir(&blocks_dir).unwrap().next().unwrap().unwrap().path();
    let index = block.join("index");
    let mut bytes = fs::read(&index).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    fs::write(&index, bytes).unwrap();
    let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
    assert_eq!(report.blocks_skipped.len(), 1);
    assert!(report.blocks_skipped[0].1.contains("checksum mismatch"), "{:?}", report.blocks_skipped);
    assert!(select_all(&db, &t, "m").is_empty());
    // New data is still accepted.
    db.append(&t, write(vec![series(&[("__name__", "m")], &[(10 * HOUR, 1.0)])])).unwrap();
}

#[test]
fn regular_series_take_under_one_byte_per_sample_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let n = 480; // 2h at 15s
    let batch: Vec<TimeSeries> = (0..200)
        .map(|i| {
            let samples: Vec<(i64, f64)> = (0..n).map(|k| (k as i64 * 15_000, (k * (i % 7)) as f64)).collect();
            series(&[("__name__", "requests_total"), ("instance", &format!("host-{i}:9100")), ("job", "api")], &samples)
        })
        .collect();
    db.append(&t, write(batch)).unwrap();
    db.flush_head().unwrap();
    let stats = db.stats();
    let per_sample = stats.block_bytes as f64 / (200 * n) as f64;
    assert!(per_sample < 1.0, "{per_sample:.3} bytes per sample");
}

#[test]
fn head_cuts_during_appends_lose_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(dir.path()));
    let t = tenant("a");
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (db, t) = (db.clone(), t.clone());
            std::thread::spawn(move || {
                for step in 0..2000i64 {
                    let batch = (0..5)
                        .map(|i| {
                            series(
                                &[("__name__", "m"), ("w", &w.to_string()), ("i", &i.to_string())],
                                &[(step * 15_000, step as f64)],
                            )
                        })
                        .collect();
                    db.append(&t, write(batch)).unwrap();
                }
            })
        })
        .collect();
    for round in 0..200 {
        if round % 50 == 49 {
            db.flush_head().unwrap();
        } else {
            db.run_maintenance(0).unwrap();
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    let count = |db: &Tsdb| select_all(db, &t, "m").iter().map(|s| s.samples.len() as u64).sum::<u64>();
    let appended = db.stats().samples_appended;
    assert_eq!(count(&db), appended);
    drop(db);
    assert_eq!(count(&open(dir.path())), appended);
}

#[test]
fn size_retention_deletes_the_oldest_blocks_across_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (a, b) = (tenant("a"), tenant("b"));
    // a: blocks at 0h and 4h; b: a block at 2h.
    db.append(&a, write(vec![series(&[("__name__", "m")], &regular(0, 100))])).unwrap();
    db.append(&b, write(vec![series(&[("__name__", "m")], &regular(2 * HOUR, 100))])).unwrap();
    db.flush_head().unwrap();
    db.append(&a, write(vec![series(&[("__name__", "m")], &regular(4 * HOUR, 100))])).unwrap();
    db.flush_head().unwrap();
    let stats = db.stats();
    assert_eq!(stats.blocks, 3);
    // Room for two of the three blocks: the oldest (tenant a's first) goes.
    let one = stats.block_bytes / 3;
    let reopen = |max| open_with(TsdbOptions { max_bytes: Some(max), ..TsdbOptions::new(dir.path()) });
    drop(db);
    let db = reopen(stats.block_bytes - one / 2);
    assert_eq!(db.run_maintenance(0).unwrap().blocks_deleted, 1);
    assert_eq!(select_all(&db, &a, "m")[0].samples[0].t, 4 * HOUR);
    assert_eq!(select_all(&db, &b, "m")[0].samples.len(), 100);
}

#[test]
fn a_series_logged_again_under_a_new_id_replays_into_one_series() {
    // What a crash between head garbage collection and the WAL checkpoint leaves behind: the
    // same labels defined under two ids, samples under both.
    use crate::compact_labels::CompactLabels;
    use crate::record::{encode_samples, encode_series};
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("tenants/a/wal");
    fs::create_dir_all(&wal).unwrap();
    let l = CompactLabels::new(&labels(&[("__name__", "m")]));
    let mut buf = Vec::new();
    encode_series(&mut buf, [(1u64, &l)].into_iter());
    encode_samples(&mut buf, &[(1, Sample::new(1000, 1.0))]);
    encode_series(&mut buf, [(2u64, &l)].into_iter());
    encode_samples(&mut buf, &[(2, Sample::new(2000, 2.0))]);
    fs::write(wal.join("00000000"), buf).unwrap();
    let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
    assert_eq!(report.samples_without_series, 0);
    assert_eq!(times(&select_all(&db, &tenant("a"), "m")[0]), vec![1000, 2000]);
}
