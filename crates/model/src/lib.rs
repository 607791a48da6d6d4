//! The vocabulary every Osprey crate speaks: label sets, samples, exemplars, tenants, label
//! matchers, and the traits through which ingestion writes to and query engines read from
//! metrics storage.
//!
//! Invariants:
//! - No I/O, no async, no clock: time is always a parameter ([`Timestamp`], milliseconds).
//! - A [`Labels`] value is always sorted by name with unique names; constructors enforce it.
//! - A [`TenantId`] is always valid; every stored item and every query carries one.
//!
//! This crate deliberately knows nothing of wire formats, HTTP or on-disk layouts.

mod error;
mod histogram;
mod labels;
mod matcher;
mod packed;
mod sample;
mod storage;
mod tenant;

pub use error::{ErrorKind, StorageError};
pub use histogram::{
    exponential_bound, fraction_below, CombineNotes, CounterResetHint, FloatHistogram, HistogramBucket, HistogramError,
    HistogramSample, HistogramSeries, Span, CUSTOM_BUCKETS_SCHEMA,
};
pub use labels::{is_valid_label_name, is_valid_metric_name, Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use packed::{PackedLabels, PackedSeries, PackedSeriesWriter, PackedWriteRequest};
pub use sample::{is_stale_nan, Exemplar, MetricMetadata, MetricType, Sample, Timestamp, STALE_NAN, STALE_NAN_BITS};
pub use storage::{
    AppendSummary, MetricsAppender, MetricsQuerier, SelectRequest, Series, SeriesIter, SeriesSamples,
    SeriesStartTimestamps, TimeSeries, WriteRequest,
};
pub use tenant::{TenantError, TenantId};
