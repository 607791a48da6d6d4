//! The closed set of error kinds every crate maps its errors to; only the API crate turns a kind
//! into an HTTP status.

/// What kind of failure an error is, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or violates a rule; retrying it unchanged fails again.
    BadRequest,
    /// The caller is over a limit (rate, series, size); retry later or lower the load.
    TooManyRequests,
    /// The thing asked for does not exist.
    NotFound,
    /// The server cannot serve right now (shutting down, storage closed); retry later.
    Unavailable,
    /// The request took longer than allowed.
    Timeout,
    /// A fault on our side.
    Internal,
}

/// An error from a storage engine, with a message that tells the user what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StorageError { kind, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooManyRequests, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
}
