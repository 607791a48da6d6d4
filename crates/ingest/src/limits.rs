//! Per-tenant limits and the appender that enforces them.

use std::collections::HashMap;
use std::sync::Arc;

use osprey_model::{AppendSummary, Labels, MetricsAppender, PackedWriteRequest, StorageError, TenantId, WriteRequest};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::rate::{Clock, TokenBucket};

/// Limits applied to each tenant's writes. Defaults follow Mimir's, which users of
/// multi-tenant Prometheus-compatible stores already know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Samples per second accepted per tenant, averaged by a token bucket; a native-histogram
    /// sample counts as one, as in Mimir. 0 disables.
    pub ingestion_rate: f64,
    /// Samples a tenant may send in one burst above the rate.
    pub ingestion_burst_size: f64,
    /// Labels one series may carry, `__name__` included.
    pub max_label_names_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_length: usize,
    /// Longest label value, in bytes.
    pub max_label_value_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ingestion_rate: 10_000_000.0,
            ingestion_burst_size: 20_000_000.0,
            max_label_names_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
        }
    }
}

/// Enforces [`Limits`] in front of another appender.
pub struct LimitedAppender {
    inner: Arc<dyn MetricsAppender>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<TenantId, TokenBucket>>,
}

impl LimitedAppender {
    pub fn new(inner: Arc<dyn MetricsAppender>, limits: Limits, clock: Arc<dyn Clock>) -> LimitedAppender {
        LimitedAppender { inner, limits, clock, buckets: Mutex::new(HashMap::new()) }
    }

    /// Checks one series' labels, given as `pairs` and as [`Labels`] built only for an error
    /// message. One pass over the pairs (a packed batch decodes them as it goes); the count is
    /// reported before any over-long label, as when the count is known up front.
    fn check_series<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
        labels: impl FnOnce() -> Labels,
    ) -> Result<(), StorageError> {
        let l = &self.limits;
        let mut count = 0;
        let mut too_long = None;
        for (name, value) in pairs {
            count += 1;
            let long = name.len() > l.max_label_name_length || value.len() > l.max_label_value_length;
            if long && too_long.is_none() {
                too_long = Some((name, value));
            }
        }
        if count > l.max_label_names_per_series {
            return Err(StorageError::bad_request(format!(
                "series {} has {count} labels, more than the limit of {} (limits.max_label_names_per_series); drop labels with relabelling or raise the limit",
                labels(), l.max_label_names_per_series
            )));
        }
        match too_long {
            Some((name, _)) if name.len() > l.max_label_name_length => Err(StorageError::bad_request(format!(
                "label name {name:?} is {} bytes long, more than the limit of {} (limits.max_label_name_length)",
                name.len(),
                l.max_label_name_length
            ))),
            Some((name, value)) => Err(StorageError::bad_request(format!(
                "value of label {name:?} in series {} is {} bytes long, more than the limit of {} (limits.max_label_value_length)",
                labels().metric_name().unwrap_or(""), value.len(), l.max_label_value_length
            ))),
            None => Ok(()),
        }
    }

    fn check_rate(&self, tenant: &TenantId, samples: usize) -> Result<(), StorageError> {
        let l = &self.limits;
        if l.ingestion_rate <= 0.0 || samples == 0 {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(tenant.clone()).or_insert_with(|| TokenBucket::new(l.ingestion_burst_size, now));
        if bucket.try_take(samples as f64, l.ingestion_rate, l.ingestion_burst_size, now) {
            Ok(())
        } else {
            Err(StorageError::too_many_requests(format!(
                "tenant {tenant} is over its ingestion rate limit of {} samples/s (burst {}); the batch of {samples} samples was not stored: retry later, or raise limits.ingestion_rate",
                l.ingestion_rate, l.ingestion_burst_size
            )))
        }
    }
}

impl MetricsAppender for LimitedAppender {
    fn append(&self, tenant: &TenantId, request: WriteRequest) -> Result<AppendSummary, StorageError> {
        for series in &request.series {
            let pairs = series.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
            self.check_series(pairs, || series.labels.clone())?;
        }
        self.check_rate(tenant, request.sample_count() + request.histogram_count())?;
        self.inner.append(tenant, request)
    }

