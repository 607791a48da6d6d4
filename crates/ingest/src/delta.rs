//! Delta-to-cumulative conversion of OTLP sums and histograms, per tenant.
//!
//! Semantics follow the OpenTelemetry Collector's `deltatocumulative` processor, which
//! Prometheus 3 runs in front of its OTLP translation when `otlp-deltatocumulative` is enabled:
//!
//! - a stream is an OTLP resource + scope + metric + point attributes ([`StreamId`]); its state
//!   is the running total of each of its Prometheus series (a sum's one series; a histogram's
//!   `_sum`, `_count` and per-`le` buckets), its start time and the end time of its last point;
//! - the first point of a stream starts it: the running totals are the point's values;
//! - a later point is dropped, and counted, when it starts before the stream did (it belongs to
//!   an older run of the stream, or to a second writer of the same stream: OTel's
//!   `ErrOlderStart`) or when it does not end after the stream's last point (out of order or a
//!   duplicate: `ErrOutOfOrder`); otherwise its values are added and the totals are emitted as
//!   samples at the point's end time, whose start timestamp is the stream's start (so that
//!   with `use_start_timestamps` PromQL knows where each running total began). Monotonic sums thereby become counters and non-monotonic
//!   ones gauges of the running sum, as the wire translation already named and typed them;
//! - a point whose series differ from the stream's (changed histogram bounds, a histogram sum
//!   that appears or disappears) cannot be merged: the stream restarts from it, as OTel does
//!   when bounds change, which PromQL sees as a counter reset;
//! - a point flagged "no recorded value" emits staleness markers and ends the stream;
//! - state is bounded: a tenant tracks at most `max_streams_per_tenant` streams, and a point of
//!   a new stream beyond that is refused with [`DeltaError::TooManyStreams`] rather than growing
//!   memory (OTel's `max_streams`); a stream without points for `max_stale_ms` is forgotten
//!   (OTel's `max_stale`, default 5 minutes), after which its next point starts it afresh.
//!
//! The state moves before the samples are stored: when storing fails and the client retries,
//! the retried points are dropped as duplicates, but the totals already hold them, so the next
//! sample of each series carries them (a missing sample, not a lost increment).
//!
//! No I/O and no clock: "idle" is measured on the points' own timestamps, against the newest
//! point the tenant has sent. A tenant whose clock jumps far ahead thereby restarts its other
//! streams, which PromQL reads as counter resets. Points stamped in the same millisecond are
//! accumulated, but their samples collide in storage, as in Prometheus.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use osprey_model::{Labels, Sample, TenantId, TimeSeries, WriteRequest, STALE_NAN};
use osprey_wire::otlp::{DeltaPoint, PointSeries, StreamId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Bounds on the state kept for delta streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaLimits {
    /// Delta streams one tenant may have tracked at once; points of further streams are
    /// refused until idle ones are forgotten.
    pub max_streams_per_tenant: usize,
    /// A stream with no point for this long, in milliseconds of the tenant's point time, is
    /// forgotten. 0 never forgets: the stream limit is then the only bound.
    pub max_stale_ms: i64,
}

impl Default for DeltaLimits {
    fn default() -> Self {
        DeltaLimits { max_streams_per_tenant: 100_000, max_stale_ms: 5 * 60 * 1000 }
    }
}

/// Why a delta point was not turned into samples.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeltaError {
    #[error(
        "dropped the delta point of {series} ending at {time_unix_nano}ns: the series is already at \
         {last_unix_nano}ns (out of order or duplicate); send each stream's points in time order"
    )]
    OutOfOrder { series: Labels, time_unix_nano: u64, last_unix_nano: u64 },
    #[error(
        "dropped the delta point of {series} starting at {start_unix_nano}ns: the series started at \
         {series_start_unix_nano}ns; check for several processes sending the same series (give each \
         its own service.instance.id)"
    )]
    OlderStart { series: Labels, start_unix_nano: u64, series_start_unix_nano: u64 },
    #[error(
        "dropped the delta point of {series}: tenant {tenant} already tracks {limit} delta streams \
         (max_streams_per_tenant); export cumulative temporality, reduce attribute cardinality, or \
         raise the limit (streams idle for {max_stale_ms}ms are forgotten)"
    )]
    TooManyStreams { series: Labels, tenant: TenantId, limit: usize, max_stale_ms: i64 },
}

