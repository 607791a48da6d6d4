//! A small in-memory [`MetricsQuerier`] for tests and the conformance runner: the engine is
//! tested against the storage trait, not against a particular storage engine.

use std::collections::BTreeMap;

use osprey_model::{
    CounterResetHint, Exemplar, HistogramSample, HistogramSeries, Labels, Matcher, MetricMetadata, MetricsQuerier,
    Sample, SelectRequest, Series, SeriesStartTimestamps, StorageError, TenantId, Timestamp,
};
use parking_lot::RwLock;

/// Series by label set, one tenant-blind map (tests use one tenant). Samples are kept sorted
/// by time; a sample at an existing timestamp replaces it. Start timestamps are kept apart,
/// as `(sample time, start time)` pairs, for the series that have any.
#[derive(Default)]
pub struct MemStore {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
    histograms: RwLock<BTreeMap<Labels, Vec<HistogramSample>>>,
    start_timestamps: RwLock<BTreeMap<Labels, Vec<(Timestamp, Timestamp)>>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Adds samples to a series (creating it), keeping time order.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let mut map = self.series.write();
        let series = map.entry(labels).or_default();
        for s in samples {
            match series.binary_search_by_key(&s.t, |x| x.t) {
                Ok(i) => series[i] = s,
                Err(i) => series.insert(i, s),
            }
        }
    }

    /// Replaces a series' samples.
    pub fn set(&self, labels: Labels, mut samples: Vec<Sample>) {
        samples.sort_by_key(|s| s.t);
        samples.dedup_by_key(|s| s.t);
        self.series.write().insert(labels, samples);
    }

    /// Replaces a series' native-histogram samples (its float samples stay; a timestamp
    /// should hold one kind only).
    ///
    /// Counter-reset hints are set as Prometheus's TSDB reports them back: an `unknown`
    /// sample that follows another histogram without a reset reads as `not_reset`; one
    /// that starts a new chunk (the first, or after a detected reset) stays `unknown`.
    pub fn set_histograms(&self, labels: Labels, mut samples: Vec<HistogramSample>) {
        samples.sort_by_key(|s| s.t);
        samples.dedup_by_key(|s| s.t);
        for i in 1..samples.len() {
            let (before, after) = samples.split_at_mut(i);
            let (prev, cur) = (&before[i - 1].h, &mut after[0].h);
            if cur.counter_reset_hint == CounterResetHint::Unknown
                && prev.counter_reset_hint != CounterResetHint::Gauge
                && !cur.detect_reset(prev)
            {
                cur.counter_reset_hint = CounterResetHint::NotCounterReset;
            }
        }
        self.histograms.write().insert(labels, samples);
    }

    /// Replaces a series' start timestamps: `(sample time, start time)` pairs for its float
    /// or histogram samples. Pairs with a start time of 0 (none) are not kept; an empty
    /// list removes them.
    pub fn set_start_timestamps(&self, labels: Labels, mut starts: Vec<(Timestamp, Timestamp)>) {
        starts.retain(|&(_, st)| st != 0);
        starts.sort_by_key(|&(t, _)| t);
        starts.dedup_by_key(|&mut (t, _)| t);
        let mut map = self.start_timestamps.write();
        if starts.is_empty() {
            map.remove(&labels);
        } else {
            map.insert(labels, starts);
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.series.write().clear();
        self.histograms.write().clear();
        self.start_timestamps.write().clear();
    }

    fn matching<'a, S: HasTime>(
        map: &'a BTreeMap<Labels, Vec<S>>,
        matchers: &'a [Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> impl Iterator<Item = (&'a Labels, &'a [S])> + 'a {
        map.iter().filter_map(move |(labels, samples)| {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                return None;
            }
            let lo = samples.partition_point(|s| s.time() < start);
            let hi = samples.partition_point(|s| s.time() <= end);
            (lo < hi).then(|| (labels, &samples[lo..hi]))
        })
    }
}

/// Samples of either kind, for the shared time-range filter.
trait HasTime {
    fn time(&self) -> Timestamp;
}

impl HasTime for Sample {
    fn time(&self) -> Timestamp {
        self.t
    }
}

