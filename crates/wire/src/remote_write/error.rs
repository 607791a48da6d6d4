//! The errors of every decoder in this crate except the exposition parser. Each message says
//! what is wrong and what the sender should do; all are the sender's fault
//! ([`ErrorKind::BadRequest`]): retrying the same bytes fails the same way.

use osprey_model::ErrorKind;

/// Why a remote_write or OTLP body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error(
        "remote write body is not valid snappy: {0}; send a snappy block-compressed protobuf as Prometheus \
         does (the block format, not the framed/stream format)"
    )]
    Snappy(String),

    #[error(
        "remote write body decompresses to {size} bytes, over the limit of {limit} bytes; send smaller \
         batches (in Prometheus, lower queue_config.max_samples_per_send)"
    )]
    BodyTooLarge { size: usize, limit: usize },

    #[error("body is not a valid {message} protobuf: {reason}")]
    Protobuf { message: &'static str, reason: String },

    #[error("invalid metric name {name:?} in series {series}; metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName { name: String, series: String },

    #[error("invalid label name {name:?} in series {series}; label names must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName { name: String, series: String },

    #[error("duplicate label name {name:?} in series {series}; each label may appear once")]
    DuplicateLabelName { name: String, series: String },

    #[error("series {series} has no metric name; every series needs a valid __name__ label")]
    MissingMetricName { series: String },

    #[error("invalid exemplar label name {name:?} on series {series}; label names must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidExemplarLabelName { name: String, series: String },

    #[error("duplicate exemplar label name {name:?} on series {series}; each label may appear once")]
    DuplicateExemplarLabelName { name: String, series: String },

    #[error("invalid native histogram in series {series}: {reason}")]
    InvalidHistogram { series: String, reason: String },

    #[error(
        "symbol reference {reference} is out of range: the request has {symbols} symbols; every labels_refs, \
         help_ref and unit_ref must index Request.symbols"
    )]
    SymbolRefOutOfRange { reference: u32, symbols: usize },

    #[error("labels_refs has {count} entries; it must hold name/value pairs, an even number")]
    OddLabelRefs { count: usize },

    #[error("{0}")]
    UnsupportedMediaType(String),

    #[error("body is not valid OTLP/JSON: {0}")]
    OtlpJson(String),

    #[error("OTLP metric {metric:?} cannot be stored: {reason}")]
    OtlpUnsupported { metric: String, reason: String },
}

impl WireError {
    /// The error's kind at the API edge: always a bad request (an unsupported content type or
    /// encoding is one too; the API answers it with 415 as Prometheus does).
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadRequest
    }
}
