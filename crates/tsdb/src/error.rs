//! Errors of the metrics storage engine, each mapped to an [`ErrorKind`] for the API edge.

use std::io;
use std::path::PathBuf;

use osprey_model::{ErrorKind, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("I/O error on {path}: {source}; check free disk space and permissions of the data directory")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt {what} in {path}: {reason}; restore the file from a backup or delete the block directory")]
    Corrupt { path: PathBuf, what: &'static str, reason: String },
    #[error(
        "per-tenant series limit of {limit} reached for tenant {tenant}: the batch would create {new} \
         new series; reduce label cardinality or raise max_series_per_tenant"
    )]
    SeriesLimit { tenant: String, limit: usize, new: usize },
    #[error("invalid series: {0}")]
    InvalidSeries(String),
    #[error("invalid storage options: {0}")]
    InvalidOptions(String),
    #[error("metrics storage is closed; the server is shutting down, retry against a running instance")]
    Closed,
}

impl TsdbError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            TsdbError::Io { .. } | TsdbError::Corrupt { .. } => ErrorKind::Internal,
            TsdbError::SeriesLimit { .. } => ErrorKind::TooManyRequests,
            TsdbError::InvalidSeries(_) | TsdbError::InvalidOptions(_) => ErrorKind::BadRequest,
            TsdbError::Closed => ErrorKind::Unavailable,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> TsdbError {
        let path = path.into();
        move |source| TsdbError::Io { path, source }
    }
}

impl From<TsdbError> for StorageError {
    fn from(e: TsdbError) -> StorageError {
        StorageError::new(e.kind(), e.to_string())
    }
}
