//! [`PackedWriteRequest`]: a write batch laid out for the ingest hot path.
//!
//! A [`WriteRequest`] holds each series' labels as a [`Labels`], two `String`s per label. For a
//! remote-write batch almost every series already exists in storage, so those strings are
//! allocated only to be compared and dropped. A packed batch keeps every label set in one
//! buffer and every kind of sample in one vector per batch, so decoding a batch allocates a
//! handful of times instead of several times per series, and storage can look series up by
//! the packed bytes without building anything.

use crate::{Exemplar, HistogramSample, Label, Labels, MetricMetadata, Sample, TimeSeries, Timestamp, WriteRequest};

/// A write batch with its series packed: see the module docs. Build it with
/// [`PackedWriteRequest::push_series`], read it with [`PackedWriteRequest::series`], or convert
/// from and to a [`WriteRequest`] (the conversions are exact inverses).
///
/// Each label set is stored as `uvarint(len) name uvarint(len) value` per label (LEB128
/// varints), in the order given, which must be by name with unique names, as in [`Labels`].
/// This is the encoding storage engines may use as a series key, so that a lookup hashes and
/// compares these bytes directly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PackedWriteRequest {
    labels: Vec<u8>,
    series: Vec<Starts>,
    samples: Vec<Sample>,
    exemplars: Vec<Exemplar>,
    histograms: Vec<HistogramSample>,
    /// `(sample timestamp, start timestamp)` pairs of the samples that carry one (see
    /// [`TimeSeries::start_timestamps`]); empty, and never allocated, for batches without.
    start_timestamps: Vec<(Timestamp, Timestamp)>,
    pub metadata: Vec<MetricMetadata>,
}

/// Where one series' data begins in each buffer; it ends where the next series' begins.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Starts {
    labels: usize,
    samples: usize,
    exemplars: usize,
    histograms: usize,
    start_timestamps: usize,
}

/// One series of a [`PackedWriteRequest`], borrowed. Only [`PackedWriteRequest::series`] makes
/// them, so the label bytes always decode.
#[derive(Debug, Clone, Copy)]
pub struct PackedSeries<'a> {
    label_bytes: &'a [u8],
    samples: &'a [Sample],
    exemplars: &'a [Exemplar],
    histograms: &'a [HistogramSample],
    start_timestamps: &'a [(Timestamp, Timestamp)],
}

/// Adds samples to the series just pushed by [`PackedWriteRequest::push_series`].
pub struct PackedSeriesWriter<'a> {
    request: &'a mut PackedWriteRequest,
}

impl PackedWriteRequest {
    pub fn new() -> PackedWriteRequest {
        PackedWriteRequest::default()
    }

