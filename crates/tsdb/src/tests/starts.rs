//! Start timestamps: stored as change points in the head, logged to the WAL, written into
//! blocks, merged by compaction, read back per sample.

use super::*;
use osprey_model::{FloatHistogram, HistogramSample, PackedWriteRequest, SeriesStartTimestamps};

/// A counter sampled every 15s from `from` whose samples began at `start` (0: none).
fn counter(pairs: &[(&str, &str)], from: i64, n: usize, start: i64) -> TimeSeries {
    let mut ts = series(pairs, &regular(from, n));
    if start != 0 {
        ts.start_timestamps = ts.samples.iter().map(|s| (s.t, start)).collect();
    }
    ts
}

fn starts(db: &Tsdb, t: &TenantId, start: i64, end: i64) -> Vec<SeriesStartTimestamps> {
    db.select_start_timestamps(t, &[Matcher::equal("__name__", "c")], start, end).unwrap()
}

/// `(sample t, start)` for `n` samples every 15s from `from`.
fn pairs(from: i64, n: usize, start: i64) -> Vec<(i64, i64)> {
    regular(from, n).into_iter().map(|(t, _)| (t, start)).collect()
}

fn one(db: &Tsdb, t: &TenantId) -> Vec<(i64, i64)> {
    let got = starts(db, t, i64::MIN, i64::MAX);
    assert_eq!(got.len(), 1, "{got:?}");
    got.into_iter().next().map(|s| s.starts).unwrap_or_default()
}

#[test]
fn head_returns_starts_per_sample_and_leaves_out_series_without() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = tenant("a");
    db.append(
        &t,
        write(vec![
            counter(&[("__name__", "c"), ("i", "1")], 0, 4, -500),
            counter(&[("__name__", "c"), ("i", "2")], 0, 4, 0),
        ]),
    )
    .unwrap();
    // A reset: the next samples began later; then samples without one.
    db.append(&t, write(vec![counter(&[("__name__", "c"), ("i", "1")], 60_000, 2, 50_000)])).unwrap();
    db.append(&t, write(vec![counter(&[("__name__", "c"), ("i", "1")], 90_000, 1, 0)])).unwrap();
    let got = starts(&db, &t, i64::MIN, i64::MAX);
    assert_eq!(got.len(), 1, "series without start timestamps are left out");
    assert_eq!(got[0].labels, labels(&[("__name__", "c"), ("i", "1")]));
    let mut want = pairs(0, 4, -500);
    want.extend(pairs(60_000, 2, 50_000));
    assert_eq!(got[0].starts, want);
    assert_eq!(
        starts(&db, &t, 15_000, 60_000)[0].starts,
        [(15_000, -500), (30_000, -500), (45_000, -500), (60_000, 50_000)]
    );
    assert!(starts(&db, &t, 90_000, 100_000).is_empty());
    assert!(starts(&db, &tenant("b"), i64::MIN, i64::MAX).is_empty(), "tenant-scoped");
    // The ordinary select is unchanged.
    assert_eq!(select_all(&db, &t, "c").len(), 2);
}

#[test]
fn out_of_order_samples_keep_their_own_starts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(TsdbOptions { out_of_order_window: Duration::from_secs(3600), ..TsdbOptions::new(dir.path()) });
    let t = tenant("a");
    db.append(&t, write(vec![counter(&[("__name__", "c")], 0, 4, 0)])).unwrap();
    let mut late = series(&[("__name__", "c")], &[(20_000, 1.0)]);
    late.start_timestamps = vec![(20_000, 7)];
    db.append(&t, write(vec![late])).unwrap();
    assert_eq!(one(&db, &t), [(20_000, 7)]);
    drop(db);
    let db = open(dir.path());
    assert_eq!(one(&db, &t), [(20_000, 7)], "replayed from the wal");
}

#[test]
fn starts_survive_a_restart_through_the_wal_and_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let mut want = pairs(0, 4, 1);
    {
        let db = open(dir.path());
        db.append(&t, write(vec![counter(&[("__name__", "c")], 0, 4, 1)])).unwrap();
    }
    let db = open(dir.path());
    assert_eq!(one(&db, &t), want);
    // 3h later a head cut writes [0, 2h) into a block and checkpoints the wal with what the
    // head keeps; more samples follow.
    let later = 3 * HOUR;
    db.append(&t, write(vec![counter(&[("__name__", "c")], later, 2, later - 1000)])).unwrap();
    db.run_maintenance(later).unwrap();
    assert_eq!(db.stats().blocks, 1);
    db.append(&t, write(vec![counter(&[("__name__", "c")], later + 30_000, 2, later - 1000)])).unwrap();
    want.extend(pairs(later, 4, later - 1000));
    assert_eq!(one(&db, &t), want);
    drop(db);
    let db = open(dir.path());
    assert_eq!(one(&db, &t), want, "blocks, checkpoint and wal tail");
}