impl HasTime for HistogramSample {
    fn time(&self) -> Timestamp {
        self.t
    }
}

impl HasTime for (Timestamp, Timestamp) {
    fn time(&self) -> Timestamp {
        self.0
    }
}

impl MetricsQuerier for MemStore {
    fn select_histograms(
        &self,
        _tenant: &TenantId,
        request: &SelectRequest,
    ) -> Result<Vec<HistogramSeries>, StorageError> {
        let map = self.histograms.read();
        Ok(Self::matching(&map, &request.matchers, request.start, request.end)
            .map(|(labels, samples)| HistogramSeries { labels: labels.clone(), samples: samples.to_vec() })
            .collect())
    }

    fn select_start_timestamps(
        &self,
        _tenant: &TenantId,
        request: &SelectRequest,
    ) -> Result<Vec<SeriesStartTimestamps>, StorageError> {
        let map = self.start_timestamps.read();
        Ok(Self::matching(&map, &request.matchers, request.start, request.end)
            .map(|(labels, starts)| SeriesStartTimestamps { labels: labels.clone(), starts: starts.to_vec() })
            .collect())
    }

    fn select(&self, _tenant: &TenantId, request: &SelectRequest) -> Result<Vec<Series>, StorageError> {
        let map = self.series.read();
        Ok(Self::matching(&map, &request.matchers, request.start, request.end)
            .map(|(labels, samples)| Series { labels: labels.clone(), samples: samples.to_vec() })
            .collect())
    }

    fn label_names(
        &self,
        _tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        let map = self.series.read();
        let mut names: Vec<String> = Self::matching(&map, matchers, start, end)
            .flat_map(|(labels, _)| labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        _tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        let map = self.series.read();
        let mut values: Vec<String> = Self::matching(&map, matchers, start, end)
            .filter_map(|(labels, _)| labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn exemplars(
        &self,
        _tenant: &TenantId,
        _matchers: &[Matcher],
        _start: Timestamp,
        _end: Timestamp,
    ) -> Result<Vec<(Labels, Vec<Exemplar>)>, StorageError> {
        Ok(Vec::new())
    }

    fn metadata(&self, _tenant: &TenantId) -> Result<Vec<MetricMetadata>, StorageError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_matchers_and_time() {
        let store = MemStore::new();
        store.add(Labels::from_pairs([("__name__", "a"), ("j", "x")]), [Sample::new(10, 1.0), Sample::new(20, 2.0)]);
        store.add(Labels::from_pairs([("__name__", "b")]), [Sample::new(10, 1.0)]);
        let req = SelectRequest { matchers: vec![Matcher::equal("__name__", "a")], start: 15, end: 30 };
        let got = store.select(&TenantId::default_tenant(), &req).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, vec![Sample::new(20, 2.0)]);
    }

    #[test]
    fn start_timestamps_are_selected_by_time_and_zero_means_none() {
        let store = MemStore::new();
        let a = Labels::from_pairs([("__name__", "a")]);
        store.set(a.clone(), vec![Sample::new(10, 1.0), Sample::new(20, 2.0), Sample::new(30, 3.0)]);
        store.set_start_timestamps(a.clone(), vec![(30, 25), (10, 0), (20, 5)]);
        store.set(Labels::from_pairs([("__name__", "b")]), vec![Sample::new(10, 1.0)]);
        let tenant = TenantId::default_tenant();
        let all = SelectRequest { matchers: vec![], start: 0, end: 100 };
        let got = store.select_start_timestamps(&tenant, &all).unwrap();
        assert_eq!(got, vec![SeriesStartTimestamps { labels: a.clone(), starts: vec![(20, 5), (30, 25)] }]);
        let late = SelectRequest { matchers: vec![], start: 25, end: 100 };
        let got = store.select_start_timestamps(&tenant, &late).unwrap();
        assert_eq!(got, vec![SeriesStartTimestamps { labels: a.clone(), starts: vec![(30, 25)] }]);
        store.set_start_timestamps(a, Vec::new());
        assert!(store.select_start_timestamps(&tenant, &all).unwrap().is_empty());
    }
}
