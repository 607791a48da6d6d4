//! The traits where ingestion meets metrics storage and query engines meet metrics storage.
//! Storage engines implement them; nothing else in the system knows an engine's types.
//!
//! Both traits are synchronous and batch-oriented: async callers run them on a blocking
//! thread (`tokio::task::spawn_blocking`), never on the runtime's worker threads.

use crate::{
    Exemplar, HistogramSample, HistogramSeries, Labels, Matcher, MetricMetadata, PackedWriteRequest, Sample,
    StorageError, TenantId, Timestamp,
};

/// One series of a write: its labels and its new samples, in time order. A series carries
/// float samples, native-histogram samples, or both (at different timestamps).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub exemplars: Vec<Exemplar>,
    pub histograms: Vec<HistogramSample>,
    /// Start timestamps (see [`MetricsQuerier::select_start_timestamps`]) of the samples that
    /// carry one, as `(sample timestamp, start timestamp)` pairs in time order; float and
    /// histogram samples alike (a timestamp holds one kind). Empty for the usual series
    /// without them, so they cost nothing there; a pair naming no sample of the series is
    /// ignored, and a start of 0 means none.
    pub start_timestamps: Vec<(Timestamp, Timestamp)>,
}

/// A batch of writes for one tenant; the unit of durability (acknowledged means logged).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteRequest {
    pub series: Vec<TimeSeries>,
    pub metadata: Vec<MetricMetadata>,
}

impl WriteRequest {
    /// Float samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Native-histogram samples in the batch.
    pub fn histogram_count(&self) -> usize {
        self.series.iter().map(|s| s.histograms.len()).sum()
    }
}

/// What an append did. Rejections of single samples (out of order, too old, duplicate with a
/// different value) do not fail the batch: the rest is stored and the counts say what was not,
/// so the caller can answer like Prometheus (a 400 naming the first problem, the rest kept).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppendSummary {
    pub samples_appended: u64,
    pub histograms_appended: u64,
    pub exemplars_appended: u64,
    pub series_created: u64,
    pub out_of_order: u64,
    pub too_old: u64,
    pub duplicate_with_different_value: u64,
    /// A user-facing description of the first rejected sample, if any.
    pub first_rejection: Option<String>,
}

impl AppendSummary {
    pub fn rejected(&self) -> u64 {
        self.out_of_order + self.too_old + self.duplicate_with_different_value
    }
}

/// Durable, tenant-scoped writes.
pub trait MetricsAppender: Send + Sync {
    /// Appends a batch. `Ok` means every accepted sample is durable per the engine's fsync
    /// policy. `Err` means nothing of the batch was stored (a limit, a closed engine).
    fn append(&self, tenant: &TenantId, request: WriteRequest) -> Result<AppendSummary, StorageError>;

    /// [`MetricsAppender::append`] for a batch whose labels are still packed, as the
    /// remote-write decoder produces it: engines override this to look series up by the packed
    /// bytes and build owned labels only for new series. The default converts and appends.
    fn append_packed(&self, tenant: &TenantId, request: PackedWriteRequest) -> Result<AppendSummary, StorageError> {
        self.append(tenant, request.into_write_request())
    }
}

/// A read of series matching all `matchers` with samples in `[start, end]` (inclusive, ms).
#[derive(Debug, Clone)]
pub struct SelectRequest {
    pub matchers: Vec<Matcher>,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// One series read back. Samples are in time order and include staleness markers.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The start timestamps of one series' samples read back (see
/// [`MetricsQuerier::select_start_timestamps`]): `(sample timestamp, start timestamp)` pairs
/// in time order, for the samples that carry one.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesStartTimestamps {
    pub labels: Labels,
    pub starts: Vec<(Timestamp, Timestamp)>,
}

/// One series read back with both kinds of samples (see [`MetricsQuerier::select_series`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesSamples {
    pub labels: Labels,
    /// Float samples in time order, staleness markers included.
    pub floats: Vec<Sample>,
    /// Native-histogram samples in time order (each timestamp holds one kind or the other).
    pub histograms: Vec<HistogramSample>,
}

impl SeriesSamples {
    /// Keeps only the newest sample, of whichever kind it is.
    pub fn keep_newest(&mut self) {
        let newest_float = self.floats.last().map(|s| s.t);
        let newest_histogram = self.histograms.last().map(|h| h.t);
        if newest_float > newest_histogram {
            self.histograms.clear();
            self.floats.drain(..self.floats.len() - 1);
        } else if newest_histogram.is_some() {
            self.floats.clear();
            self.histograms.drain(..self.histograms.len() - 1);
        }
    }
}

/// Series read back one at a time, in label order.
pub type SeriesIter<'a> = Box<dyn Iterator<Item = Result<SeriesSamples, StorageError>> + Send + 'a>;

/// Tenant-scoped reads. A tenant never sees another tenant's series, names or values.
pub trait MetricsQuerier: Send + Sync {
    /// Series matching every matcher that have at least one sample in `[start, end]`,
    /// sorted by labels.
    fn select(&self, tenant: &TenantId, request: &SelectRequest) -> Result<Vec<Series>, StorageError>;