impl DeltaError {
    /// The metric name of the series the dropped point belonged to.
    pub fn metric(&self) -> &str {
        let series = match self {
            DeltaError::OutOfOrder { series, .. }
            | DeltaError::OlderStart { series, .. }
            | DeltaError::TooManyStreams { series, .. } => series,
        };
        series.metric_name().unwrap_or_default()
    }
}

/// What one [`DeltaToCumulative::convert`] call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaReport {
    /// Points turned into samples (staleness markers included).
    pub points_accepted: u64,
    /// Points dropped: out of order, older start, or over the stream limit.
    pub points_dropped: u64,
    /// The first reason a point was dropped.
    pub first_error: Option<DeltaError>,
}

/// Running totals of delta streams, per tenant. Shared by all requests; one tenant's requests
/// are converted one at a time, different tenants' in parallel.
#[derive(Debug, Default)]
pub struct DeltaToCumulative {
    limits: DeltaLimits,
    tenants: Mutex<HashMap<TenantId, Arc<Mutex<TenantStreams>>>>,
}

#[derive(Debug, Default)]
struct TenantStreams {
    streams: HashMap<StreamId, Stream>,
    /// End time of the newest point this tenant sent: "now" for idleness.
    newest_unix_nano: u64,
    /// `newest_unix_nano` when idle streams were last forgotten.
    swept_at_unix_nano: u64,
}

#[derive(Debug)]
struct Stream {
    start_unix_nano: u64,
    last_unix_nano: u64,
    /// Hash of the series' labels, in order: a point with other series cannot be added.
    layout: u64,
    totals: Vec<f64>,
}

impl Stream {
    fn start(p: &DeltaPoint, layout: u64) -> Stream {
        Stream {
            start_unix_nano: p.start_time_unix_nano,
            last_unix_nano: p.time_unix_nano,
            layout,
            totals: p.series.iter().map(|s| s.value).collect(),
        }
    }
}

fn layout_of(series: &[PointSeries]) -> u64 {
    let mut h = DefaultHasher::new();
    for s in series {
        s.labels.hash(&mut h);
    }
    h.finish()
}

fn first_labels(p: &DeltaPoint) -> Labels {
    p.series.first().map(|s| s.labels.clone()).unwrap_or_default()
}

/// Samples emitted by one call, one series per label set.
struct Output<'a> {
    out: &'a mut WriteRequest,
    index: HashMap<Labels, usize>,
}

impl Output<'_> {
    /// Emits one point's samples; `start_unix_nano` is where their running totals began (0:
    /// unknown, and for staleness markers).
    fn emit(
        &mut self,
        series: Vec<PointSeries>,
        time_unix_nano: u64,
        start_unix_nano: u64,
        values: impl Iterator<Item = f64>,
    ) {
        let t = (time_unix_nano / 1_000_000) as i64;
        let start = (start_unix_nano / 1_000_000) as i64;
        for (s, v) in series.into_iter().zip(values) {
            let next = self.out.series.len();
            let i = *self.index.entry(s.labels.clone()).or_insert(next);
            if i == next {
                self.out.series.push(TimeSeries {
                    labels: s.labels,
                    samples: Vec::new(),
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                    start_timestamps: Vec::new(),
                });
            }
            self.out.series[i].samples.push(Sample { t, v });
            self.out.series[i].exemplars.extend(s.exemplars);
            if start != 0 {
                self.out.series[i].start_timestamps.push((t, start));
            }
        }
    }
}

impl DeltaToCumulative {
    pub fn new(limits: DeltaLimits) -> DeltaToCumulative {
        DeltaToCumulative { limits, tenants: Mutex::new(HashMap::new()) }
    }

    /// Adds the tenant's delta points, in order, to their streams' running totals and appends
    /// the totals to `out` as samples at each point's end time. Dropped points are counted in
    /// the report and leave the state as it was.
    pub fn convert(&self, tenant: &TenantId, points: Vec<DeltaPoint>, out: &mut WriteRequest) -> DeltaReport {
        let mut report = DeltaReport::default();
        if points.is_empty() {
            return report;
        }
        let state = self.tenants.lock().entry(tenant.clone()).or_default().clone();
        let mut state = state.lock();
        let mut output = Output { out, index: HashMap::new() };
        for p in points {
            match self.add(tenant, &mut state, &p) {
                Ok(Some((totals, start))) => output.emit(p.series, p.time_unix_nano, start, totals.into_iter()),
                Ok(None) => output.emit(p.series, p.time_unix_nano, 0, std::iter::repeat(STALE_NAN)),
                Err(e) => {
                    report.points_dropped += 1;
                    report.first_error.get_or_insert(e);
                    continue;
                }
            }
            report.points_accepted += 1;
        }
        report
    }

