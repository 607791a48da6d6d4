//! Native histograms through the public API: append rules shared with floats, durability,
//! blocks, compaction and the two query views of series that mix floats and histograms.

use osprey_model::{
    CounterResetHint, FloatHistogram, HistogramSample, HistogramSeries, MetricsQuerier, SelectRequest,
    CUSTOM_BUCKETS_SCHEMA,
};

use super::*;

/// Histograms of every shape the engine must keep exactly, by series kind, for sample `i`.
fn hist(kind: &str, i: i64) -> FloatHistogram {
    let c = i as f64;
    match kind {
        // Integer counts, negative buckets, a zero bucket, a counter reset at sample 50.
        "int" => {
            let c = if i >= 50 { (i - 50) as f64 } else { c };
            FloatHistogram {
                counter_reset_hint: if i == 50 { CounterResetHint::CounterReset } else { CounterResetHint::Unknown },
                schema: 3,
                zero_threshold: 1e-128,
                zero_count: c,
                count: 9.0 * c,
                sum: 17.25 * c,
                positive: vec![(-1, c), (0, 2.0 * c), (4, 3.0 * c)],
                negative: vec![(2, 2.0 * c), (3, c)],
                ..Default::default()
            }
        }
        // Float counts (as rates and gauges produce), a gauge histogram.
        "float" => FloatHistogram {
            counter_reset_hint: CounterResetHint::Gauge,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 0.1 * c,
            count: 1.7 * c + 0.1,
            sum: -3.3 * c,
            positive: vec![(1, 0.7 * c), (2, c + 0.1)],
            negative: vec![(0, 0.3 * c)],
            ..Default::default()
        },
        // Custom bucket bounds (NHCB).
        "nhcb" => FloatHistogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0 * c,
            sum: 2.5 * c,
            positive: vec![(0, c), (1, 2.0 * c), (3, 3.0 * c)],
            custom_values: vec![0.1, 0.5, 1.0],
            ..Default::default()
        },
        // The schema (and with it the layout) changes mid-series.
        _ => {
            let schema = if i % 100 < 50 { 4 } else { 1 };
            FloatHistogram {
                schema,
                count: 2.0 * c,
                sum: c,
                positive: vec![(schema, c), (2 * schema, c)],
                ..Default::default()
            }
        }
    }
}

const KINDS: [&str; 4] = ["int", "float", "nhcb", "schema-change"];

fn hseries(pairs: &[(&str, &str)], samples: Vec<HistogramSample>) -> TimeSeries {
    TimeSeries { labels: labels(pairs), histograms: samples, ..Default::default() }
}

fn hsample(t: i64, h: FloatHistogram) -> HistogramSample {
    HistogramSample { t, h }
}

fn select_histograms(db: &Tsdb, t: &TenantId, matchers: &[Matcher], start: i64, end: i64) -> Vec<HistogramSeries> {
    let request = SelectRequest { matchers: matchers.to_vec(), start, end };
    MetricsQuerier::select_histograms(db, t, &request).unwrap()
}

/// Histogram series as comparable data, floats as bits (so staleness NaNs compare).
fn hbits(series: &[HistogramSeries]) -> Vec<(Labels, Vec<(i64, String)>)> {
    let bits = |h: &FloatHistogram| {
        let b = |v: &[(i32, f64)]| v.iter().map(|&(i, c)| (i, c.to_bits())).collect::<Vec<_>>();
        format!(
            "{:?} {} {:x} {:x} {:x} {:x} {:?} {:?} {:?}",
            h.counter_reset_hint,
            h.schema,
            h.zero_threshold.to_bits(),
            h.zero_count.to_bits(),
            h.count.to_bits(),
            h.sum.to_bits(),
            b(&h.positive),
            b(&h.negative),
            h.custom_values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        )
    };
    series.iter().map(|s| (s.labels.clone(), s.samples.iter().map(|x| (x.t, bits(&x.h))).collect())).collect()
}

