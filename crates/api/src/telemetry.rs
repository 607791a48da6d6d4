//! Osprey's own metrics, served at `/metrics` in Prometheus text format. Names follow
//! `osprey_<area>_<name>_<unit>[_total]`; label values are bounded sets (protocols, status
//! codes), never user input. Counters are updated once per request, not per sample.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use osprey_model::AppendSummary;

use crate::ApiState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    RemoteWrite = 0,
    Otlp = 1,
}

const PROTOCOLS: [(Protocol, &str); 2] = [(Protocol::RemoteWrite, "remote_write"), (Protocol::Otlp, "otlp")];
/// Upper bounds of the query duration histogram, in seconds.
const QUERY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];

#[derive(Debug, Default)]
struct ProtocolCounters {
    requests_ok: AtomicU64,
    requests_4xx: AtomicU64,
    requests_429: AtomicU64,
    requests_5xx: AtomicU64,
    samples: AtomicU64,
    histograms: AtomicU64,
    samples_rejected: AtomicU64,
    series_created: AtomicU64,
}

/// Counters of the HTTP layer.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    protocols: [ProtocolCounters; 2],
    query_buckets: [AtomicU64; QUERY_BUCKETS.len()],
    query_count: AtomicU64,
    query_micros: AtomicU64,
}

impl ApiMetrics {
    pub(crate) fn write_succeeded(&self, protocol: Protocol, summary: &AppendSummary) {
        let c = &self.protocols[protocol as usize];
        c.requests_ok.fetch_add(1, Ordering::Relaxed);
        c.samples.fetch_add(summary.samples_appended, Ordering::Relaxed);
        c.histograms.fetch_add(summary.histograms_appended, Ordering::Relaxed);
        c.samples_rejected.fetch_add(summary.rejected(), Ordering::Relaxed);
        c.series_created.fetch_add(summary.series_created, Ordering::Relaxed);
    }

    pub(crate) fn write_failed(&self, protocol: Protocol, status: StatusCode) {
        let c = &self.protocols[protocol as usize];
        let counter = match status.as_u16() {
            429 => &c.requests_429,
            400..=499 => &c.requests_4xx,
            _ => &c.requests_5xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn query_done(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (i, bound) in QUERY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.query_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.query_count.fetch_add(1, Ordering::Relaxed);
        self.query_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        header(out, "osprey_ingest_requests_total", "counter", "Write requests by protocol and outcome.");
        for (p, name) in PROTOCOLS {
            let c = &self.protocols[p as usize];
            for (code, v) in
                [("2xx", &c.requests_ok), ("4xx", &c.requests_4xx), ("429", &c.requests_429), ("5xx", &c.requests_5xx)]
            {
                let _ =
                    writeln!(out, "osprey_ingest_requests_total{{protocol=\"{name}\",code=\"{code}\"}} {}", load(v));
            }
        }
        for (metric, help, pick) in [
            (
                "osprey_ingest_samples_total",
                "Samples stored, by protocol.",
                (|c: &ProtocolCounters| &c.samples) as fn(&ProtocolCounters) -> &AtomicU64,
            ),
            ("osprey_ingest_histograms_total", "Native-histogram samples stored, by protocol.", |c| &c.histograms),
            (
                "osprey_ingest_samples_rejected_total",
                "Samples rejected by storage (out of order, too old, duplicate), by protocol.",
                |c| &c.samples_rejected,
            ),
            ("osprey_ingest_series_created_total", "Series created by writes, by protocol.", |c| &c.series_created),
        ] {
            header(out, metric, "counter", help);
            for (p, name) in PROTOCOLS {
                let _ = writeln!(out, "{metric}{{protocol=\"{name}\"}} {}", load(pick(&self.protocols[p as usize])));
            }
        }
        header(out, "osprey_query_duration_seconds", "histogram", "Duration of PromQL queries served over HTTP.");
        for (i, bound) in QUERY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "osprey_query_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.query_buckets[i])
            );
        }
        let count = load(&self.query_count);
        let _ = writeln!(out, "osprey_query_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "osprey_query_duration_seconds_sum {}", load(&self.query_micros) as f64 / 1e6);
        let _ = writeln!(out, "osprey_query_duration_seconds_count {count}");
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `GET /metrics`.
pub async fn render(State(state): State<Arc<ApiState>>) -> Response {
    let mut out = String::with_capacity(8192);
    state.metrics.render(&mut out);
    state.admin.render_metrics(&mut out);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], out)
        .into_response()
}