    /// Applies one point to the tenant's state: the running totals to emit with the stream's
    /// start, `None` for staleness markers, or why the point is dropped.
    fn add(
        &self,
        tenant: &TenantId,
        state: &mut TenantStreams,
        p: &DeltaPoint,
    ) -> Result<Option<(Vec<f64>, u64)>, DeltaError> {
        self.forget_idle(state, p.time_unix_nano);
        let layout = layout_of(&p.series);
        let Some(stream) = state.streams.get_mut(&p.stream) else {
            if p.no_recorded_value {
                return Ok(None);
            }
            if state.streams.len() >= self.limits.max_streams_per_tenant {
                return Err(DeltaError::TooManyStreams {
                    series: first_labels(p),
                    tenant: tenant.clone(),
                    limit: self.limits.max_streams_per_tenant,
                    max_stale_ms: self.limits.max_stale_ms,
                });
            }
            let stream = Stream::start(p, layout);
            let totals = stream.totals.clone();
            state.streams.insert(p.stream, stream);
            return Ok(Some((totals, p.start_time_unix_nano)));
        };
        if p.start_time_unix_nano < stream.start_unix_nano {
            return Err(DeltaError::OlderStart {
                series: first_labels(p),
                start_unix_nano: p.start_time_unix_nano,
                series_start_unix_nano: stream.start_unix_nano,
            });
        }
        if p.time_unix_nano <= stream.last_unix_nano {
            return Err(DeltaError::OutOfOrder {
                series: first_labels(p),
                time_unix_nano: p.time_unix_nano,
                last_unix_nano: stream.last_unix_nano,
            });
        }
        if p.no_recorded_value {
            state.streams.remove(&p.stream);
            return Ok(None);
        }
        if stream.layout == layout {
            for (total, s) in stream.totals.iter_mut().zip(&p.series) {
                *total += s.value;
            }
            stream.last_unix_nano = p.time_unix_nano;
        } else {
            *stream = Stream::start(p, layout);
        }
        Ok(Some((stream.totals.clone(), stream.start_unix_nano)))
    }

    /// Forgets streams idle for `max_stale_ms`, checking at most every tenth of that span of
    /// point time so that a full map is not scanned for every new stream.
    fn forget_idle(&self, state: &mut TenantStreams, time_unix_nano: u64) {
        state.newest_unix_nano = state.newest_unix_nano.max(time_unix_nano);
        let Some(max_stale) = u64::try_from(self.limits.max_stale_ms).ok().filter(|ms| *ms > 0) else { return };
        let max_stale = max_stale.saturating_mul(1_000_000);
        let newest = state.newest_unix_nano;
        if newest < state.swept_at_unix_nano.saturating_add(max_stale / 10) {
            return;
        }
        state.swept_at_unix_nano = newest;
        state.streams.retain(|_, s| s.last_unix_nano.saturating_add(max_stale) >= newest);
    }

