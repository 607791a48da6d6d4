//! Prometheus remote_write 1.0: a snappy block-compressed `prometheus.WriteRequest` protobuf.
//!
//! Decoding validates every series the way Prometheus's write handler does (a metric name is
//! present and valid, label names are valid and unique) and refuses the whole request on the
//! first invalid series, naming it, so the sender gets a 400 that says what to fix. Native
//! histograms (`TimeSeries.histograms`, field 4) are refused the same way: Osprey stores float
//! samples only, and silently dropping them would hide data loss.
//!
//! This is the ingest hot path: the protobuf is decoded straight into owned strings that are
//! moved, not copied, into the model's types.

mod error;
mod proto;

use osprey_model::{
    is_valid_label_name, is_valid_metric_name, Exemplar, Label, Labels, MetricMetadata, MetricType, Sample, TimeSeries,
    WriteRequest, METRIC_NAME,
};
use prost::Message;

pub use error::WireError;

/// The largest decompressed body [`decode_write_request`] accepts. Prometheus sends at most
/// `max_samples_per_send` (2000 by default) samples per request, a few hundred KiB; 64 MiB
/// leaves room for very large batches while bounding the memory one request can claim.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Decodes a remote_write 1.0 body (snappy block format around a `prometheus.WriteRequest`)
/// with the default size limit [`MAX_DECOMPRESSED_BYTES`].
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, WireError> {
    decode_write_request_with_limit(body, MAX_DECOMPRESSED_BYTES)
}

/// [`decode_write_request`] with an explicit limit on the decompressed size, checked against
/// the length the snappy header declares before anything is allocated.
pub fn decode_write_request_with_limit(body: &[u8], max_decompressed_bytes: usize) -> Result<WriteRequest, WireError> {
    let declared = snap::raw::decompress_len(body).map_err(|e| WireError::Snappy(e.to_string()))?;
    if declared > max_decompressed_bytes {
        return Err(WireError::BodyTooLarge { size: declared, limit: max_decompressed_bytes });
    }
    let mut buf = vec![0u8; declared];
    let n = snap::raw::Decoder::new().decompress(body, &mut buf).map_err(|e| WireError::Snappy(e.to_string()))?;
    let request = proto::WriteRequest::decode(&buf[..n])
        .map_err(|e| WireError::Protobuf { message: "prometheus.WriteRequest", reason: e.to_string() })?;
    from_proto(request)
}

/// Encodes a request as Prometheus sends it: protobuf, then snappy block compression.
///
/// Panics if the encoded protobuf exceeds 4 GiB, the most the snappy block format can hold;
/// callers encode their own batches, which are orders of magnitude smaller.
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    let raw = to_proto(request).encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("a remote write batch over 4 GiB cannot be snappy block-compressed")
}

fn from_proto(request: proto::WriteRequest) -> Result<WriteRequest, WireError> {
    let mut series = Vec::with_capacity(request.timeseries.len());
    for ts in request.timeseries {
        series.push(series_from_proto(ts)?);
    }
    let metadata = request.metadata.into_iter().map(metadata_from_proto).collect();
    Ok(WriteRequest { series, metadata })
}

fn series_from_proto(ts: proto::TimeSeries) -> Result<TimeSeries, WireError> {
    let labels = series_labels(ts.labels)?;
    if !ts.histograms.is_empty() {
        return Err(WireError::NativeHistogramsUnsupported { series: labels.to_string(), count: ts.histograms.len() });
    }
    // Same layout on both sides, so this collects in place without a new allocation.
    let samples = ts.samples.into_iter().map(|s| Sample { t: s.timestamp, v: s.value }).collect();
    let mut exemplars = Vec::with_capacity(ts.exemplars.len());
    for e in ts.exemplars {
        exemplars.push(exemplar_from_proto(e, &labels)?);
    }
    Ok(TimeSeries { labels, samples, exemplars })
}

/// Validates and converts series labels: sorted by name (senders sort them; we sort when they
/// did not), names unique and valid, `__name__` present and a valid metric name. Labels with
/// empty values are dropped, as Prometheus treats them as absent.
fn series_labels(mut labels: Vec<proto::Label>) -> Result<Labels, WireError> {
    if !labels.windows(2).all(|w| w[0].name < w[1].name) {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(WireError::DuplicateLabelName { name: w[0].name.clone(), series: render(&labels) });
        }
    }
    let mut has_name = false;
    for l in &labels {
        if l.name == METRIC_NAME {
            if !is_valid_metric_name(&l.value) {
                return Err(WireError::InvalidMetricName { name: l.value.clone(), series: render(&labels) });
            }
            has_name = true;
        } else if !is_valid_label_name(&l.name) {
            return Err(WireError::InvalidLabelName { name: l.name.clone(), series: render(&labels) });
        }
    }
    if !has_name {
        return Err(WireError::MissingMetricName { series: render(&labels) });
    }
    let labels: Vec<Label> =
        labels.into_iter().filter(|l| !l.value.is_empty()).map(|l| Label { name: l.name, value: l.value }).collect();
    Ok(Labels::from_sorted(labels))
}

fn exemplar_from_proto(e: proto::Exemplar, series: &Labels) -> Result<Exemplar, WireError> {
    if let Some(bad) = e.labels.iter().find(|l| !is_valid_label_name(&l.name)) {
        return Err(WireError::InvalidExemplarLabelName { name: bad.name.clone(), series: series.to_string() });
    }
    let names = e.labels.iter().map(|l| l.name.as_str());
    if let Some(dup) = Labels::has_duplicate_names(names) {
        return Err(WireError::DuplicateExemplarLabelName { name: dup.to_string(), series: series.to_string() });
    }
    Ok(Exemplar {
        labels: Labels::from_pairs(e.labels.into_iter().map(|l| (l.name, l.value))),
        t: e.timestamp,
        v: e.value,
    })
}

fn metadata_from_proto(m: proto::MetricMetadata) -> MetricMetadata {
    let metric_type = match m.r#type {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => MetricType::Unknown,
    };
    MetricMetadata { metric_family_name: m.metric_family_name, metric_type, help: m.help, unit: m.unit }
}

fn metric_type_to_proto(t: MetricType) -> i32 {
    match t {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    }
}

/// Labels as the sender sent them, `{a="b", ...}`, for error messages.
fn render(labels: &[proto::Label]) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{}={:?}", l.name, l.value));
    }
    out.push('}');
    out
}

fn labels_to_proto(labels: &Labels) -> Vec<proto::Label> {
    labels.iter().map(|l| proto::Label { name: l.name.clone(), value: l.value.clone() }).collect()
}

fn to_proto(request: &WriteRequest) -> proto::WriteRequest {
    proto::WriteRequest {
        timeseries: request
            .series
            .iter()
            .map(|s| proto::TimeSeries {
                labels: labels_to_proto(&s.labels),
                samples: s.samples.iter().map(|x| proto::Sample { value: x.v, timestamp: x.t }).collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| proto::Exemplar { labels: labels_to_proto(&e.labels), value: e.v, timestamp: e.t })
                    .collect(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: request
            .metadata
            .iter()
            .map(|m| proto::MetricMetadata {
                r#type: metric_type_to_proto(m.metric_type),
                metric_family_name: m.metric_family_name.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
