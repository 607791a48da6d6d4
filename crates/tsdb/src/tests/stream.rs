//! `select_series`: the lazy read that decodes one series at a time must return what the
//! eager `select` and `select_histograms` return, survive head cuts made while it is open,
//! skip series without samples in range and surface corrupt chunks as errors.

use osprey_model::{FloatHistogram, HistogramSample, SelectRequest, SeriesSamples};

use super::*;

/// A comparable form of a series of both kinds: floats and histograms by bits (the
/// histograms' `Debug` form holds every field).
type Comparable = (Labels, Vec<(i64, u64)>, Vec<(i64, String)>);

fn comparable(s: &SeriesSamples) -> Comparable {
    (
        s.labels.clone(),
        s.floats.iter().map(|x| (x.t, x.v.to_bits())).collect(),
        s.histograms.iter().map(|x| (x.t, format!("{:?}", x.h))).collect(),
    )
}

fn streamed(db: &Tsdb, t: &TenantId, matchers: &[Matcher], start: i64, end: i64) -> Vec<Comparable> {
    let request = SelectRequest { matchers: matchers.to_vec(), start, end };
    let stream = MetricsQuerier::select_series(db, t, &request).unwrap();
    stream.map(|s| comparable(&s.unwrap())).collect()
}

/// What the eager reads return, joined by labels.
fn eager(db: &Tsdb, t: &TenantId, matchers: &[Matcher], start: i64, end: i64) -> Vec<Comparable> {
    let mut joined: std::collections::BTreeMap<Labels, SeriesSamples> = std::collections::BTreeMap::new();
    let blank = |labels: &Labels| SeriesSamples { labels: labels.clone(), floats: Vec::new(), histograms: Vec::new() };
    for s in db.select(t, matchers, start, end).unwrap() {
        joined.entry(s.labels.clone()).or_insert_with(|| blank(&s.labels)).floats = s.samples;
    }
    for s in db.select_histograms(t, matchers, start, end).unwrap() {
        joined.entry(s.labels.clone()).or_insert_with(|| blank(&s.labels)).histograms = s.samples;
    }
    joined.values().map(comparable).collect()
}

fn histogram(i: i64) -> FloatHistogram {
    let c = i as f64;
    FloatHistogram { count: 2.0 * c, sum: c, positive: vec![(0, c), (1, c)], ..Default::default() }
}

fn hseries(pairs: &[(&str, &str)], ts: impl IntoIterator<Item = i64>) -> TimeSeries {
    let histograms = ts.into_iter().map(|t| HistogramSample { t, h: histogram(t / 15_000) }).collect();
    TimeSeries { labels: labels(pairs), histograms, ..Default::default() }
}

/// Every kind of placement: a series only in blocks, only in the head, in both, histograms
/// only, floats and histograms mixed, out-of-order head samples, and (after `duplicate_blocks`)
/// overlapping blocks holding the same timestamps.
fn spread_data(db: &Tsdb, t: &TenantId) {
    let m = |name: &'static str| [("__name__", "m"), ("s", name)];
    // [0, 25m): goes to a block.
    db.append(
        &t.clone(),
        write(vec![
            series(&m("blocks-only"), &regular(0, 100)),
            series(&m("both"), &regular(0, 100)),
            hseries(&m("histograms"), (0..100).map(|i| i * 15_000)),
            series(&m("mixed"), &regular(0, 50)),
            hseries(&m("mixed"), (50..100).map(|i| i * 15_000)),
        ]),
    )
    .unwrap();
    assert_eq!(db.flush_head().unwrap(), 1);
    // [25m, 50m): stays in the head.
    let later = regular(100 * 15_000, 100);
    db.append(
        t,
        write(vec![
            series(&m("both"), &later),
            series(&m("head-only"), &later),
            hseries(&m("histograms"), (100..200).map(|i| i * 15_000)),
            series(&m("mixed"), &later[..50]),
            hseries(&m("mixed"), (150..200).map(|i| i * 15_000)),
            // Two samples 50 minutes apart: their chunk overlaps ranges holding neither.
            series(&m("sparse"), &[(100 * 15_000, 1.0), (300 * 15_000, 2.0)]),
        ]),
    )
    .unwrap();
    // Out of order, within the window: buffered beside the head chunks.
    let ooo: Vec<(i64, f64)> = (100..200).step_by(2).map(|i| (i * 15_000 + 7_000, -1.0)).collect();
    let summary = db.append(t, write(vec![series(&m("head-only"), &ooo)])).unwrap();
    assert_eq!(summary.samples_appended, 50);
}