    /// Streams tracked for the tenant (for tests and self-metrics).
    pub fn tracked_streams(&self, tenant: &TenantId) -> usize {
        let state = self.tenants.lock().get(tenant).cloned();
        state.map_or(0, |s| s.lock().streams.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn tenant() -> TenantId {
        TenantId::default_tenant()
    }

    fn sum_point(stream: u128, name: &str, start_ms: u64, end_ms: u64, v: f64) -> DeltaPoint {
        DeltaPoint {
            stream: StreamId(stream),
            start_time_unix_nano: T0 + start_ms * MS,
            time_unix_nano: T0 + end_ms * MS,
            no_recorded_value: false,
            series: vec![PointSeries { labels: Labels::from_pairs([("__name__", name)]), value: v, exemplars: vec![] }],
        }
    }

    fn histogram_point(start_ms: u64, end_ms: u64, le: &[&str], increments: &[f64]) -> DeltaPoint {
        let mut series = vec![PointSeries {
            labels: Labels::from_pairs([("__name__", "h_count")]),
            value: *increments.last().unwrap(),
            exemplars: vec![],
        }];
        for (le, v) in le.iter().zip(increments) {
            series.push(PointSeries {
                labels: Labels::from_pairs([("__name__", "h_bucket"), ("le", le)]),
                value: *v,
                exemplars: vec![],
            });
        }
        DeltaPoint {
            stream: StreamId(7),
            start_time_unix_nano: T0 + start_ms * MS,
            time_unix_nano: T0 + end_ms * MS,
            no_recorded_value: false,
            series,
        }
    }

    /// Converts and renders `labels => [(ms since T0, v)]`.
    fn check(d: &DeltaToCumulative, points: Vec<DeltaPoint>) -> (Vec<String>, DeltaReport) {
        let mut out = WriteRequest::default();
        let report = d.convert(&tenant(), points, &mut out);
        let t0 = (T0 / MS) as i64;
        let rendered = out
            .series
            .iter()
            .map(|s| {
                let samples: Vec<String> = s
                    .samples
                    .iter()
                    .map(|x| {
                        if x.v.is_nan() {
                            format!("({}, stale)", x.t - t0)
                        } else {
                            format!("({}, {})", x.t - t0, x.v)
                        }
                    })
                    .collect();
                format!("{} => {}", s.labels, samples.join(" "))
            })
            .collect();
        (rendered, report)
    }

    #[test]
    fn accumulates_deltas_across_requests_into_running_totals() {
        let d = DeltaToCumulative::default();
        let (got, report) = check(&d, vec![sum_point(1, "c_total", 0, 10, 3.0), sum_point(1, "c_total", 10, 20, 2.0)]);
        assert_eq!(got, vec![r#"{__name__="c_total"} => (10, 3) (20, 5)"#]);
        assert_eq!(report, DeltaReport { points_accepted: 2, ..Default::default() });
        // Another request continues the same totals; another stream has its own.
        let (got, _) = check(&d, vec![sum_point(1, "c_total", 20, 30, 0.5), sum_point(2, "g", 20, 30, -4.0)]);
        assert_eq!(got, vec![r#"{__name__="c_total"} => (30, 5.5)"#, r#"{__name__="g"} => (30, -4)"#]);
        // Tenants do not share state.
        let mut out = WriteRequest::default();
        d.convert(&TenantId::new("other").unwrap(), vec![sum_point(1, "c_total", 30, 40, 1.0)], &mut out);
        assert_eq!(out.series[0].samples[0].v, 1.0);
        assert_eq!(d.tracked_streams(&tenant()), 2);
    }

    #[test]
    fn running_totals_start_where_their_stream_did() {
        let d = DeltaToCumulative::default();
        let mut out = WriteRequest::default();
        let points = vec![sum_point(1, "c_total", 0, 10, 3.0), sum_point(1, "c_total", 10, 20, 2.0)];
        d.convert(&tenant(), points, &mut out);
        let start = (T0 / MS) as i64;
        assert_eq!(out.series[0].start_timestamps, vec![(start + 10, start), (start + 20, start)]);
        // New bounds restart the stream: its totals start with the point that restarted it.
        let mut out = WriteRequest::default();
        let points =
            vec![histogram_point(0, 10, &["1", "+Inf"], &[1.0, 2.0]), histogram_point(10, 20, &["+Inf"], &[4.0])];
        d.convert(&tenant(), points, &mut out);
        assert_eq!(out.series[0].start_timestamps, vec![(start + 10, start), (start + 20, start + 10)], "h_count");
    }

    #[test]
    fn drops_and_counts_out_of_order_duplicate_and_older_start_points() {
        let d = DeltaToCumulative::default();
        check(&d, vec![sum_point(1, "c_total", 10, 20, 1.0)]);
        let (got, report) = check(
            &d,
            vec![
                sum_point(1, "c_total", 10, 20, 1.0), // duplicate
                sum_point(1, "c_total", 10, 15, 1.0), // out of order
                sum_point(1, "c_total", 5, 30, 1.0),  // older start
                sum_point(1, "c_total", 20, 30, 2.0),
            ],
        );
        assert_eq!(got, vec![r#"{__name__="c_total"} => (30, 3)"#]);
        assert_eq!(report.points_accepted, 1);
        assert_eq!(report.points_dropped, 3);
        let err = report.first_error.unwrap();
        assert!(matches!(err, DeltaError::OutOfOrder { .. }), "{err:?}");
        assert_eq!(err.metric(), "c_total");
        assert!(err.to_string().contains("out of order"), "{err}");
        let (_, report) = check(&d, vec![sum_point(1, "c_total", 5, 40, 1.0)]);
        assert!(report.first_error.unwrap().to_string().contains("several processes"));
    }

    #[test]
    fn histograms_add_per_series_and_restart_when_the_bounds_change() {
        let d = DeltaToCumulative::default();
        let (got, _) = check(
            &d,
            vec![
                histogram_point(0, 10, &["1", "+Inf"], &[1.0, 2.0]),
                histogram_point(10, 20, &["1", "+Inf"], &[0.0, 3.0]),
                // New bounds: the totals restart from this point.
                histogram_point(20, 30, &["0.5", "1", "+Inf"], &[1.0, 1.0, 1.0]),
                histogram_point(30, 40, &["0.5", "1", "+Inf"], &[1.0, 2.0, 2.0]),
            ],
        );
        assert_eq!(
            got,
            vec![
                r#"{__name__="h_count"} => (10, 2) (20, 5) (30, 1) (40, 3)"#,
                r#"{__name__="h_bucket", le="1"} => (10, 1) (20, 1) (30, 1) (40, 3)"#,
                r#"{__name__="h_bucket", le="+Inf"} => (10, 2) (20, 5) (30, 1) (40, 3)"#,
                r#"{__name__="h_bucket", le="0.5"} => (30, 1) (40, 2)"#,
            ]
        );
    }

    #[test]
    fn no_recorded_value_marks_stale_and_ends_the_stream() {
        let d = DeltaToCumulative::default();
        let mut stale = sum_point(1, "c_total", 10, 20, 0.0);
        stale.no_recorded_value = true;
        let (got, report) =
            check(&d, vec![sum_point(1, "c_total", 0, 10, 4.0), stale, sum_point(1, "c_total", 20, 30, 1.0)]);
        assert_eq!(got, vec![r#"{__name__="c_total"} => (10, 4) (20, stale) (30, 1)"#]);
        assert_eq!(report.points_accepted, 3);
    }

    #[test]
    fn refuses_new_streams_over_the_bound_until_idle_ones_are_forgotten() {
        let d = DeltaToCumulative::new(DeltaLimits { max_streams_per_tenant: 2, max_stale_ms: 60_000 });
        let (got, report) = check(
            &d,
            vec![sum_point(1, "a", 0, 10, 1.0), sum_point(2, "b", 0, 10, 1.0), sum_point(3, "c", 0, 10, 1.0)],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(report.points_dropped, 1);
        let err = report.first_error.unwrap().to_string();
        assert!(err.contains("already tracks 2 delta streams") && err.contains("max_streams_per_tenant"), "{err}");
        // Known streams keep accumulating at the bound.
        let (got, report) = check(&d, vec![sum_point(1, "a", 10, 20, 1.0)]);
        assert_eq!((got, report.points_dropped), (vec![r#"{__name__="a"} => (20, 2)"#.to_string()], 0));
        assert_eq!(d.tracked_streams(&tenant()), 2);
        // A minute of point time later, "b" (last seen at 10ms) is forgotten, making room;
        // "a" is kept by a point of its own.
        let (got, report) = check(&d, vec![sum_point(1, "a", 20, 60_015, 1.0), sum_point(3, "c", 60_000, 60_020, 5.0)]);
        assert_eq!(report.points_dropped, 0, "{:?}", report.first_error);
        assert_eq!(got, vec![r#"{__name__="a"} => (60015, 3)"#, r#"{__name__="c"} => (60020, 5)"#]);
        // "b" comes back as a new stream only when there is room again.
        let (_, report) = check(&d, vec![sum_point(2, "b", 60_000, 60_030, 1.0)]);
        assert_eq!(report.points_dropped, 1);

        // With max_stale_ms 0 nothing is forgotten, however old.
        let d = DeltaToCumulative::new(DeltaLimits { max_streams_per_tenant: 2, max_stale_ms: 0 });
        check(&d, vec![sum_point(1, "a", 0, 10, 1.0), sum_point(2, "b", 0, 10_000_000, 1.0)]);
        assert_eq!(d.tracked_streams(&tenant()), 2);
    }
}
