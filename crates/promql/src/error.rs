//! The engine's error type: a closed set of kinds the HTTP layer maps to status codes once,
//! and a message worded as Prometheus words it (clients and test scripts compare the text).

use osprey_model::StorageError;

/// What went wrong, at the granularity the API needs to choose a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromqlErrorKind {
    /// The query does not parse or is invalid (HTTP 400, `bad_data`).
    BadData,
    /// The query is valid but cannot be evaluated (HTTP 422, `execution`).
    Execution,
    /// The query ran past its deadline (HTTP 503, `timeout`).
    Timeout,
    /// The caller cancelled the query (`canceled`).
    Canceled,
    /// The query would hold more samples in memory than allowed (HTTP 422, `execution`).
    TooManySamples,
    /// The storage failed to answer (`internal` or `unavailable` as the storage says).
    Storage,
    /// A bug in the engine.
    Internal,
}

/// An error from parsing or evaluating a query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PromqlError {
    pub kind: PromqlErrorKind,
    pub message: String,
}

/// Prometheus's exact text, which clients match on.
pub(crate) const TOO_MANY_SAMPLES: &str = "query processing would load too many samples into memory in query execution";

impl PromqlError {
    pub fn new(kind: PromqlErrorKind, message: impl Into<String>) -> PromqlError {
        PromqlError { kind, message: message.into() }
    }

    pub(crate) fn bad_data(message: impl Into<String>) -> PromqlError {
        PromqlError::new(PromqlErrorKind::BadData, message)
    }

    pub(crate) fn execution(message: impl Into<String>) -> PromqlError {
        PromqlError::new(PromqlErrorKind::Execution, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> PromqlError {
        PromqlError::new(PromqlErrorKind::Internal, message)
    }

    pub(crate) fn too_many_samples() -> PromqlError {
        PromqlError::new(PromqlErrorKind::TooManySamples, TOO_MANY_SAMPLES)
    }
}

impl From<StorageError> for PromqlError {
    fn from(e: StorageError) -> PromqlError {
        PromqlError::new(PromqlErrorKind::Storage, e.message)
    }
}
