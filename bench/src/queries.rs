//! The query-latency benchmark: the same days of data loaded into every peer, then a fixed set
//! of dashboard-like PromQL queries timed through each peer's Prometheus-compatible HTTP API.
//!
//! The data is the ingest workload's series with a long, coarse history (seven days at
//! `--history-interval`) followed by one hour at the scrape interval, so that 1 h dashboards
//! see scrape-resolution data and 24 h and 7 d ones see all of it. Rate windows follow the
//! resolution they read, as Grafana's `$__rate_interval` does: a few samples per window.
//!
//! Invariants: every range query asks for at most 11,000 points per series (the limit
//! Prometheus enforces) and is aligned to its step, so peers that align differently
//! still compute the same points; all queries are evaluated at fixed times at the end of the
//! data, never "now".
//!
//! Not a correctness test: results are compared coarsely (number of series) so that a fast
//! but wrong answer shows; PromQL semantics are checked by the differential tests elsewhere.

pub mod report;
pub mod run;
pub mod stats;

use serde::Serialize;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The data the queries run over.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Layout {
    /// The newest data; instant queries are evaluated here, range queries end here.
    pub end_ms: i64,
    /// Interval of the last hour of data.
    pub recent_interval_ms: i64,
    /// Interval of the seven days before it.
    pub history_interval_ms: i64,
}

impl Layout {
    /// How long the scrape-resolution part of the data is.
    pub const RECENT_MS: i64 = HOUR;
    /// How long the coarse history before it is.
    pub const HISTORY_MS: i64 = 7 * DAY;

    pub fn recent_rounds(&self) -> usize {
        (Self::RECENT_MS / self.recent_interval_ms.max(1)) as usize
    }

    pub fn history_rounds(&self) -> usize {
        (Self::HISTORY_MS / self.history_interval_ms.max(1)) as usize
    }

    /// A rate window over scrape-resolution data: at least 5 minutes and 4 samples.
    fn recent_window(&self) -> i64 {
        round_up(self.recent_interval_ms * 4, MINUTE).max(5 * MINUTE)
    }

    /// A rate window that reaches over the coarse history: at least 3 of its samples.
    fn history_window(&self) -> i64 {
        round_up(self.history_interval_ms * 3, MINUTE).max(self.recent_window())
    }
}

/// When and how a query is evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    Instant { time_ms: i64 },
    Range { start_ms: i64, end_ms: i64, step_ms: i64 },
}

#[derive(Clone, Debug, Serialize)]
pub struct QuerySpec {
    /// Short name for the table.
    pub name: String,
    pub promql: String,
    #[serde(flatten)]
    pub kind: Kind,
}

impl Kind {
    /// The endpoint and its time parameters, in seconds as the API takes them.
    pub fn endpoint_and_params(&self) -> (&'static str, Vec<(&'static str, String)>) {
        let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        match *self {
            Kind::Instant { time_ms } => ("/api/v1/query", vec![("time", seconds(time_ms))]),
            Kind::Range { start_ms, end_ms, step_ms } => (
                "/api/v1/query_range",
                vec![("start", seconds(start_ms)), ("end", seconds(end_ms)), ("step", seconds(step_ms))],
            ),
        }
    }
}

fn round_up(ms: i64, unit: i64) -> i64 {
    (ms + unit - 1) / unit * unit
}

