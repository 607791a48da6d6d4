//! Prometheus remote_write 1.0 (a snappy block-compressed `prometheus.WriteRequest` protobuf)
//! and 2.0 (the same around an `io.prometheus.write.v2.Request`, strings in a symbol table).
//!
//! Decoding validates every series the way Prometheus's write handler does (a metric name is
//! present and valid, label names are valid and unique; native histograms pass Prometheus's
//! histogram validation) and refuses the whole request on the first invalid series, naming it,
//! so the sender gets a 400 that says what to fix. Native histograms of either version become
//! the model's float histograms (integer counts converted).
//!
//! [`negotiate`] picks the message from the `Content-Type` and `Content-Encoding` headers
//! exactly as Prometheus 3.x's write handler does: 1.0 when there is no `proto=` parameter,
//! and an error (a 415 at the API) for any other media type, message or encoding.
//!
//! This is the ingest hot path, so decoding uses hand-written protobuf readers
//! (`remote_write/decode.rs`, `remote_write/v2.rs`) that validate borrowed strings and pack
//! them into a [`PackedWriteRequest`] ([`decode_packed_with_limit`], what the server uses);
//! the decoders into [`WriteRequest`] convert that, so both accept and refuse the same bodies.
//! Encoding, used by tests, benchmarks and future remote-write senders, uses prost messages.

mod decode;
mod error;
mod histogram;
mod proto;
mod v2;

use std::collections::HashMap;

use osprey_model::{
    FloatHistogram, HistogramSample, Labels, MetricMetadata, MetricType, PackedWriteRequest, WriteRequest,
};
use prost::Message;

pub use error::WireError;

/// The largest decompressed body [`decode_write_request`] accepts. Prometheus sends at most
/// `max_samples_per_send` (2000 by default) samples per request, a few hundred KiB; 64 MiB
/// leaves room for very large batches while bounding the memory one request can claim.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Response headers a 2.0 receiver must send, with what it stored of the request
/// (`X-Prometheus-Remote-Write-Samples-Written` and so on; lower case, as HTTP/2 requires and
/// HTTP/1 header matching ignores).
pub const SAMPLES_WRITTEN_HEADER: &str = "x-prometheus-remote-write-samples-written";
pub const HISTOGRAMS_WRITTEN_HEADER: &str = "x-prometheus-remote-write-histograms-written";
pub const EXEMPLARS_WRITTEN_HEADER: &str = "x-prometheus-remote-write-exemplars-written";

/// The content type of a 2.0 request.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// The protobuf message a remote-write request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoMessage {
    /// `prometheus.WriteRequest` (remote_write 1.0).
    V1,
    /// `io.prometheus.write.v2.Request` (remote_write 2.0).
    V2,
}

impl ProtoMessage {
    /// The name used in `proto=` parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtoMessage::V1 => "prometheus.WriteRequest",
            ProtoMessage::V2 => v2::MESSAGE,
        }
    }
}

/// The message named by a request's `Content-Type` and whether its `Content-Encoding` is one
/// Osprey reads, following Prometheus's `parseProtoMsg`: no content type means 1.0; the media
/// type must be exactly `application/x-protobuf`; parameters must be `key=value`; the first
/// `proto` parameter names the message, and without one the message is 1.0. The encoding must
/// be absent or `snappy`. Errors are [`WireError::UnsupportedMediaType`].
pub fn negotiate(content_type: Option<&str>, content_encoding: Option<&str>) -> Result<ProtoMessage, WireError> {
    const MEDIA_TYPE: &str = "application/x-protobuf";
    let unsupported = |m: String| Err(WireError::UnsupportedMediaType(m));
    let content_type = content_type.unwrap_or(MEDIA_TYPE).trim();
    let content_type = if content_type.is_empty() { MEDIA_TYPE } else { content_type };
    let mut parts = content_type.split(';');
    if parts.next() != Some(MEDIA_TYPE) {
        return unsupported(format!(
            "expected {MEDIA_TYPE} as the first (media) part, got {content_type} content-type"
        ));
    }
    let mut message = ProtoMessage::V1;
    for p in parts {
        let pair: Vec<&str> = p.split('=').collect();
        let [key, value] = pair[..] else {
            return unsupported(format!(
                "expected parameters to be key-values (RFC 9110), got {p} in {content_type} content-type"
            ));
        };
        if key == "proto" {
            message = match value {
                "prometheus.WriteRequest" => ProtoMessage::V1,
                v2::MESSAGE => ProtoMessage::V2,
                other => {
                    return unsupported(format!(
                        "got {content_type} content type; unknown remote write protobuf message {other}, supported: \
                         prometheus.WriteRequest, {}",
                        v2::MESSAGE
                    ))
                }
            };
            break;
        }
    }
    match content_encoding {
        Some(enc) if !enc.is_empty() && !enc.eq_ignore_ascii_case("snappy") => unsupported(format!(
            "{enc} encoding (compression) is not accepted by this server; only snappy is acceptable"
        )),
        _ => Ok(message),
    }
}

