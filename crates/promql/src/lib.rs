//! Osprey's PromQL engine: parses a query (with the `promql-parser` crate) and evaluates it
//! with Prometheus 3 semantics over [`osprey_model::MetricsQuerier`], the storage trait.
//!
//! Invariants:
//! - Evaluation does no I/O and reads no clock: the evaluation time is a parameter, and the
//!   only `Instant` reads are in [`QueryContext`] (its deadline, and elapsed time for stats).
//! - Results follow Prometheus exactly where it is observable: lookback delta and staleness
//!   markers, left-open ranges `(t - r, t]`, `__name__` removal (at once by default, or
//!   delayed with [`EngineOptions::delayed_name_removal`], as the test corpus runs), error
//!   texts, annotation texts (positions are approximated, the parser keeps none).
//! - Every node is evaluated over all steps at once (`eval`), so instant and range queries
//!   share one code path; an instant query is a range of one step.
//! - Selectors read storage one series at a time (`select_series`); range functions over a
//!   selector compute batches of series and hand each result series on at once, and an
//!   aggregation with a running value consumes them as they come (`eval_vector_each`,
//!   `aggregate`'s series-major accumulators), so neither the raw samples of a long range nor
//!   a function's whole result need be held. Results never depend on the batching.
//!
//! How it is put together: `engine` (public API) → text rewrites for syntax promql-parser
//! lacks (`durexpr`: duration expressions; `extended`: `anchored`/`smoothed`; `info`: its
//! selector argument) → `eval` (selectors, subqueries, `@`, offsets, name removal) with
//! `binary`, `aggregate`, `functions`, `histogram` (histogram functions, classic and
//! native) and `native` (range functions over native histograms). `promqltest` runs
//! Prometheus's test scripts against the engine over `memstore`.
//!
//! Native histograms ([`osprey_model::FloatHistogram`]) flow beside floats: a series holds
//! float points and histogram points at different steps, results carry them in
//! [`VectorSample::h`] and [`MatrixSeries::histograms`].
//!
//! The histogram trim operators `</` and `>/`, which promql-parser lacks, are parsed as `<`
//! and `>` and recognised by node (`trim`).
//!
//! Start timestamps (with [`EngineOptions::use_start_timestamps`]) are read from storage only
//! for `rate`, `increase`, `irate` and `resets` over a selector and for `start_timestamp()`
//! (`start`); series without them cost nothing extra.

mod aggregate;
mod ast_json;
mod binary;
mod durexpr;
mod engine;
mod error;
mod eval;
mod extended;
mod functions;
mod histogram;
mod info;
mod memo;
pub mod memstore;
mod native;
pub mod promqltest;
mod scan;
mod start;
mod trim;

pub use engine::{
    format_query, parse_query_json, Engine, EngineOptions, MatrixSeries, QueryContext, QueryOutput, QueryStats, Value,
    VectorSample,
};
pub use error::{PromqlError, PromqlErrorKind};

#[cfg(test)]
mod tests;