    /// The same limits as [`LimitedAppender::append`], checked on the packed labels.
    fn append_packed(&self, tenant: &TenantId, request: PackedWriteRequest) -> Result<AppendSummary, StorageError> {
        for series in request.series() {
            self.check_series(series.labels(), || series.to_labels())?;
        }
        self.check_rate(tenant, request.sample_count() + request.histogram_count())?;
        self.inner.append_packed(tenant, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::{ErrorKind, Labels, Sample, TimeSeries};
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    #[derive(Default)]
    struct CountingAppender(AtomicU64);
    impl MetricsAppender for CountingAppender {
        fn append(&self, _: &TenantId, r: WriteRequest) -> Result<AppendSummary, StorageError> {
            self.0.fetch_add(r.sample_count() as u64, Ordering::SeqCst);
            Ok(AppendSummary { samples_appended: r.sample_count() as u64, ..Default::default() })
        }
    }

    struct FakeClock(AtomicI64);
    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn batch(labels: Labels, n: usize) -> WriteRequest {
        WriteRequest {
            series: vec![TimeSeries {
                labels,
                samples: (0..n as i64).map(|t| Sample::new(t, 1.0)).collect(),
                exemplars: vec![],
                histograms: vec![],
                start_timestamps: Vec::new(),
            }],
            metadata: vec![],
        }
    }

    fn setup(limits: Limits) -> (Arc<CountingAppender>, Arc<FakeClock>, LimitedAppender) {
        let inner = Arc::new(CountingAppender::default());
        let clock = Arc::new(FakeClock(AtomicI64::new(0)));
        let a = LimitedAppender::new(inner.clone(), limits, clock.clone());
        (inner, clock, a)
    }

    #[test]
    fn refuses_a_batch_over_the_rate_and_stores_nothing_of_it() {
        let limits = Limits { ingestion_rate: 10.0, ingestion_burst_size: 10.0, ..Limits::default() };
        let (inner, clock, a) = setup(limits);
        let t = TenantId::new("a").unwrap();
        let up = Labels::from_pairs([("__name__", "up")]);
        a.append(&t, batch(up.clone(), 10)).unwrap();
        let err = a.append(&t, batch(up.clone(), 5)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooManyRequests);
        assert!(err.message.contains("limits.ingestion_rate"), "{}", err.message);
        assert_eq!(inner.0.load(Ordering::SeqCst), 10);
        // Another tenant has its own bucket.
        a.append(&TenantId::new("b").unwrap(), batch(up.clone(), 10)).unwrap();
        clock.0.store(1000, Ordering::SeqCst);
        a.append(&t, batch(up, 5)).unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 25);
    }

    #[test]
    fn native_histogram_samples_count_against_the_rate() {
        use osprey_model::{FloatHistogram, HistogramSample};
        let limits = Limits { ingestion_rate: 10.0, ingestion_burst_size: 10.0, ..Limits::default() };
        let (_, _, a) = setup(limits);
        let t = TenantId::default_tenant();
        let mut histograms = batch(Labels::from_pairs([("__name__", "latency")]), 0);
        histograms.series[0].histograms = (0..8).map(|t| HistogramSample { t, h: FloatHistogram::default() }).collect();
        a.append(&t, histograms).unwrap();
        let err = a.append(&t, batch(Labels::from_pairs([("__name__", "up")]), 3)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooManyRequests);
    }

    #[test]
    fn refuses_series_with_too_many_or_too_long_labels() {
        let limits = Limits { max_label_names_per_series: 2, max_label_value_length: 4, ..Limits::default() };
        let (inner, _, a) = setup(limits);
        let t = TenantId::default_tenant();
        let many = Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "2")]);
        let err = a.append(&t, batch(many, 1)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("max_label_names_per_series"), "{}", err.message);
        let long = Labels::from_pairs([("__name__", "m"), ("a", "12345")]);
        assert!(a.append(&t, batch(long, 1)).unwrap_err().message.contains("max_label_value_length"));
        assert_eq!(inner.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn packed_batches_meet_the_same_limits_with_the_same_errors() {
        let limits = Limits {
            max_label_names_per_series: 2,
            max_label_name_length: 8,
            max_label_value_length: 4,
            ingestion_rate: 10.0,
            ingestion_burst_size: 10.0,
        };
        let batches = [
            batch(Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "2")]), 1),
            // Over two limits: the label count is reported.
            batch(Labels::from_pairs([("__name__", "m"), ("a", "12345"), ("b", "2")]), 1),
            batch(Labels::from_pairs([("__name__", "m"), ("too_long_", "1")]), 1),
            batch(Labels::from_pairs([("__name__", "m"), ("a", "12345")]), 1),
            batch(Labels::from_pairs([("__name__", "m"), ("a", "1")]), 6),
            batch(Labels::from_pairs([("__name__", "m"), ("a", "1")]), 6),
        ];
        let t = TenantId::default_tenant();
        let (owned_inner, _, owned) = setup(limits.clone());
        let (packed_inner, _, packed) = setup(limits);
        assert!(owned.append(&t, batches[1].clone()).unwrap_err().message.contains("max_label_names_per_series"));
        for b in batches {
            let expected = owned.append(&t, b.clone());
            assert_eq!(packed.append_packed(&t, PackedWriteRequest::from(b)), expected);
        }
        assert_eq!(packed_inner.0.load(Ordering::SeqCst), owned_inner.0.load(Ordering::SeqCst));
        assert_eq!(packed_inner.0.load(Ordering::SeqCst), 6);
    }
}