/// Decodes a remote_write 1.0 body (snappy block format around a `prometheus.WriteRequest`)
/// with the default size limit [`MAX_DECOMPRESSED_BYTES`].
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, WireError> {
    decode_write_request_with_limit(body, MAX_DECOMPRESSED_BYTES)
}

/// [`decode_write_request`] with an explicit limit on the decompressed size, checked against
/// the length the snappy header declares before anything is allocated.
pub fn decode_write_request_with_limit(body: &[u8], max_decompressed_bytes: usize) -> Result<WriteRequest, WireError> {
    decode_packed_with_limit(ProtoMessage::V1, body, max_decompressed_bytes).map(PackedWriteRequest::into_write_request)
}

/// Decodes a remote_write 2.0 body (snappy block format around an
/// `io.prometheus.write.v2.Request`) with the default size limit [`MAX_DECOMPRESSED_BYTES`].
pub fn decode_write_request_v2(body: &[u8]) -> Result<WriteRequest, WireError> {
    decode_write_request_v2_with_limit(body, MAX_DECOMPRESSED_BYTES)
}

/// [`decode_write_request_v2`] with an explicit limit on the decompressed size.
pub fn decode_write_request_v2_with_limit(
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<WriteRequest, WireError> {
    decode_packed_with_limit(ProtoMessage::V2, body, max_decompressed_bytes).map(PackedWriteRequest::into_write_request)
}

/// Decodes a body of either version, as [`negotiate`] named it.
pub fn decode_message_with_limit(
    message: ProtoMessage,
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<WriteRequest, WireError> {
    decode_packed_with_limit(message, body, max_decompressed_bytes).map(PackedWriteRequest::into_write_request)
}

/// Decodes a body of either version into a [`PackedWriteRequest`], for
/// [`osprey_model::MetricsAppender::append_packed`]: the ingest hot path. It validates exactly
/// as the other decoders (which are this one followed by
/// [`PackedWriteRequest::into_write_request`]) but allocates per batch rather than two strings
/// per label.
pub fn decode_packed_with_limit(
    message: ProtoMessage,
    body: &[u8],
    max_decompressed_bytes: usize,
) -> Result<PackedWriteRequest, WireError> {
    let body = decompress(body, max_decompressed_bytes)?;
    match message {
        ProtoMessage::V1 => decode::decode(&body),
        ProtoMessage::V2 => v2::decode(&body),
    }
}

fn decompress(body: &[u8], max_decompressed_bytes: usize) -> Result<Vec<u8>, WireError> {
    let declared = snap::raw::decompress_len(body).map_err(|e| WireError::Snappy(e.to_string()))?;
    if declared > max_decompressed_bytes {
        return Err(WireError::BodyTooLarge { size: declared, limit: max_decompressed_bytes });
    }
    let mut buf = vec![0u8; declared];
    let n = snap::raw::Decoder::new().decompress(body, &mut buf).map_err(|e| WireError::Snappy(e.to_string()))?;
    buf.truncate(n);
    Ok(buf)
}

/// Encodes a request as Prometheus sends it: protobuf, then snappy block compression.
/// Native histograms are sent as float histograms.
///
/// Panics if the encoded protobuf exceeds 4 GiB, the most the snappy block format can hold;
/// callers encode their own batches, which are orders of magnitude smaller.
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    snappy(&to_proto(request).encode_to_vec())
}

/// Encodes a request as a remote_write 2.0 body (send it with [`CONTENT_TYPE_V2`]). Each
/// series carries the metadata of its family, when the request has some.
///
/// Panics as [`encode_write_request`] does.
pub fn encode_write_request_v2(request: &WriteRequest) -> Vec<u8> {
    snappy(&to_proto_v2(request).encode_to_vec())
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
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
                samples: s
                    .samples
                    .iter()
                    .map(|x| proto::Sample { value: x.v, timestamp: x.t, start_timestamp: 0 })
                    .collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| proto::Exemplar { labels: labels_to_proto(&e.labels), value: e.v, timestamp: e.t })
                    .collect(),
                histograms: s.histograms.iter().map(|h| histogram_to_proto(h, 0)).collect(),
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

fn spans_to_proto(buckets: &[(i32, f64)]) -> Vec<proto::BucketSpan> {
    FloatHistogram::spans(buckets)
        .into_iter()
        .map(|s| proto::BucketSpan { offset: s.offset, length: s.length })
        .collect()
}

/// The start timestamp of `series`' sample at `t` (0: none); 2.0 sends it per sample.
fn start_of(series: &osprey_model::TimeSeries, t: i64) -> i64 {
    let starts = &series.start_timestamps;
    starts.binary_search_by_key(&t, |p| p.0).map_or(0, |i| starts[i].1)
}

/// A histogram sample with its start timestamp (always 0 in 1.0).
fn histogram_to_proto(sample: &HistogramSample, start_timestamp: i64) -> proto::Histogram {
    use osprey_model::CounterResetHint;
    let h = &sample.h;
    proto::Histogram {
        count: Some(proto::HistogramCount::CountFloat(h.count)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(proto::HistogramZeroCount::ZeroCountFloat(h.zero_count)),
        negative_spans: spans_to_proto(&h.negative),
        negative_deltas: Vec::new(),
        negative_counts: h.negative.iter().map(|b| b.1).collect(),
        positive_spans: spans_to_proto(&h.positive),
        positive_deltas: Vec::new(),
        positive_counts: h.positive.iter().map(|b| b.1).collect(),
        reset_hint: match h.counter_reset_hint {
            CounterResetHint::Unknown => 0,
            CounterResetHint::CounterReset => 1,
            CounterResetHint::NotCounterReset => 2,
            CounterResetHint::Gauge => 3,
        },
        timestamp: sample.t,
        custom_values: h.custom_values.clone(),
        start_timestamp,
    }
}

/// A 2.0 symbol table under construction; symbol 0 is the empty string, as the spec requires.
struct Symbols<'a> {
    table: Vec<String>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Symbols<'a> {
    fn new() -> Symbols<'a> {
        Symbols { table: vec![String::new()], index: HashMap::from([("", 0)]) }
    }

    fn get(&mut self, s: &'a str) -> u32 {
        *self.index.entry(s).or_insert_with(|| {
            self.table.push(s.to_string());
            (self.table.len() - 1) as u32
        })
    }

    fn labels(&mut self, labels: &'a Labels) -> Vec<u32> {
        labels.iter().flat_map(|l| [self.get(&l.name), self.get(&l.value)]).collect()
    }
}

