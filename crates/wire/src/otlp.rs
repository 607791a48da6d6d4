//! OTLP metrics (OTLP/protobuf and OTLP/JSON `ExportMetricsServiceRequest`) decoded and
//! translated into Prometheus series the way Prometheus's OTLP receiver does by default
//! (translation strategy `UnderscoreEscapingWithSuffixes`):
//!
//! - names: characters outside `[a-zA-Z0-9:]` separate words joined by `_`; unit suffixes
//!   (`s` → `_seconds`, `By/s` → `_bytes_per_second`), `_total` for monotonic sums, `_ratio`
//!   for gauges of unit `1`; attribute keys are sanitised to label names (`http.method` →
//!   `http_method`, `1a` → `key_1a`);
//! - gauges and non-monotonic sums become gauges, monotonic sums counters, explicit-bucket
//!   histograms classic `_bucket{le}` (cumulative, ending in `+Inf`), `_sum` and `_count`
//!   series, summaries `{quantile}`, `_sum` and `_count` series, cumulative exponential
//!   histograms native histograms (scale as schema, scales above 8 merged down to 8);
//! - `job` is `service.namespace/service.name` (or `service.name`), `instance` is
//!   `service.instance.id`, and the other resource attributes go to a `target_info` series
//!   (value 1, every 2.5 minutes from the resource's earliest to its latest point, at most 1000
//!   samples);
//! - timestamps go from nanoseconds to milliseconds; points flagged "no recorded value" become
//!   staleness markers; exemplars keep trace and span ids in hex; metadata carries the type, the
//!   description as help, and the OTLP unit.
//!
//! Sums and histograms of delta temporality are named and typed as cumulative ones (monotonic
//! sums `_total` counters, non-monotonic sums gauges), but their points are not series yet:
//! they come out in [`OtlpConversion::deltas`], one [`DeltaPoint`] each with the series it adds
//! to and by how much, for a stateful converter (`osprey_ingest::DeltaToCumulative`) to turn
//! into running totals, as Prometheus's `otlp-deltatocumulative` feature does before
//! translating. This crate keeps no state between requests.
//!
//! What is refused, per metric, with a reason: exponential histograms of delta temporality
//! (as Prometheus's receiver refuses them without its native-delta feature) or of a scale
//! below -4, unspecified temporality, metrics without data, and names or attribute keys with
//! no usable character. [`metrics_to_write_request_partial`]
//! keeps the rest and counts what it refused, as OTLP's partial success reports it;
//! [`metrics_to_write_request`] refuses the whole request instead. Metrics with no data points
//! produce only their metadata and are not errors. Scope metadata is not turned into labels
//! (Prometheus's `promote_scope_metadata` is off by default), and `_created` series are not
//! produced: a cumulative point's `start_time_unix_nano` becomes the start timestamp of its
//! samples instead (monotonic and non-monotonic sums, classic histogram `_bucket`, `_sum` and
//! `_count` series, summary `_sum` and `_count`, native histograms; 0 means unknown).

mod convert;
mod json;
mod names;

use prost::Message;

pub use crate::remote_write::WireError;
pub use names::TranslationStrategy;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

/// How OTLP metrics become series; the defaults are Prometheus's.
#[derive(Debug, Clone, Default)]
pub struct OtlpOptions {
    /// How metric names are built.
    pub translation: TranslationStrategy,
    /// Resource attributes copied onto every series as labels (Prometheus's
    /// `otlp.promote_resource_attributes`). Point attributes of the same name win.
    pub promote_resource_attributes: Vec<String>,
    /// Keep `service.name`, `service.namespace` and `service.instance.id` on `target_info` as
    /// well as in `job` and `instance`.
    pub keep_identifying_resource_attributes: bool,
    /// Emit no `target_info` series.
    pub disable_target_info: bool,
}

/// The outcome of a lenient conversion: everything that could be converted, and a count and
/// first reason for what could not (what OTLP's `ExportMetricsPartialSuccess` reports).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConversion {
    /// Series of gauges, summaries and cumulative sums and histograms, with their metadata
    /// (delta metrics' metadata included).
    pub request: osprey_model::WriteRequest,
    /// Points of delta sums and histograms, in request order, still to be accumulated.
    pub deltas: Vec<DeltaPoint>,
    pub rejected_data_points: u64,
    pub first_rejection: Option<WireError>,
}