#[test]
fn histograms_round_trip_through_head_wal_blocks_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let mut expected: Vec<HistogramSeries> = KINDS
        .iter()
        .map(|k| HistogramSeries { labels: labels(&[("__name__", "h"), ("kind", k)]), samples: Vec::new() })
        .collect();
    expected.sort_by(|a, b| a.labels.cmp(&b.labels));
    let check = |db: &Tsdb, expected: &[HistogramSeries], stage: &str| {
        let got = select_histograms(db, &t, &[Matcher::equal("__name__", "h")], i64::MIN, i64::MAX);
        assert_eq!(hbits(&got), hbits(expected), "{stage}");
    };
    let mut db = open(dir.path());
    // 8h of data in 1h steps (one sample a minute); maintenance after each step cuts 2h
    // blocks, compacts them and checkpoints the WAL with the head's histogram chunks.
    for h in 0..8 {
        let mut batch = Vec::new();
        for s in expected.iter_mut() {
            let kind = s.labels.get("kind").unwrap().to_string();
            let samples: Vec<HistogramSample> =
                (h * 60..(h + 1) * 60).map(|i| hsample(i * 60_000, hist(&kind, i))).collect();
            s.samples.extend(samples.iter().cloned());
            batch.push(hseries(&[("__name__", "h"), ("kind", &kind)], samples));
        }
        let summary = db.append(&t, write(batch)).unwrap();
        assert_eq!((summary.histograms_appended, summary.samples_appended, summary.rejected()), (240, 0, 0));
        if h == 0 {
            check(&db, &expected, "head");
            drop(db);
            db = open(dir.path());
            check(&db, &expected, "wal replay");
        }
        db.run_maintenance((h + 1) * HOUR).unwrap();
        check(&db, &expected, &format!("after maintenance at {h}h"));
    }
    let stats = db.stats();
    assert!(stats.compactions >= 1 && stats.blocks >= 1, "{stats:?}");
    // Counted since the reopen after the first hour.
    assert_eq!(stats.histograms_appended, 7 * 240);
    drop(db);
    let db = open(dir.path());
    check(&db, &expected, "blocks and checkpoint after restart");
    db.flush_head().unwrap();
    check(&db, &expected, "all in blocks");
    // Time ranges are inclusive at both ends, series sorted by labels.
    let got = select_histograms(&db, &t, &[Matcher::equal("kind", "nhcb")], 60_000, 180_000);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(), vec![60_000, 120_000, 180_000]);
    // Floats and histograms are separate views.
    assert!(select_all(&db, &t, "h").is_empty());
}

#[test]
fn acknowledged_histograms_survive_drop_without_close() {
    for sync in [WalSync::Always, WalSync::Interval(Duration::from_secs(3600))] {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("a");
        let written: Vec<HistogramSample> = (0..10).map(|i| hsample(i * 15_000, hist("int", i))).collect();
        {
            let db = open_with(TsdbOptions { wal_sync: sync, ..TsdbOptions::new(dir.path()) });
            db.append(&t, write(vec![hseries(&[("__name__", "h")], written.clone())])).unwrap();
        }
        let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
        assert!(report.wal_repairs.is_empty() && report.samples_without_series == 0);
        let got = select_histograms(&db, &t, &[], i64::MIN, i64::MAX);
        let want = vec![HistogramSeries { labels: labels(&[("__name__", "h")]), samples: written }];
        assert_eq!(hbits(&got), hbits(&want), "{sync:?}");
    }
}