#[test]
fn blocks_round_trip_starts_and_retention_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open_with(TsdbOptions { retention: Duration::from_secs(10 * 3600), ..TsdbOptions::new(dir.path()) });
    let h = HistogramSample { t: 120_000, h: FloatHistogram { count: 1.0, sum: 1.0, ..Default::default() } };
    let mut ts = counter(&[("__name__", "c")], 0, 4, 0);
    ts.start_timestamps = vec![(15_000, 10), (30_000, 10), (120_000, 100)];
    ts.histograms.push(h);
    db.append(&t, write(vec![ts])).unwrap();
    db.flush_head().unwrap();
    let want = vec![(15_000, 10), (30_000, 10), (120_000, 100)];
    assert_eq!(one(&db, &t), want, "float and histogram samples, from a block");
    drop(db);
    let db = open_with(TsdbOptions { retention: Duration::from_secs(10 * 3600), ..TsdbOptions::new(dir.path()) });
    assert_eq!(one(&db, &t), want);
    assert_eq!(db.run_maintenance(11 * HOUR).unwrap().blocks_deleted, 1);
    assert!(starts(&db, &t, i64::MIN, i64::MAX).is_empty());
}

#[test]
fn compaction_merges_starts_of_overlapping_blocks_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    // Two flushes in one block range make overlapping blocks. The first block's samples
    // began at 1; in the second, a sample without a start (the first block's run must not
    // reach it), one that began at 2, and a series only there.
    db.append(&t, write(vec![counter(&[("__name__", "c")], 0, 4, 1)])).unwrap();
    db.flush_head().unwrap();
    let mut next = series(&[("__name__", "c")], &[(60_000, 4.0), (75_000, 5.0)]);
    next.start_timestamps = vec![(75_000, 2)];
    db.append(&t, write(vec![next, counter(&[("__name__", "c"), ("only", "later")], 60_000, 1, 3)])).unwrap();
    db.flush_head().unwrap();
    assert_eq!(db.stats().blocks, 2);
    let mut want = pairs(0, 4, 1);
    want.push((75_000, 2));
    let check = |db: &Tsdb| {
        let got = starts(db, &t, i64::MIN, i64::MAX);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].starts, want, "60s has none");
        assert_eq!(got[1].starts, [(60_000, 3)]);
    };
    check(&db);
    assert_eq!(db.run_maintenance(0).unwrap().compactions, 1);
    assert_eq!(db.stats().blocks, 1);
    check(&db);
    drop(db);
    check(&open(dir.path()));
}

#[test]
fn select_merges_blocks_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    db.append(&t, write(vec![counter(&[("__name__", "c")], 0, 3, 1)])).unwrap();
    db.flush_head().unwrap();
    // In the head, the same start goes on, then the counter resets.
    db.append(&t, write(vec![counter(&[("__name__", "c")], 45_000, 2, 1)])).unwrap();
    db.append(&t, write(vec![counter(&[("__name__", "c")], 75_000, 1, 70_000)])).unwrap();
    let mut want = pairs(0, 5, 1);
    want.push((75_000, 70_000));
    assert_eq!(one(&db, &t), want);
    assert_eq!(starts(&db, &t, 30_000, 75_000)[0].starts, want[2..]);
}

#[test]
fn packed_writes_carry_starts() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let mut packed = PackedWriteRequest::new();
    let mut w = packed.push_series([("__name__", "c")]);
    for (t, _) in regular(0, 3) {
        w.push_sample(Sample::new(t, 1.0));
        w.push_start_timestamp(t, -1);
    }
    db.append_packed(&t, packed).unwrap();
    assert_eq!(one(&db, &t), pairs(0, 3, -1));
}

/// `testdata/block-v2`: a block written before start timestamps (index version 2), series
/// `old{i="0".."2"}` with values `i * 100 + j` at `j * 15s` (j < 10) and `old_h` with three
/// histograms.
#[test]
fn blocks_from_before_start_timestamps_still_open_and_compact_with_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("tenants/a/blocks/0000000000CEG1G7D06T6B4H6E");
    fs::create_dir_all(&block).unwrap();
    for f in ["chunks", "index", "meta.json"] {
        fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/block-v2").join(f), block.join(f)).unwrap();
    }
    let t = tenant("a");
    let (db, report) = Tsdb::open(TsdbOptions::new(dir.path())).unwrap();
    assert_eq!((report.blocks_loaded, report.blocks_skipped.len()), (1, 0));
    let check_old = |db: &Tsdb| {
        let old = select_all(db, &t, "old");
        assert_eq!(old.len(), 3);
        for (i, s) in old.iter().enumerate() {
            let want: Vec<f64> = (0..10).map(|j| (i * 100 + j) as f64).collect();
            assert_eq!(s.samples[..10].iter().map(|x| x.v).collect::<Vec<_>>(), want);
        }
        let h = db.select_histograms(&t, &[Matcher::equal("__name__", "old_h")], i64::MIN, i64::MAX).unwrap();
        assert_eq!(h[0].samples.len(), 3);
    };
    check_old(&db);
    let old = |db: &Tsdb| db.select_start_timestamps(&t, &[Matcher::equal("__name__", "old")], i64::MIN, i64::MAX);
    assert!(old(&db).unwrap().is_empty());
    // A newer sample with a start, in the same block range: an overlapping version 3 block,
    // merged with the old one by compaction.
    let mut newer = series(&[("__name__", "old"), ("i", "1")], &[(150_000, 110.0)]);
    newer.start_timestamps = vec![(150_000, 140_000)];
    db.append(&t, write(vec![newer])).unwrap();
    db.flush_head().unwrap();
    assert_eq!(db.run_maintenance(0).unwrap().compactions, 1);
    assert_eq!(db.stats().blocks, 1);
    check_old(&db);
    let got = old(&db).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].labels.get("i"), got[0].starts.clone()), (Some("1"), vec![(150_000, 140_000)]));
}
