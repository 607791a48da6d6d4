//! The packed append path stores exactly what the owned path stores: the same summaries,
//! series, samples, histograms and exemplars, before and after a WAL replay. Packed batches are
//! built here as the remote-write decoder builds them (pair by pair, empty values included),
//! not by converting the owned batch.

use osprey_model::{FloatHistogram, HistogramSample, PackedWriteRequest};
use proptest::prelude::*;

use super::*;

/// A batch over a small universe of series (so later batches hit existing series), with
/// samples that may be out of order or duplicates, and some histograms and exemplars.
fn batch_strategy() -> impl Strategy<Value = WriteRequest> {
    let series = (0u8..6, "[a-c]{0,2}", proptest::collection::vec((0i64..20, 0u8..4), 0..4), 0u8..4);
    proptest::collection::vec(series, 0..6).prop_map(|series| {
        let series = series
            .into_iter()
            .map(|(name, job, samples, extra)| {
                let mut ts = TimeSeries {
                    labels: labels(&[("__name__", &format!("m{}", name % 3)), ("job", &job), ("k", &name.to_string())]),
                    samples: samples.iter().map(|&(t, v)| Sample::new(t * 1000, f64::from(v))).collect(),
                    ..TimeSeries::default()
                };
                if extra == 1 {
                    let h = FloatHistogram { count: 2.0, sum: 1.5, positive: vec![(0, 2.0)], ..Default::default() };
                    ts.histograms.push(HistogramSample { t: 500_000 + i64::from(name) * 1000, h });
                }
                if extra == 2 {
                    ts.exemplars.push(Exemplar { labels: labels(&[("trace_id", "abc")]), t: 3000, v: 0.5 });
                }
                ts
            })
            .collect();
        WriteRequest { series, metadata: Vec::new() }
    })
}

/// `request` packed the way the decoder packs it: labels as the sender sent them (with an
/// empty-valued label, which must be dropped), then samples one by one.
fn pack(request: &WriteRequest) -> PackedWriteRequest {
    let mut packed = PackedWriteRequest::new();
    for ts in &request.series {
        let pairs: Vec<(&str, &str)> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        let mut w = packed.push_series(pairs.into_iter().chain([("zz_empty", "")]));
        ts.samples.iter().for_each(|&s| w.push_sample(s));
        ts.exemplars.iter().for_each(|e| w.push_exemplar(e.clone()));
        ts.histograms.iter().for_each(|h| w.push_histogram(h.clone()));
    }
    packed.metadata = request.metadata.clone();
    packed
}

/// Everything a tenant holds, comparable.
fn contents(db: &Tsdb, t: &TenantId) -> String {
    let all = [Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap()];
    let floats = db.select(t, &all, i64::MIN, i64::MAX).unwrap();
    let histograms = db.select_histograms(t, &all, i64::MIN, i64::MAX).unwrap();
    let exemplars = db.exemplars(t, &all, i64::MIN, i64::MAX);
    format!("{:?}\n{histograms:?}\n{exemplars:?}", bits(&floats))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn packed_and_owned_appends_store_the_same(batches in proptest::collection::vec(batch_strategy(), 1..5)) {
        let (owned_dir, packed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let t = tenant("t");
        {
            let (owned, packed) = (open(owned_dir.path()), open(packed_dir.path()));
            for b in &batches {
                let expected = owned.append(&t, b.clone()).unwrap();
                prop_assert_eq!(packed.append_packed(&t, pack(b)).unwrap(), expected);
            }
            prop_assert_eq!(contents(&packed, &t), contents(&owned, &t));
        }
        let (owned, packed) = (open(owned_dir.path()), open(packed_dir.path()));
        prop_assert_eq!(contents(&packed, &t), contents(&owned, &t));
    }
}