    /// Starts a new series with these labels, which must be sorted by name with unique names
    /// (checked in debug builds only, as [`Labels::from_sorted`] does); pairs with an empty
    /// value are left out, as [`Labels`] does. Samples pushed on the returned writer belong to
    /// this series.
    pub fn push_series<'n>(&mut self, labels: impl IntoIterator<Item = (&'n str, &'n str)>) -> PackedSeriesWriter<'_> {
        self.series.push(Starts {
            labels: self.labels.len(),
            samples: self.samples.len(),
            exemplars: self.exemplars.len(),
            histograms: self.histograms.len(),
            start_timestamps: self.start_timestamps.len(),
        });
        let start = self.labels.len();
        for (name, value) in labels {
            if value.is_empty() {
                continue;
            }
            put_str(&mut self.labels, name);
            put_str(&mut self.labels, value);
        }
        debug_assert!(
            {
                let names: Vec<&str> = PackedLabels { buf: &self.labels[start..] }.map(|(n, _)| n).collect();
                names.windows(2).all(|w| w[0] < w[1])
            },
            "labels not sorted by name or not unique"
        );
        PackedSeriesWriter { request: self }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Float samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Native-histogram samples in the batch.
    pub fn histogram_count(&self) -> usize {
        self.histograms.len()
    }

    /// The series in the order they were pushed.
    pub fn series(&self) -> impl ExactSizeIterator<Item = PackedSeries<'_>> + '_ {
        (0..self.series.len()).map(move |i| {
            let (start, end) = self.bounds(i);
            PackedSeries {
                label_bytes: &self.labels[start.labels..end.labels],
                samples: &self.samples[start.samples..end.samples],
                exemplars: &self.exemplars[start.exemplars..end.exemplars],
                histograms: &self.histograms[start.histograms..end.histograms],
                start_timestamps: &self.start_timestamps[start.start_timestamps..end.start_timestamps],
            }
        })
    }

    /// Where series `i` starts and ends in each buffer.
    fn bounds(&self, i: usize) -> (Starts, Starts) {
        let end = self.series.get(i + 1).copied().unwrap_or(Starts {
            labels: self.labels.len(),
            samples: self.samples.len(),
            exemplars: self.exemplars.len(),
            histograms: self.histograms.len(),
            start_timestamps: self.start_timestamps.len(),
        });
        (self.series[i], end)
    }

    /// The same batch with owned [`Labels`], for appenders that only take a [`WriteRequest`].
    pub fn into_write_request(self) -> WriteRequest {
        let mut series: Vec<TimeSeries> = self
            .series()
            .map(|s| TimeSeries {
                labels: s.to_labels(),
                samples: s.samples.to_vec(),
                start_timestamps: s.start_timestamps.to_vec(),
                ..TimeSeries::default()
            })
            .collect();
        let counts: Vec<(usize, usize)> = (0..self.series.len())
            .map(|i| {
                let (start, end) = self.bounds(i);
                (end.exemplars - start.exemplars, end.histograms - start.histograms)
            })
            .collect();
        let (mut exemplars, mut histograms) = (self.exemplars.into_iter(), self.histograms.into_iter());
        for (ts, (n_exemplars, n_histograms)) in series.iter_mut().zip(counts) {
            ts.exemplars = exemplars.by_ref().take(n_exemplars).collect();
            ts.histograms = histograms.by_ref().take(n_histograms).collect();
        }
        WriteRequest { series, metadata: self.metadata }
    }
}

impl From<WriteRequest> for PackedWriteRequest {
    fn from(request: WriteRequest) -> PackedWriteRequest {
        let mut packed = PackedWriteRequest {
            labels: Vec::new(),
            series: Vec::with_capacity(request.series.len()),
            samples: Vec::with_capacity(request.sample_count()),
            exemplars: Vec::new(),
            histograms: Vec::with_capacity(request.histogram_count()),
            start_timestamps: Vec::new(),
            metadata: request.metadata,
        };
        for ts in request.series {
            let w = packed.push_series(ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
            w.request.samples.extend_from_slice(&ts.samples);
            w.request.exemplars.extend(ts.exemplars);
            w.request.histograms.extend(ts.histograms);
            w.request.start_timestamps.extend_from_slice(&ts.start_timestamps);
        }
        packed
    }
}

impl PackedSeriesWriter<'_> {
    pub fn push_sample(&mut self, sample: Sample) {
        self.request.samples.push(sample);
    }

    pub fn push_exemplar(&mut self, exemplar: Exemplar) {
        self.request.exemplars.push(exemplar);
    }

    pub fn push_histogram(&mut self, histogram: HistogramSample) {
        self.request.histograms.push(histogram);
    }

    /// Records the start timestamp of this series' sample (float or histogram) at
    /// `sample_t`; pushes come in time order. A start of 0 means none and is not stored.
    pub fn push_start_timestamp(&mut self, sample_t: Timestamp, start: Timestamp) {
        if start != 0 {
            self.request.start_timestamps.push((sample_t, start));
        }
    }
}

impl<'a> PackedSeries<'a> {
    /// The packed label set (see [`PackedWriteRequest`] for the encoding).
    pub fn label_bytes(&self) -> &'a [u8] {
        self.label_bytes
    }