fn to_proto_v2(request: &WriteRequest) -> proto::RequestV2 {
    let families: HashMap<&str, &MetricMetadata> =
        request.metadata.iter().map(|m| (m.metric_family_name.as_str(), m)).collect();
    let mut symbols = Symbols::new();
    let timeseries = request
        .series
        .iter()
        .map(|s| {
            let name = s.labels.metric_name().unwrap_or_default();
            // A series of family `f` is `f`, or `f_total` for a counter, or `f_bucket` and the
            // like for histograms and summaries.
            let meta = families.get(name).copied().or_else(|| {
                let counter = name.strip_suffix("_total").and_then(|f| families.get(f));
                let counter = counter.filter(|m| m.metric_type == MetricType::Counter);
                counter.copied().or_else(|| {
                    [MetricType::Histogram, MetricType::GaugeHistogram, MetricType::Summary]
                        .into_iter()
                        .find_map(|t| families.get(v2::family_name(name, t)).filter(|m| m.metric_type == t).copied())
                })
            });
            proto::TimeSeriesV2 {
                labels_refs: symbols.labels(&s.labels),
                samples: s
                    .samples
                    .iter()
                    .map(|x| proto::Sample { value: x.v, timestamp: x.t, start_timestamp: start_of(s, x.t) })
                    .collect(),
                histograms: s.histograms.iter().map(|h| histogram_to_proto(h, start_of(s, h.t))).collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| proto::ExemplarV2 { labels_refs: symbols.labels(&e.labels), value: e.v, timestamp: e.t })
                    .collect(),
                metadata: meta.map(|m| proto::MetadataV2 {
                    r#type: metric_type_to_proto(m.metric_type),
                    help_ref: symbols.get(&m.help),
                    unit_ref: symbols.get(&m.unit),
                }),
                created_timestamp: 0,
            }
        })
        .collect();
    proto::RequestV2 { symbols: symbols.table, timeseries }
}

#[cfg(test)]
mod tests;