/// Identifies an OTLP stream: a 128-bit hash of its resource attributes, scope (name, version,
/// attributes), metric (name, unit, type) and point attributes. Stable within a process only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub u128);

/// One point of a delta sum or histogram: what it adds to each Prometheus series of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPoint {
    pub stream: StreamId,
    /// Start of the interval the point covers, as sent (0 when unknown).
    pub start_time_unix_nano: u64,
    /// End of that interval: the time the running totals are stamped with.
    pub time_unix_nano: u64,
    /// The point is flagged "no recorded value": its series are stale, its values meaningless.
    pub no_recorded_value: bool,
    /// Each series' increment over the interval. A sum has one series; a histogram has `_sum`
    /// (when sent), `_count` and one `_bucket` per bound ending in `le="+Inf"`, whose increments
    /// are already cumulative over `le`, so adding them series by series gives the cumulative
    /// histogram. The list changes when the bucket bounds do.
    pub series: Vec<PointSeries>,
}

/// One Prometheus series' value from one OTLP point (an increment, for a [`DeltaPoint`]), with
/// the exemplars that belong to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSeries {
    pub labels: osprey_model::Labels,
    pub value: f64,
    pub exemplars: Vec<osprey_model::Exemplar>,
}

/// Decodes an OTLP/protobuf `ExportMetricsServiceRequest` (already decompressed).
pub fn decode_metrics_protobuf(body: &[u8]) -> Result<ExportMetricsServiceRequest, WireError> {
    ExportMetricsServiceRequest::decode(body).map_err(|e| WireError::Protobuf {
        message: "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
        reason: e.to_string(),
    })
}

/// Decodes an OTLP/JSON `ExportMetricsServiceRequest` (already decompressed). Errors name the
/// JSON path of the offending field.
pub fn decode_metrics_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, WireError> {
    json::decode(body)
}

/// Converts every metric, or refuses the whole request with the first reason a metric could
/// not be converted. Delta metrics need state this function does not keep, so they are
/// refused too: use [`metrics_to_write_request_partial`] and accumulate its deltas.
pub fn metrics_to_write_request(
    request: &ExportMetricsServiceRequest,
    opts: &OtlpOptions,
) -> Result<osprey_model::WriteRequest, WireError> {
    let conversion = convert::convert(request, opts);
    if let Some(e) = conversion.first_rejection {
        return Err(e);
    }
    match conversion.deltas.first().and_then(|d| d.series.first()) {
        Some(s) => Err(WireError::OtlpUnsupported {
            metric: s.labels.metric_name().unwrap_or_default().to_string(),
            reason: "delta temporality needs running totals kept between requests; send it to the OTLP \
                     endpoint, which accumulates them, or export cumulative temporality"
                .to_string(),
        }),
        None => Ok(conversion.request),
    }
}

/// Converts what can be converted and reports what could not, as Prometheus's receiver does
/// (it stores the rest and logs the errors).
pub fn metrics_to_write_request_partial(request: &ExportMetricsServiceRequest, opts: &OtlpOptions) -> OtlpConversion {
    convert::convert(request, opts)
}

/// The body answering an OTLP/HTTP protobuf export: an `ExportMetricsServiceResponse`, with
/// `partial_success` set when some data points were refused, as the OTLP spec asks.
pub fn export_response_protobuf(conversion: &OtlpConversion) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    let partial_success = conversion.first_rejection.as_ref().map(|e| ExportMetricsPartialSuccess {
        rejected_data_points: i64::try_from(conversion.rejected_data_points).unwrap_or(i64::MAX),
        error_message: e.to_string(),
    });
    ExportMetricsServiceResponse { partial_success }.encode_to_vec()
}

/// The same answer for an OTLP/HTTP JSON export (64-bit counts as strings, per OTLP/JSON).
pub fn export_response_json(conversion: &OtlpConversion) -> Vec<u8> {
    let body = match &conversion.first_rejection {
        Some(e) => serde_json::json!({
            "partialSuccess": {
                "rejectedDataPoints": conversion.rejected_data_points.to_string(),
                "errorMessage": e.to_string(),
            }
        }),
        None => serde_json::json!({}),
    };
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests;