/// Copies every block under a new id, so that the blocks overlap with equal timestamps.
fn duplicate_blocks(root: &Path) {
    let blocks_dir = root.join("tenants/a/blocks");
    for (n, entry) in fs::read_dir(&blocks_dir).unwrap().enumerate() {
        let path = entry.unwrap().path();
        let id = path.file_name().unwrap().to_str().unwrap().to_string();
        let copy_id = format!("01ZZZZZZZZZZZZZZZZZZZZZZ{n:02}");
        let copy = blocks_dir.join(&copy_id);
        copy_dir(&path, &copy);
        let meta = fs::read_to_string(copy.join("meta.json")).unwrap().replace(&id, &copy_id);
        fs::write(copy.join("meta.json"), meta).unwrap();
    }
}

#[test]
fn select_series_returns_what_select_and_select_histograms_return() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let opts = || TsdbOptions { out_of_order_window: Duration::from_secs(3600), ..TsdbOptions::new(dir.path()) };
    let db = open_with(opts());
    spread_data(&db, &t);
    let all = [Matcher::equal("__name__", "m")];
    let check = |db: &Tsdb, stage: &str| {
        let ranges = [(i64::MIN, i64::MAX), (0, 60 * 15_000), (80 * 15_000, 130 * 15_000), (10, 20)];
        // Ends inside the head, at its newest samples, between out-of-order samples, in the
        // block, past everything.
        let newest_ranges = [(100 * 15_000, 199 * 15_000), (150 * 15_000, 300 * 15_000), (0, 151 * 15_000 + 7_000)];
        for (start, end) in ranges.into_iter().chain(newest_ranges) {
            let (got, want) = (streamed(db, &t, &all, start, end), eager(db, &t, &all, start, end));
            assert_eq!(got, want, "{stage}: [{start}, {end}]");
            let newest: Vec<Comparable> =
                db.select_newest(&t, &all, start, end).unwrap().map(|s| comparable(&s.unwrap())).collect();
            let want_newest: Vec<Comparable> = want
                .iter()
                .map(|(labels, floats, histograms)| {
                    let (f, h) = (floats.last().map(|x| x.0), histograms.last().map(|x| x.0));
                    let floats = if f > h { floats[floats.len() - 1..].to_vec() } else { Vec::new() };
                    let histograms = if h > f { histograms[histograms.len() - 1..].to_vec() } else { Vec::new() };
                    (labels.clone(), floats, histograms)
                })
                .collect();
            assert_eq!(newest, want_newest, "{stage}: newest in [{start}, {end}]");
        }
        let whole = streamed(db, &t, &all, i64::MIN, i64::MAX);
        let names: Vec<&str> = whole.iter().map(|s| s.0.get("s").unwrap()).collect();
        assert_eq!(names, ["blocks-only", "both", "head-only", "histograms", "mixed", "sparse"], "{stage}");
        let count = |i: usize| (whole[i].1.len(), whole[i].2.len());
        assert_eq!(
            [count(0), count(1), count(2), count(3), count(4)],
            [(100, 0), (200, 0), (150, 0), (0, 200), (100, 100)]
        );
        assert!(whole
            .iter()
            .all(|s| s.1.windows(2).all(|w| w[0].0 < w[1].0) && s.2.windows(2).all(|w| w[0].0 < w[1].0)));
    };
    check(&db, "block and head");
    drop(db);
    duplicate_blocks(dir.path());
    let db = open_with(opts());
    assert_eq!(db.stats().blocks, 2, "the block and its copy");
    check(&db, "overlapping blocks with equal timestamps");
    // Only the sparse series' chunk overlaps [100, 300) scrapes, and it holds no sample there.
    let got = streamed(&db, &t, &[Matcher::equal("s", "sparse")], 101 * 15_000, 299 * 15_000);
    assert!(got.is_empty(), "{got:?}");
    assert!(streamed(&db, &tenant("nobody"), &all, i64::MIN, i64::MAX).is_empty());
}