#[test]
fn series_mix_floats_and_histograms_at_different_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let name = [("__name__", "m")];
    let mut ts = series(&name, &[(1000, 1.0), (2000, 2.0)]);
    ts.histograms = vec![hsample(3000, hist("int", 3)), hsample(4000, hist("int", 4))];
    let s = db.append(&t, write(vec![ts])).unwrap();
    assert_eq!((s.samples_appended, s.histograms_appended, s.rejected()), (2, 2, 0));
    let s = db.append(&t, write(vec![series(&name, &[(5000, 5.0)])])).unwrap();
    assert_eq!(s.samples_appended, 1);

    // A histogram where a float is, and a float where a histogram is: duplicates.
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(5000, hist("int", 5))])])).unwrap();
    assert_eq!(s.duplicate_with_different_value, 1);
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(6000, hist("int", 6))])])).unwrap();
    assert_eq!(s.histograms_appended, 1);
    let s = db.append(&t, write(vec![series(&name, &[(6000, 6.0)])])).unwrap();
    assert_eq!(s.duplicate_with_different_value, 1);
    // The same histogram again is accepted without being stored, like a repeated float.
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(6000, hist("int", 6))])])).unwrap();
    assert_eq!((s.histograms_appended, s.rejected()), (0, 0));
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(6000, hist("int", 5))])])).unwrap();
    assert_eq!(s.duplicate_with_different_value, 1);
    assert!(s.first_rejection.unwrap().contains("duplicate sample for timestamp"));
    // Older than the newest sample of either kind: out of order (no window by default).
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(5500, hist("int", 4))])])).unwrap();
    assert_eq!(s.out_of_order, 1);
    let s = db.append(&t, write(vec![series(&name, &[(3500, 1.0)])])).unwrap();
    assert_eq!(s.out_of_order, 1);

    let floats = select_all(&db, &t, "m");
    assert_eq!(times(&floats[0]), vec![1000, 2000, 5000]);
    let hists = select_histograms(&db, &t, &[Matcher::equal("__name__", "m")], 0, 10_000);
    assert_eq!(hists[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(), vec![3000, 4000, 6000]);
    // Both views survive a restart and a flush to a block.
    drop(db);
    let db = open(dir.path());
    db.flush_head().unwrap();
    assert_eq!(times(&select_all(&db, &t, "m")[0]), vec![1000, 2000, 5000]);
    let hists = select_histograms(&db, &t, &[Matcher::equal("__name__", "m")], 0, 10_000);
    assert_eq!(hists[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(), vec![3000, 4000, 6000]);
}

#[test]
fn out_of_order_histograms_follow_the_float_window() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open_with(TsdbOptions { out_of_order_window: Duration::from_secs(60), ..TsdbOptions::new(dir.path()) });
    let name = [("__name__", "h")];
    let newest: Vec<HistogramSample> = (0..5).map(|i| hsample(100_000 + i * 10_000, hist("float", i))).collect();
    db.append(&t, write(vec![hseries(&name, newest)])).unwrap();
    // Within the window: merged in time order; past it: out of order.
    let late: Vec<HistogramSample> =
        (0..80).map(|i| hsample(95_000 + i * 500, hist("nhcb", i))).filter(|s| s.t % 10_000 != 0).collect();
    let n_late = late.len() as u64;
    let s = db.append(&t, write(vec![hseries(&name, late)])).unwrap();
    assert_eq!((s.histograms_appended, s.rejected()), (n_late, 0));
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(50_000, hist("int", 1))])])).unwrap();
    assert_eq!(s.out_of_order, 1);
    let check = |db: &Tsdb| {
        let got = select_histograms(db, &t, &[], i64::MIN, i64::MAX);
        let ts: Vec<i64> = got[0].samples.iter().map(|s| s.t).collect();
        assert_eq!(ts.len() as u64, 5 + n_late);
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
    };
    check(&db);
    drop(db);
    let db = open_with(TsdbOptions { out_of_order_window: Duration::from_secs(60), ..TsdbOptions::new(dir.path()) });
    check(&db);
    // Persisted data is final: older histograms are too old.
    db.flush_head().unwrap();
    check(&db);
    let s = db.append(&t, write(vec![hseries(&name, vec![hsample(99_000, hist("int", 1))])])).unwrap();
    assert_eq!(s.too_old, 1);
}

#[test]
fn stale_histograms_end_the_series_in_both_views() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let (a, b) = ([("__name__", "h"), ("i", "a")], [("__name__", "h"), ("i", "b")]);
    // `a` ends with a stale histogram (Prometheus's encoding), `b` with a float marker.
    let stale = FloatHistogram { sum: STALE_NAN, ..hist("int", 2) };
    let two = || vec![hsample(1000, hist("int", 1)), hsample(2000, hist("int", 2))];
    let s = db.append(&t, write(vec![hseries(&a, two()), hseries(&b, two())])).unwrap();
    assert_eq!((s.histograms_appended, s.rejected()), (4, 0));
    let s =
        db.append(&t, write(vec![hseries(&a, vec![hsample(3000, stale)]), series(&b, &[(3000, STALE_NAN)])])).unwrap();
    assert_eq!((s.histograms_appended, s.samples_appended, s.rejected()), (1, 1, 0));
    let check = |db: &Tsdb| {
        let hists = select_histograms(db, &t, &[], i64::MIN, i64::MAX);
        assert_eq!(hists.len(), 2);
        assert!(hists.iter().all(|s| s.samples.iter().map(|x| x.t).eq([1000, 2000])));
        let floats = select_all(db, &t, "h");
        assert_eq!(
            bits(&floats),
            vec![(labels(&a), vec![(3000, STALE_NAN.to_bits())]), (labels(&b), vec![(3000, STALE_NAN.to_bits())])]
        );
    };
    check(&db);
    drop(db);
    let db = open(dir.path());
    check(&db);
    db.flush_head().unwrap();
    check(&db);
}