/// A PromQL duration: the largest whole unit that expresses `ms` exactly.
fn duration(ms: i64) -> String {
    match ms {
        ms if ms % HOUR == 0 => format!("{}h", ms / HOUR),
        ms if ms % MINUTE == 0 => format!("{}m", ms / MINUTE),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// The three largest metrics, about a third of all series. Their label names differ, so
/// `rate` (which drops the metric name) never makes two of them collide: Prometheus 2 refuses
/// a rate over all counters, whose names are often all that tells them apart.
const BIG: &str = "http_request_duration_seconds_bucket|http_requests_total|node_cpu_seconds_total";

/// The fixed query set over `layout`: instant queries at the end of the data, then range
/// queries of 1 h, 24 h and 7 d.
pub fn query_set(layout: &Layout) -> Vec<QuerySpec> {
    let w = duration(layout.recent_window());
    let long = duration(layout.history_window());
    let at = Kind::Instant { time_ms: layout.end_ms };
    let range = |span: i64, step: i64| {
        let end_ms = layout.end_ms - layout.end_ms.rem_euclid(step);
        Kind::Range { start_ms: end_ms - span, end_ms, step_ms: step }
    };
    let q = |name: &str, promql: String, kind: &Kind| QuerySpec { name: name.to_string(), promql, kind: kind.clone() };
    let p99 = |by: &str, window: &str| {
        format!("histogram_quantile(0.99, sum by ({by}) (rate(http_request_duration_seconds_bucket[{window}])))")
    };
    let (hour, day, week) = (range(HOUR, 15_000), range(DAY, MINUTE), range(7 * DAY, 5 * MINUTE));
    let day_5m = range(DAY, 5 * MINUTE);
    vec![
        q("count all series by job", r#"count by (job) ({__name__=~".+"})"#.into(), &at),
        q("rate of 3 metrics by instance", format!(r#"sum by (job, instance) (rate({{__name__=~"{BIG}"}}[{w}]))"#), &at),
        q("requests/s by code", format!("sum by (code) (rate(http_requests_total[{w}]))"), &at),
        q("p99 latency", p99("le", &w), &at),
        q("p99 latency by route", p99("le, handler, method", &w), &at),
        q("topk network receive", format!("topk(10, rate(node_network_receive_bytes_total[{w}]))"), &at),
        q("topk busiest hosts", format!(r#"topk(5, sum by (instance) (rate(node_cpu_seconds_total{{mode!="idle"}}[{w}])))"#), &at),
        q("regex 5xx on /api", format!(r#"sum by (handler) (rate(http_requests_total{{code=~"5..", handler=~"/api/.+"}}[{w}]))"#), &at),
        q("regex filesystems", r#"avg by (instance) (node_filesystem_avail_bytes{mountpoint!~"/boot|/var/.*", instance=~"node-0000[0-4].*"})"#.into(), &at),
        q("memory used ratio (join)", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes".into(), &at),
        q("subquery max 1h:1m", format!("max_over_time(sum(rate(http_requests_total[{w}]))[1h:1m])"), &at),
        q("subquery avg cpu 30m:1m", format!(r#"avg_over_time(sum by (instance) (rate(node_cpu_seconds_total{{mode="user"}}[{w}]))[30m:1m])"#), &at),
        q("1h requests/s by code, 15s", format!("sum by (code) (rate(http_requests_total[{w}]))"), &hour),
        q("1h p99 latency, 15s", p99("le", &w), &hour),
        q("1h cpu by host, 15s", format!(r#"sum by (instance) (rate(node_cpu_seconds_total{{mode!="idle"}}[{w}]))"#), &hour),
        q("24h rate of 3 metrics by job, 1m", format!(r#"sum by (job) (rate({{__name__=~"{BIG}"}}[{long}]))"#), &day),
        q("24h p99 latency by route, 5m", p99("le, handler", &long), &day_5m),
        q("24h memory used by host, 5m", format!("1 - avg_over_time(node_memory_MemAvailable_bytes[{long}]) / avg_over_time(node_memory_MemTotal_bytes[{long}])"), &day_5m),
        q("7d requests/s by code, 5m", format!("sum by (code) (rate(http_requests_total[{long}]))"), &week),
        q("7d p99 latency, 5m", p99("le", &long), &week),
        q("7d load p90 over hosts, 5m", format!("quantile(0.9, avg_over_time(node_load1[{long}]))"), &week),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus refuses range queries with more points per series than this.
    const MAX_POINTS: i64 = 11_000;

    fn layout(recent_s: i64, history_s: i64) -> Layout {
        Layout { end_ms: 1_800_000_012_345, recent_interval_ms: recent_s * 1000, history_interval_ms: history_s * 1000 }
    }

    #[test]
    fn windows_hold_several_samples_of_the_data_they_read() {
        let l = layout(15, 600);
        assert_eq!((duration(l.recent_window()), duration(l.history_window())), ("5m".into(), "30m".into()));
        let quick = layout(60, 3600);
        assert_eq!((duration(quick.recent_window()), duration(quick.history_window())), ("5m".into(), "3h".into()));
        assert_eq!(duration(layout(90, 3600).recent_window()), "6m");
        assert_eq!((l.recent_rounds(), l.history_rounds()), (240, 1008));
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration(2 * HOUR), "2h");
        assert_eq!(duration(90 * MINUTE), "90m");
        assert_eq!(duration(45_000), "45s");
        assert_eq!(duration(1_500), "1500ms");
    }

    #[test]
    fn the_set_covers_instant_and_1h_24h_7d_ranges_within_the_point_limit() {
        let l = layout(15, 600);
        let set = query_set(&l);
        let mut spans = std::collections::BTreeSet::new();
        for q in &set {
            match q.kind {
                Kind::Instant { time_ms } => assert_eq!(time_ms, l.end_ms, "{}", q.name),
                Kind::Range { start_ms, end_ms, step_ms } => {
                    let points = (end_ms - start_ms) / step_ms + 1;
                    assert!(points <= MAX_POINTS, "{}: {points} points", q.name);
                    assert!((15_000..=300_000).contains(&step_ms), "{}", q.name);
                    assert_eq!(end_ms % step_ms, 0, "{} is not aligned to its step", q.name);
                    assert_eq!(start_ms % step_ms, 0, "{} is not aligned to its step", q.name);
                    assert!(end_ms <= l.end_ms && l.end_ms - end_ms < step_ms, "{}", q.name);
                    spans.insert(end_ms - start_ms);
                }
            }
        }
        assert_eq!(spans.into_iter().collect::<Vec<_>>(), [HOUR, DAY, 7 * DAY]);
        let instant = set.iter().filter(|q| matches!(q.kind, Kind::Instant { .. })).count();
        assert!(instant >= 10, "{instant} instant queries");
        let names: std::collections::HashSet<&str> = set.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names.len(), set.len(), "names must be unique");
    }

    #[test]
    fn the_set_has_the_dashboard_shapes_the_benchmark_promises() {
        let set = query_set(&layout(15, 600));
        let has = |needle: &str| set.iter().any(|q| q.promql.contains(needle));
        for needle in
            ["histogram_quantile(0.99, sum by (le) (rate(", "topk(", "=~", "!~", "[1h:1m]", r#"{__name__=~".+"}"#]
        {
            assert!(has(needle), "no query uses {needle}");
        }
        // Long ranges read the coarse history with a window that holds several of its samples.
        let week: Vec<&QuerySpec> = set
            .iter()
            .filter(|q| matches!(q.kind, Kind::Range { start_ms, end_ms, .. } if end_ms - start_ms == 7 * DAY))
            .collect();
        assert!(!week.is_empty() && week.iter().all(|q| q.promql.contains("[30m]")), "{week:?}");
    }

    #[test]
    fn parameters_are_in_seconds() {
        let (path, params) = Kind::Range { start_ms: 1_000, end_ms: 61_500, step_ms: 15_000 }.endpoint_and_params();
        assert_eq!(path, "/api/v1/query_range");
        assert_eq!(
            params,
            vec![("start", "1.000".to_string()), ("end", "61.500".to_string()), ("step", "15.000".to_string())]
        );
        let (path, params) = Kind::Instant { time_ms: 1_700_000_000_123 }.endpoint_and_params();
        assert_eq!((path, params), ("/api/v1/query", vec![("time", "1700000000.123".to_string())]));
    }
}