#[test]
fn a_stream_opened_before_a_head_cut_yields_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    let db = open(dir.path());
    let n = (5 * HOUR / 15_000) as usize;
    let mut batch: Vec<TimeSeries> =
        (0..20).map(|i| series(&[("__name__", "m"), ("i", &i.to_string())], &regular(0, n))).collect();
    batch.push(hseries(&[("__name__", "m"), ("i", "h")], (0..n as i64).map(|i| i * 15_000)));
    db.append(&t, write(batch)).unwrap();
    let all = [Matcher::equal("__name__", "m")];
    let want = eager(&db, &t, &all, i64::MIN, i64::MAX);
    assert_eq!(want.iter().map(|s| s.1.len() + s.2.len()).sum::<usize>(), 21 * n);

    // Cut [0, 2h) into a block while one stream is open; flush the rest while another is.
    let request = SelectRequest { matchers: all.to_vec(), start: i64::MIN, end: i64::MAX };
    let mut before_cut = MetricsQuerier::select_series(&db, &t, &request).unwrap();
    let first = comparable(&before_cut.next().unwrap().unwrap());
    assert_eq!(db.run_maintenance(5 * HOUR).unwrap().blocks_written, 1);
    let before_flush = MetricsQuerier::select_series(&db, &t, &request).unwrap();
    assert!(db.flush_head().unwrap() >= 1);
    assert!(db.head_stats(&t).num_series == 0, "the head was emptied");
    let mut got = vec![first];
    got.extend(before_cut.map(|s| comparable(&s.unwrap())));
    assert_eq!(got, want, "opened before the cut");
    let got: Vec<Comparable> = before_flush.map(|s| comparable(&s.unwrap())).collect();
    assert_eq!(got, want, "opened before the flush");
    assert_eq!(streamed(&db, &t, &all, i64::MIN, i64::MAX), want, "opened after both");
}

#[test]
fn a_corrupt_chunk_is_an_error_item_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("a");
    {
        let db = open(dir.path());
        let batch =
            (0..50).map(|i| series(&[("__name__", "m"), ("i", &format!("{i:02}"))], &regular(0, 200))).collect();
        db.append(&t, write(batch)).unwrap();
        db.flush_head().unwrap();
    }
    let blocks_dir = dir.path().join("tenants/a/blocks");
    let block = fs::read_dir(&blocks_dir).unwrap().next().unwrap().unwrap().path();
    let chunks = block.join("chunks");
    let mut bytes = fs::read(&chunks).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&chunks, &bytes).unwrap();
    let db = open(dir.path());
    let request = SelectRequest { matchers: vec![Matcher::equal("__name__", "m")], start: 0, end: i64::MAX };
    // The call reads the (intact) index only; the damage shows when a series reaches it.
    let items: Vec<_> = MetricsQuerier::select_series(&db, &t, &request).unwrap().collect();
    let err = items.last().unwrap().as_ref().expect_err("the last item is the error");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);
    assert!(items[..items.len() - 1].iter().all(Result::is_ok), "the error ends the stream");
    assert!(db.select(&t, &request.matchers, 0, i64::MAX).is_err(), "the eager read fails too");
}

#[test]
fn repeated_selects_follow_series_created_and_dropped_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = tenant("t");
    let m = [Matcher::equal("__name__", "m")];
    let s = |name: &str| labels(&[("__name__", "m"), ("s", name)]);
    let add = |name: &str, samples: Vec<(i64, f64)>| {
        db.append(&t, write(vec![series(&[("__name__", "m"), ("s", name)], &samples)])).unwrap();
    };
    // Each read twice (the second from the caches), and as the eager reads see it.
    let read = |want: Vec<(Labels, usize)>| {
        for _ in 0..2 {
            let got: Vec<_> = streamed(&db, &t, &m, 0, i64::MAX).into_iter().map(|(l, f, _)| (l, f.len())).collect();
            assert_eq!(got, want);
            assert_eq!(streamed(&db, &t, &m, 0, i64::MAX), eager(&db, &t, &m, 0, i64::MAX));
        }
    };
    add("b", regular(0, 10));
    read(vec![(s("b"), 10)]);
    add("a", regular(0, 10));
    read(vec![(s("a"), 10), (s("b"), 10)]);
    // Into a block; the head drops its emptied series.
    assert!(db.flush_head().unwrap() > 0);
    assert_eq!(db.head_stats(&t).num_series, 0);
    read(vec![(s("a"), 10), (s("b"), 10)]);
    add("b", regular(150_000, 3));
    add("c", regular(150_000, 5));
    read(vec![(s("a"), 10), (s("b"), 13), (s("c"), 5)]);
    assert!(db.flush_head().unwrap() > 0);
    add("d", regular(300_000, 1));
    read(vec![(s("a"), 10), (s("b"), 13), (s("c"), 5), (s("d"), 1)]);
}