#[test]
fn label_queries_see_histogram_only_series() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let pairs = [("__name__", "h"), ("le_kind", "native")];
    db.append(&t, write(vec![hseries(&pairs, vec![hsample(1000, hist("int", 1))])])).unwrap();
    let check = |db: &Tsdb, stage: &str| {
        let m = [Matcher::equal("__name__", "h")];
        for matchers in [&[][..], &m[..]] {
            assert_eq!(db.label_names(&t, matchers, 0, 5000).unwrap(), vec!["__name__", "le_kind"], "{stage}");
            assert_eq!(db.label_values(&t, "le_kind", matchers, 0, 5000).unwrap(), vec!["native"], "{stage}");
            assert_eq!(db.series(&t, matchers, 0, 5000).unwrap(), vec![labels(&pairs)], "{stage}");
        }
        assert!(db.series(&t, &m, 2000, 5000).unwrap().is_empty(), "{stage}: out of range");
    };
    check(&db, "head");
    db.flush_head().unwrap();
    check(&db, "block");
}

#[test]
fn retention_drops_histogram_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open_with(TsdbOptions { retention: Duration::from_secs(10 * 3600), ..TsdbOptions::new(dir.path()) });
    db.append(&t, write(vec![hseries(&[("__name__", "h")], vec![hsample(1000, hist("int", 1))])])).unwrap();
    db.flush_head().unwrap();
    assert_eq!(select_histograms(&db, &t, &[], i64::MIN, i64::MAX).len(), 1);
    assert_eq!(db.run_maintenance(11 * HOUR).unwrap().blocks_deleted, 1);
    assert!(select_histograms(&db, &t, &[], i64::MIN, i64::MAX).is_empty());
}

/// `testdata/block-v1`: a block written before native histograms (index version 1), three
/// series `old{i="0".."2"}` with values `i * 100 + j` at `j * 15s` and a staleness marker.
#[test]
fn blocks_from_before_histograms_still_open_and_compact_with_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("tenants/a/blocks/0000000000BKKYYKCJXHGNBFCK");
    fs::create_dir_all(&block).unwrap();
    for f in ["chunks", "index", "meta.json"] {
        fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/block-v1").join(f), block.join(f)).unwrap();
    }
    let t = tenant("a");
    let opts = || TsdbOptions { out_of_order_window: Duration::from_secs(3600), ..TsdbOptions::new(dir.path()) };
    let (db, report) = Tsdb::open(opts()).unwrap();
    assert_eq!((report.blocks_loaded, report.blocks_skipped.len()), (1, 0));
    let check_floats = |db: &Tsdb| {
        let old = select_all(db, &t, "old");
        assert_eq!(old.len(), 3);
        for (i, s) in old.iter().enumerate() {
            let want: Vec<f64> = (0..10).map(|j| (i * 100 + j) as f64).collect();
            assert_eq!(s.samples[..10].iter().map(|x| x.v).collect::<Vec<_>>(), want);
            assert_eq!(s.samples[10].v.to_bits(), STALE_NAN.to_bits());
        }
    };
    check_floats(&db);
    assert!(select_histograms(&db, &t, &[], i64::MIN, i64::MAX).is_empty());
    // Histograms in the same block range make an overlapping (version 2) block; compaction
    // merges both into one.
    let pairs = [("__name__", "old"), ("i", "1")];
    db.append(&t, write(vec![hseries(&pairs, vec![hsample(200_000, hist("int", 1))])])).unwrap();
    db.flush_head().unwrap();
    assert_eq!(db.run_maintenance(0).unwrap().compactions, 1);
    assert_eq!(db.stats().blocks, 1);
    check_floats(&db);
    let got = select_histograms(&db, &t, &[], i64::MIN, i64::MAX);
    assert_eq!((got.len(), got[0].labels.clone(), got[0].samples.len()), (1, labels(&pairs), 1));
}