    /// Native-histogram samples of series matching every matcher in `[start, end]`, sorted
    /// by labels; a series may have float samples too (each timestamp holds one or the
    /// other). Engines without native-histogram storage keep this default: none.
    fn select_histograms(
        &self,
        _tenant: &TenantId,
        _request: &SelectRequest,
    ) -> Result<Vec<HistogramSeries>, StorageError> {
        Ok(Vec::new())
    }

    /// The float and native-histogram samples of series matching every matcher in
    /// `[start, end]`, one series at a time in label order; series without samples there are
    /// left out. Engines override this to decode a series only when the reader reaches it,
    /// so that a query holds one series' samples rather than every matching one's; the
    /// default reads everything with `select` and `select_histograms` first.
    fn select_series<'a>(&'a self, tenant: &TenantId, request: &SelectRequest) -> Result<SeriesIter<'a>, StorageError> {
        let floats = self.select(tenant, request)?;
        let histograms = self.select_histograms(tenant, request)?;
        let mut out: Vec<SeriesSamples> = Vec::with_capacity(floats.len());
        let mut histograms = histograms.into_iter().peekable();
        for s in floats {
            while let Some(h) = histograms.next_if(|h| h.labels < s.labels) {
                out.push(SeriesSamples { labels: h.labels, floats: Vec::new(), histograms: h.samples });
            }
            let hists = histograms.next_if(|h| h.labels == s.labels).map(|h| h.samples).unwrap_or_default();
            out.push(SeriesSamples { labels: s.labels, floats: s.samples, histograms: hists });
        }
        out.extend(histograms.map(|h| SeriesSamples { labels: h.labels, floats: Vec::new(), histograms: h.samples }));
        Ok(Box::new(out.into_iter().map(Ok)))
    }

    /// The newest sample (float or native histogram) in `[start, end]` of each series matching
    /// every matcher, one series at a time in label order, as [`Self::select_series`] would
    /// return them each cut down by [`SeriesSamples::keep_newest`]: what an instant vector
    /// selector evaluated at `end` reads. Engines override this to find the newest sample
    /// without decoding every sample before it.
    fn select_newest<'a>(&'a self, tenant: &TenantId, request: &SelectRequest) -> Result<SeriesIter<'a>, StorageError> {
        let series = self.select_series(tenant, request)?;
        Ok(Box::new(series.map(|s| {
            s.map(|mut s| {
                s.keep_newest();
                s
            })
        })))
    }

    /// Start timestamps (OpenTelemetry's start time: when the counter, or the delta, a
    /// sample measures began) of the float and native-histogram samples of series matching
    /// every matcher in `[start, end]`, sorted by labels. Series without any are left out, so
    /// a querier pays nothing for series that never had them. A start timestamp of 0 means
    /// none, as in Prometheus. Engines that do not store start timestamps keep this default:
    /// none.
    fn select_start_timestamps(
        &self,
        _tenant: &TenantId,
        _request: &SelectRequest,
    ) -> Result<Vec<SeriesStartTimestamps>, StorageError> {
        Ok(Vec::new())
    }

    /// Label sets of series matching every matcher with samples in `[start, end]`, sorted.
    /// Engines should override this to answer from their index without reading samples.
    fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Labels>, StorageError> {
        let request = SelectRequest { matchers: matchers.to_vec(), start, end };
        Ok(self.select(tenant, &request)?.into_iter().map(|s| s.labels).collect())
    }

    /// Label names of series matching the matchers (all series when empty) with samples in
    /// the range, sorted, unique.
    fn label_names(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, StorageError>;

    /// Values of one label over the matching series with samples in the range, sorted, unique.
    fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>, StorageError>;

    /// Exemplars of matching series in the range.
    fn exemplars(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(Labels, Vec<Exemplar>)>, StorageError>;

    /// Metadata last seen per metric family.
    fn metadata(&self, tenant: &TenantId) -> Result<Vec<MetricMetadata>, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FloatHistogram;

    #[test]
    fn keep_newest_keeps_the_newest_sample_of_either_kind() {
        let floats = vec![Sample::new(10, 1.0), Sample::new(30, 3.0)];
        let histograms = vec![HistogramSample { t: 20, h: FloatHistogram::default() }];
        let mut s = SeriesSamples { labels: Labels::default(), floats: floats.clone(), histograms: histograms.clone() };
        s.keep_newest();
        assert_eq!((s.floats, s.histograms.len()), (vec![Sample::new(30, 3.0)], 0));
        let later = vec![HistogramSample { t: 40, h: FloatHistogram::default() }];
        let mut s = SeriesSamples { labels: Labels::default(), floats, histograms: later.clone() };
        s.keep_newest();
        assert_eq!((s.floats.len(), s.histograms), (0, later));
        let mut empty = SeriesSamples::default();
        empty.keep_newest();
        assert_eq!(empty, SeriesSamples::default());
    }
}