#[test]
fn a_stream_of_many_series_returns_each_with_its_own_samples_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = tenant("a");
    // Many series, each with a block chunk and a head chunk; every series' values say which
    // series it is.
    let n = 2500;
    let name = |i: usize| format!("{i:04}");
    let batch = |start: i64| {
        (0..n)
            .map(|i| {
                let samples: Vec<(i64, f64)> =
                    (0..4).map(|k| (start + k * 15_000, (i * 10) as f64 + k as f64)).collect();
                series(&[("__name__", "m"), ("i", &name(i))], &samples)
            })
            .collect()
    };
    db.append(&t, write(batch(0))).unwrap();
    assert_eq!(db.flush_head().unwrap(), 1);
    db.append(&t, write(batch(HOUR))).unwrap();
    let got = streamed(&db, &t, &[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX);
    assert_eq!(got.len(), n);
    for (i, (labels, floats, histograms)) in got.iter().enumerate() {
        assert_eq!(labels.get("i"), Some(name(i).as_str()));
        let want: Vec<(i64, u64)> = [0, HOUR]
            .iter()
            .flat_map(|&start| (0..4).map(move |k| (start + k * 15_000, ((i * 10) as f64 + k as f64).to_bits())))
            .collect();
        assert_eq!(floats, &want, "series {i}");
        assert!(histograms.is_empty());
    }
}

#[test]
fn selects_over_several_blocks_merge_alike_whichever_blocks_and_however_often() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = tenant("t");
    let m = [Matcher::equal("__name__", "m")];
    let add = |names: &[&str], start: i64| {
        let batch = names.iter().map(|n| series(&[("__name__", "m"), ("s", n)], &regular(start, 10))).collect();
        db.append(&t, write(batch)).unwrap();
    };
    // Three blocks holding different series, then the head.
    add(&["a", "b"], 0);
    assert_eq!(db.flush_head().unwrap(), 1);
    add(&["b", "c"], 3 * HOUR);
    assert_eq!(db.flush_head().unwrap(), 1);
    add(&["a", "c"], 6 * HOUR);
    assert_eq!(db.flush_head().unwrap(), 1);
    add(&["d", "a"], 9 * HOUR);
    let read = |start: i64, end: i64| -> Vec<(String, usize)> {
        let got = streamed(&db, &t, &m, start, end);
        got.into_iter().map(|(l, f, _)| (l.get("s").unwrap().to_string(), f.len())).collect()
    };
    let all = || vec![("a".into(), 30), ("b".into(), 20), ("c".into(), 20), ("d".into(), 10)];
    let later = || vec![("a".into(), 20), ("c".into(), 10), ("d".into(), 10)];
    let owned = |v: Vec<(&str, usize)>| v.into_iter().map(|(s, n)| (s.to_string(), n)).collect::<Vec<_>>();
    for _ in 0..2 {
        assert_eq!(read(0, i64::MAX), all());
        assert_eq!(read(3 * HOUR, i64::MAX), owned(vec![("a", 20), ("b", 10), ("c", 20), ("d", 10)]));
        assert_eq!(read(5 * HOUR, i64::MAX), later());
        assert_eq!(read(0, HOUR), owned(vec![("a", 10), ("b", 10)]));
    }
    // A fourth block: the merged blocks are those of the new list.
    assert_eq!(db.flush_head().unwrap(), 1);
    add(&["e"], 12 * HOUR);
    let mut with_e = all();
    with_e.push(("e".into(), 10));
    assert_eq!(read(0, i64::MAX), with_e);
    assert_eq!(read(0, i64::MAX), with_e);
}