    pub fn samples(&self) -> &'a [Sample] {
        self.samples
    }

    pub fn exemplars(&self) -> &'a [Exemplar] {
        self.exemplars
    }

    pub fn histograms(&self) -> &'a [HistogramSample] {
        self.histograms
    }

    /// `(sample timestamp, start timestamp)` pairs, as in [`TimeSeries::start_timestamps`].
    pub fn start_timestamps(&self) -> &'a [(Timestamp, Timestamp)] {
        self.start_timestamps
    }

    /// `(name, value)` pairs, sorted by name.
    pub fn labels(&self) -> PackedLabels<'a> {
        PackedLabels { buf: self.label_bytes }
    }

    /// The label set as owned [`Labels`] (allocates; for new series and error messages).
    pub fn to_labels(&self) -> Labels {
        Labels::from_sorted(self.labels().map(|(n, v)| Label::new(n, v)).collect())
    }
}

/// Iterates the `(name, value)` pairs of a packed label set.
#[derive(Debug, Clone)]
pub struct PackedLabels<'a> {
    buf: &'a [u8],
}

impl<'a> PackedLabels<'a> {
    fn next_str(&mut self) -> Option<&'a str> {
        let (len, rest) = get_uvarint(self.buf)?;
        let bytes = rest.get(..len)?;
        self.buf = &rest[len..];
        // Only `push_series` writes these bytes, from `&str`s: they are UTF-8.
        std::str::from_utf8(bytes).ok()
    }
}

impl<'a> Iterator for PackedLabels<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let pair = self.next_str().zip(self.next_str());
        debug_assert!(pair.is_some(), "packed labels are written by push_series and always decode");
        pair
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let mut n = s.len() as u64;
    while n >= 0x80 {
        buf.push(n as u8 | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
    buf.extend_from_slice(s.as_bytes());
}

/// A LEB128 length and the bytes after it.
fn get_uvarint(buf: &[u8]) -> Option<(usize, &[u8])> {
    let mut value = 0usize;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= usize::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b < 0x80 {
            return Some((value, &buf[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FloatHistogram;

    fn request() -> WriteRequest {
        let long = "v".repeat(300); // a two-byte length
        let series = |pairs: &[(&str, &str)], samples: Vec<Sample>| TimeSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples,
            ..TimeSeries::default()
        };
        let mut with_all = series(&[("__name__", "h"), ("a", &long)], vec![Sample::new(1, 2.0)]);
        with_all.exemplars.push(Exemplar { labels: Labels::from_pairs([("trace_id", "x")]), t: 1, v: 0.5 });
        with_all.histograms.push(HistogramSample { t: 2, h: FloatHistogram { count: 3.0, ..Default::default() } });
        with_all.start_timestamps = vec![(1, -5), (2, -5)];
        WriteRequest {
            series: vec![
                series(&[("__name__", "up"), ("job", "a")], vec![Sample::new(1, 1.0), Sample::new(2, 1.0)]),
                with_all,
                series(&[("__name__", "empty")], vec![]),
                series(&[("__name__", "up"), ("job", "b")], vec![Sample::new(3, 0.0)]),
            ],
            metadata: vec![MetricMetadata { metric_family_name: "up".into(), ..Default::default() }],
        }
    }

    #[test]
    fn round_trips_a_write_request() {
        let packed = PackedWriteRequest::from(request());
        assert_eq!(packed.len(), 4);
        assert_eq!((packed.sample_count(), packed.histogram_count()), (4, 1));
        let second = packed.series().nth(1).unwrap();
        assert_eq!(second.to_labels(), request().series[1].labels);
        assert_eq!(second.labels().next(), Some(("__name__", "h")));
        assert_eq!((second.samples().len(), second.exemplars().len(), second.histograms().len()), (1, 1, 1));
        assert_eq!(second.start_timestamps(), &[(1, -5), (2, -5)]);
        assert_eq!(packed.into_write_request(), request());
    }

    #[test]
    fn drops_empty_values_as_labels_does() {
        let mut packed = PackedWriteRequest::new();
        let mut writer = packed.push_series([("__name__", "up"), ("empty", ""), ("job", "a")]);
        writer.push_sample(Sample::new(1, 1.0));
        writer.push_start_timestamp(1, 0);
        let series = packed.series().next().unwrap();
        assert_eq!(series.to_labels(), Labels::from_pairs([("__name__", "up"), ("job", "a")]));
        assert_eq!(series.samples(), &[Sample::new(1, 1.0)]);
        assert!(series.start_timestamps().is_empty(), "a start of 0 is none");
    }
}
