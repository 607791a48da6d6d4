//! Validation and per-tenant limits, applied to every metrics write whatever protocol brought
//! it (remote_write, OTLP, scrape) before it reaches storage.
//!
//! [`LimitedAppender`] wraps any [`MetricsAppender`] and is one itself, so the protocols do not
//! know limits exist. A batch over a limit is refused whole, before anything is stored, with a
//! message that names the limit and how to raise it; nothing already stored is affected.
//!
//! Time comes from a [`Clock`] so the rate limiter is tested without sleeping.
//!
//! [`DeltaToCumulative`] keeps, per tenant, the running totals that turn OTLP delta sums and
//! histograms into the cumulative series Prometheus-style storage expects. It is the only
//! state between requests in the ingest path, and it is bounded (see its module docs).

mod delta;
mod limits;
mod rate;

pub use delta::{DeltaError, DeltaLimits, DeltaReport, DeltaToCumulative};
pub use limits::{LimitedAppender, Limits};
pub use rate::{Clock, SystemClock};

pub use osprey_model::MetricsAppender;
