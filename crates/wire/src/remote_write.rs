//! Prometheus remote_write 1.0: a snappy block-compressed `prometheus.WriteRequest` protobuf.
//!
//! Decoding validates every series the way Prometheus's write handler does (a metric name is
//! present and valid, label names are valid and unique) and refuses the whole request on the
//! first invalid series, naming it, so the sender gets a 400 that says what to fix. Native
//! histograms (`TimeSeries.histograms`, field 4) are refused the same way: Osprey stores float
//! samples only, and silently dropping them would hide data loss.
//!
//! This is the ingest hot path, so decoding uses a hand-written protobuf reader
//! (`remote_write/decode.rs`) that validates borrowed strings before allocating them once;
//! encoding, used by tests, benchmarks and future remote-write senders, uses prost messages.

mod decode;
mod error;
mod proto;

use osprey_model::{Labels, MetricType, WriteRequest};
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
    decode::decode(&buf[..n])
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
