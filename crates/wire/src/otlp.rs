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
//!   series, summaries `{quantile}`, `_sum` and `_count` series;
//! - `job` is `service.namespace/service.name` (or `service.name`), `instance` is
//!   `service.instance.id`, and the other resource attributes go to a `target_info` series
//!   (value 1, every 2.5 minutes from the resource's earliest to its latest point, at most 1000
//!   samples);
//! - timestamps go from nanoseconds to milliseconds; points flagged "no recorded value" become
//!   staleness markers; exemplars keep trace and span ids in hex; metadata carries the type, the
//!   description as help, and the OTLP unit.
//!
//! What is refused, per metric, with a reason: delta temporality (Prometheus refuses it by
//! default too; a stateless decoder cannot accumulate deltas into counters), exponential
//! histograms (they map to native histograms, which Osprey does not store), metrics without
//! data, and names or attribute keys with no usable character. [`metrics_to_write_request_partial`]
//! keeps the rest and counts what it refused, as OTLP's partial success reports it;
//! [`metrics_to_write_request`] refuses the whole request instead. Metrics with no data points
//! produce only their metadata and are not errors. Scope metadata is not turned into labels
//! (Prometheus's `promote_scope_metadata` is off by default), and `_created` series are not
//! produced.

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
    pub request: osprey_model::WriteRequest,
    pub rejected_data_points: u64,
    pub first_rejection: Option<WireError>,
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
/// not be converted.
pub fn metrics_to_write_request(
    request: &ExportMetricsServiceRequest,
    opts: &OtlpOptions,
) -> Result<osprey_model::WriteRequest, WireError> {
    let conversion = convert::convert(request, opts);
    match conversion.first_rejection {
        Some(e) => Err(e),
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
