//! OTLP metrics to Prometheus series, following Prometheus's OTLP receiver
//! (`storage/remote/otlptranslator/prometheusremotewrite`: `FromMetrics`, `createAttributes`,
//! `addHistogramDataPoints`, `addSummaryDataPoints`, `addResourceTargetInfo`).

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::Hasher;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point, metric, number_data_point, AggregationTemporality,
    Exemplar as OtlpExemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    SummaryDataPoint,
};
use osprey_model::{
    CounterResetHint, Exemplar, FloatHistogram, HistogramSample, Label, Labels, MetricMetadata, MetricType, Sample,
    TimeSeries, Timestamp, WriteRequest, METRIC_NAME, STALE_NAN,
};

use prost::Message;

use super::names::{format_float, label_name, metric_name, value_string, NameKind};
use super::{DeltaPoint, OtlpConversion, OtlpOptions, PointSeries, StreamId, WireError};

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
const TARGET_INFO: &str = "target_info";
/// Exemplar labels beyond this many characters drop the filtered attributes (OpenMetrics limit).
const MAX_EXEMPLAR_RUNES: usize = 128;
/// `target_info` gets a sample every half lookback delta (Prometheus's default 5m) between a
/// resource's earliest and latest points, so it is found by queries over that whole span.
const TARGET_INFO_INTERVAL_MS: i64 = 150_000;
/// Bound on those samples: a point stamped near 1970 must not expand into millions of them.
const MAX_TARGET_INFO_SAMPLES: i64 = 1_000;
/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point marks the series stale.
const FLAG_NO_RECORDED_VALUE: u32 = 1;
/// The finest native-histogram schema; finer OTLP scales are merged down to it.
const MAX_NATIVE_SCHEMA: i32 = 8;
/// The coarsest; coarser OTLP scales cannot be represented.
const MIN_NATIVE_SCHEMA: i32 = -4;
/// Prometheus's zero threshold for converted exponential histograms (`defaultZeroThreshold`),
/// used when the point's own threshold is smaller.
const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// Series built so far, merged by label set as Prometheus's converter does.
#[derive(Default)]
struct Builder {
    series: Vec<TimeSeries>,
    index: HashMap<Labels, usize>,
    metadata: Vec<MetricMetadata>,
    deltas: Vec<DeltaPoint>,
}

impl Builder {
    /// The position of the series with these labels, created empty if new.
    fn index_of(&mut self, labels: Labels) -> usize {
        let next = self.series.len();
        let i = *self.index.entry(labels.clone()).or_insert(next);
        if i == next {
            self.series.push(TimeSeries { labels, ..TimeSeries::default() });
        }
        i
    }

    /// Appends a sample to the series with these labels; returns the series' position.
    fn push(&mut self, labels: Labels, t: Timestamp, v: f64) -> usize {
        let i = self.index_of(labels);
        self.series[i].samples.push(Sample { t, v });
        i
    }

    /// Appends the samples of one cumulative point, which began at `start` (0: unknown).
    fn push_point(&mut self, t: Timestamp, start: Timestamp, flags: u32, point: Vec<PointSeries>) {
        for s in point {
            let i = self.push(s.labels, t, point_value(flags, s.value));
            self.series[i].exemplars.extend(s.exemplars);
            self.push_start(i, t, start);
        }
    }

    /// Records the start timestamp of series `i`'s sample at `t`, unless unknown.
    fn push_start(&mut self, i: usize, t: Timestamp, start: Timestamp) {
        if start != 0 {
            self.series[i].start_timestamps.push((t, start));
        }
    }
}

/// Hashes what identifies an OTLP stream (resource attributes; scope name, version and
/// attributes; metric name, unit and type; point attributes) into a [`StreamId`]. Attributes
/// are hashed in key order, as OTLP treats them as a map. Two SipHash states with different
/// first bytes give 128 bits, so collisions among a tenant's streams are out of reach; the
/// prefix state is cloned per point rather than re-hashed.
#[derive(Clone)]
struct StreamHasher {
    a: DefaultHasher,
    b: DefaultHasher,
}

impl StreamHasher {
    fn new() -> StreamHasher {
        let mut b = DefaultHasher::new();
        b.write_u8(0xa5);
        StreamHasher { a: DefaultHasher::new(), b }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for h in [&mut self.a, &mut self.b] {
            h.write_usize(bytes.len());
            h.write(bytes);
        }
    }

    fn attributes(&mut self, attributes: &[KeyValue]) {
        let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
        sorted.sort_by(|x, y| x.key.cmp(&y.key));
        self.bytes(&(sorted.len() as u64).to_le_bytes());
        let mut buf = Vec::new();
        for kv in sorted {
            buf.clear();
            // Encoding into a Vec cannot fail: it grows as needed.
            kv.encode(&mut buf).unwrap_or_default();
            self.bytes(&buf);
        }
    }

    fn scope(&mut self, scope: Option<&InstrumentationScope>) {
        let (name, version, attributes) = scope.map_or(("", "", &[][..]), |s| (&s.name, &s.version, &s.attributes[..]));
        self.bytes(name.as_bytes());
        self.bytes(version.as_bytes());
        self.attributes(attributes);
    }

    fn metric(&mut self, m: &Metric, kind: NameKind) {
        self.bytes(m.name.as_bytes());
        self.bytes(m.unit.as_bytes());
        self.bytes(&[kind as u8]);
    }

    fn point(&self, attributes: &[KeyValue]) -> StreamId {
        let mut h = self.clone();
        h.attributes(attributes);
        StreamId((u128::from(h.a.finish()) << 64) | u128::from(h.b.finish()))
    }
}

/// The labels every series of one resource shares, and the per-point label rules.
struct Context<'a> {
    opts: &'a OtlpOptions,
    /// job, instance and promoted resource attributes, already named.
    resource_labels: Vec<(String, String)>,
}

impl Context<'_> {
    /// `createAttributes`: point attributes (sanitised; keys that collide after sanitising are
    /// joined with `;` in key order), then promoted resource attributes where not already set,
    /// then job and instance, then the extra pairs (metric name, `le`, `quantile`), which win.
    fn labels(&self, attributes: &[KeyValue], extras: &[(&str, &str)]) -> Result<Labels, String> {
        let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        // A map rather than the model's builder, whose linear lookups would make a point with
        // many attributes cost quadratic time.
        let mut map: HashMap<String, String> = HashMap::with_capacity(sorted.len() + self.resource_labels.len() + 2);
        for kv in sorted {
            let value = value_string(kv.value.as_ref());
            match map.entry(label_name(&kv.key)?) {
                Entry::Occupied(mut e) => {
                    let existing = e.get_mut();
                    existing.push(';');
                    existing.push_str(&value);
                }
                Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        for (name, value) in &self.resource_labels {
            let is_identifying = name == "job" || name == "instance";
            if is_identifying || !map.contains_key(name) {
                map.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in extras {
            map.insert(name.to_string(), value.to_string());
        }
        let mut labels: Vec<Label> =
            map.into_iter().filter(|(_, value)| !value.is_empty()).map(|(name, value)| Label { name, value }).collect();
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(Labels::from_sorted(labels))
    }
}

fn resource_labels(resource: &[KeyValue], opts: &OtlpOptions) -> Result<Vec<(String, String)>, String> {
    let get = |key: &str| resource.iter().find(|kv| kv.key == key).map(|kv| value_string(kv.value.as_ref()));
    let mut promoted: Vec<&KeyValue> =
        resource.iter().filter(|kv| opts.promote_resource_attributes.contains(&kv.key)).collect();
    promoted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut labels = Vec::new();
    for kv in promoted {
        let name = label_name(&kv.key)?;
        if !labels.iter().any(|(n, _)| *n == name) {
            labels.push((name, value_string(kv.value.as_ref())));
        }
    }
    // Set after the promoted attributes so they take precedence over them.
    let mut set = |name: &str, value: String| match labels.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => *v = value,
        None => labels.push((name.to_string(), value)),
    };
    if let Some(service) = get(SERVICE_NAME) {
        let job = match get(SERVICE_NAMESPACE) {
            Some(ns) => format!("{ns}/{service}"),
            None => service,
        };
        set("job", job);
    }
    if let Some(instance) = get(SERVICE_INSTANCE_ID) {
        set("instance", instance);
    }
    Ok(labels)
}

fn ns_to_ms(ns: u64) -> Timestamp {
    (ns / 1_000_000) as Timestamp
}

fn point_value(flags: u32, v: f64) -> f64 {
    if flags & FLAG_NO_RECORDED_VALUE != 0 {
        STALE_NAN
    } else {
        v
    }
}

fn number_value(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

/// `getPromExemplars`: trace and span ids in hex, then the filtered attributes unless they
/// push the label text past 128 characters. Exemplars without a value are skipped.
fn exemplars(list: &[OtlpExemplar]) -> Vec<Exemplar> {
    list.iter()
        .filter_map(|e| {
            let v = match e.value? {
                exemplar::Value::AsDouble(d) => d,
                exemplar::Value::AsInt(i) => i as f64,
            };
            let mut pairs: Vec<(String, String)> = Vec::new();
            let mut runes = 0;
            for (key, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
                if !id.is_empty() {
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    runes += key.len() + hex.len();
                    pairs.push((key.to_string(), hex));
                }
            }
            let mut attrs = Vec::with_capacity(e.filtered_attributes.len());
            for kv in &e.filtered_attributes {
                let value = value_string(kv.value.as_ref());
                runes += kv.key.chars().count() + value.chars().count();
                attrs.push((kv.key.clone(), value));
            }
            if runes <= MAX_EXEMPLAR_RUNES {
                pairs.extend(attrs);
            }
            Some(Exemplar { labels: Labels::from_pairs(pairs), t: ns_to_ms(e.time_unix_nano), v })
        })
        .collect()
}

fn name_kind(data: &metric::Data) -> Option<NameKind> {
    match data {
        metric::Data::Gauge(_) => Some(NameKind::Gauge),
        metric::Data::Sum(s) if s.is_monotonic => Some(NameKind::MonotonicCounter),
        metric::Data::Sum(_) => Some(NameKind::NonMonotonicCounter),
        metric::Data::Histogram(_) => Some(NameKind::Histogram),
        metric::Data::Summary(_) => Some(NameKind::Summary),
        metric::Data::ExponentialHistogram(_) => Some(NameKind::Histogram),
    }
}

fn metric_type(kind: NameKind) -> MetricType {
    match kind {
        NameKind::Gauge | NameKind::NonMonotonicCounter => MetricType::Gauge,
        NameKind::MonotonicCounter => MetricType::Counter,
        NameKind::Histogram => MetricType::Histogram,
        NameKind::Summary => MetricType::Summary,
    }
}

fn data_point_count(data: &metric::Data) -> usize {
    match data {
        metric::Data::Gauge(g) => g.data_points.len(),
        metric::Data::Sum(s) => s.data_points.len(),
        metric::Data::Histogram(h) => h.data_points.len(),
        metric::Data::ExponentialHistogram(h) => h.data_points.len(),
        metric::Data::Summary(s) => s.data_points.len(),
    }
}

fn point_times(data: &metric::Data) -> Vec<u64> {
    match data {
        metric::Data::Gauge(g) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
        metric::Data::Sum(s) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        metric::Data::Histogram(h) => h.data_points.iter().map(|p| p.time_unix_nano).collect(),
        metric::Data::ExponentialHistogram(h) => h.data_points.iter().map(|p| p.time_unix_nano).collect(),
        metric::Data::Summary(s) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
    }
}

/// How a metric's points relate to each other in time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Temporality {
    /// Each point is the running total (or a gauge or summary reading): stored as it is.
    Cumulative,
    /// Each point is the change since the previous one: handed over as [`DeltaPoint`]s.
    Delta,
}

/// Refuses temporalities OTLP leaves undefined, and delta exponential histograms, which
/// Prometheus's receiver refuses unless native delta ingestion is enabled (a running total of
/// native histograms is not kept here).
fn check_supported(data: &metric::Data) -> Result<Temporality, String> {
    let temporality = match data {
        metric::Data::Sum(s) => s.aggregation_temporality,
        metric::Data::Histogram(h) => h.aggregation_temporality,
        metric::Data::ExponentialHistogram(h) if h.aggregation_temporality == AggregationTemporality::Delta as i32 => {
            return Err("exponential histograms of delta temporality are not accepted, as in Prometheus's OTLP \
                        receiver; export cumulative temporality (in the SDK, a cumulative temporality preference)"
                .to_string())
        }
        metric::Data::ExponentialHistogram(h) => h.aggregation_temporality,
        metric::Data::Gauge(_) | metric::Data::Summary(_) => return Ok(Temporality::Cumulative),
    };
    if temporality == AggregationTemporality::Cumulative as i32 {
        Ok(Temporality::Cumulative)
    } else if temporality == AggregationTemporality::Delta as i32 {
        Ok(Temporality::Delta)
    } else {
        Err(format!(
            "invalid aggregation temporality {temporality} for a sum or histogram; send cumulative (2) or delta (1)"
        ))
    }
}

pub(crate) fn convert(req: &ExportMetricsServiceRequest, opts: &OtlpOptions) -> OtlpConversion {
    let mut b = Builder::default();
    let mut rejected_data_points = 0u64;
    let mut first_rejection: Option<WireError> = None;
    let mut reject = |metric: &str, points: usize, reason: String| {
        rejected_data_points += points as u64;
        first_rejection.get_or_insert(WireError::OtlpUnsupported { metric: metric.to_string(), reason });
    };

    for rm in &req.resource_metrics {
        let resource: &[KeyValue] = rm.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let mut resource_stream = StreamHasher::new();
        resource_stream.attributes(resource);
        let ctx = match resource_labels(resource, opts) {
            Ok(resource_labels) => Context { opts, resource_labels },
            Err(reason) => {
                for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    reject(&m.name, m.data.as_ref().map_or(0, data_point_count), reason.clone());
                }
                continue;
            }
        };
        let (mut earliest, mut latest) = (u64::MAX, 0u64);
        for sm in &rm.scope_metrics {
            let mut scope_stream = resource_stream.clone();
            scope_stream.scope(sm.scope.as_ref());
            for m in &sm.metrics {
                let Some(data) = &m.data else {
                    reject(&m.name, 0, "the metric has no data (no gauge, sum, histogram or summary)".to_string());
                    continue;
                };
                for t in point_times(data) {
                    earliest = earliest.min(t);
                    latest = latest.max(t);
                }
                if let Err(reason) = convert_metric(&mut b, &ctx, &scope_stream, m, data) {
                    reject(&m.name, data_point_count(data), reason);
                }
            }
        }
        if earliest != u64::MAX && !opts.disable_target_info {
            if let Err(reason) = add_target_info(&mut b, &ctx, resource, ns_to_ms(earliest), ns_to_ms(latest)) {
                reject(TARGET_INFO, 0, reason);
            }
        }
    }
    OtlpConversion {
        request: WriteRequest { series: b.series, metadata: b.metadata },
        deltas: b.deltas,
        rejected_data_points,
        first_rejection,
    }
}

/// Every attribute key of every point, checked before any series is touched so that a
/// refused metric leaves nothing half-converted behind.
fn check_attribute_keys(data: &metric::Data) -> Result<(), String> {
    let keys: Box<dyn Iterator<Item = &KeyValue>> = match data {
        metric::Data::Gauge(g) => Box::new(g.data_points.iter().flat_map(|p| &p.attributes)),
        metric::Data::Sum(s) => Box::new(s.data_points.iter().flat_map(|p| &p.attributes)),
        metric::Data::Histogram(h) => Box::new(h.data_points.iter().flat_map(|p| &p.attributes)),
        metric::Data::ExponentialHistogram(h) => Box::new(h.data_points.iter().flat_map(|p| &p.attributes)),
        metric::Data::Summary(s) => Box::new(s.data_points.iter().flat_map(|p| &p.attributes)),
    };
    for kv in keys {
        label_name(&kv.key)?;
    }
    Ok(())
}

fn convert_metric(
    b: &mut Builder,
    ctx: &Context,
    scope_stream: &StreamHasher,
    m: &Metric,
    data: &metric::Data,
) -> Result<(), String> {
    let temporality = check_supported(data)?;
    let Some(kind) = name_kind(data) else { return Ok(()) };
    let family = metric_name(&m.name, &m.unit, kind, ctx.opts.translation)?;
    check_attribute_keys(data)?;
    let mut metric_stream = scope_stream.clone();
    metric_stream.metric(m, kind);
    // Hands a point over as it is, or as a delta for the stateful converter.
    let emit =
        |b: &mut Builder, attributes: &[KeyValue], start: u64, time: u64, flags: u32, series: Vec<_>| match temporality
        {
            Temporality::Cumulative => b.push_point(ns_to_ms(time), ns_to_ms(start), flags, series),
            Temporality::Delta => b.deltas.push(DeltaPoint {
                stream: metric_stream.point(attributes),
                start_time_unix_nano: start,
                time_unix_nano: time,
                no_recorded_value: flags & FLAG_NO_RECORDED_VALUE != 0,
                series,
            }),
        };
    match data {
        metric::Data::Gauge(g) => {
            for p in &g.data_points {
                let labels = ctx.labels(&p.attributes, &[(METRIC_NAME, &family)])?;
                b.push(labels, ns_to_ms(p.time_unix_nano), point_value(p.flags, number_value(p)));
            }
        }
        metric::Data::Sum(s) => {
            for p in &s.data_points {
                let labels = ctx.labels(&p.attributes, &[(METRIC_NAME, &family)])?;
                let series = vec![PointSeries { labels, value: number_value(p), exemplars: exemplars(&p.exemplars) }];
                emit(b, &p.attributes, p.start_time_unix_nano, p.time_unix_nano, p.flags, series);
            }
        }
        metric::Data::Histogram(h) => {
            for p in &h.data_points {
                let series = histogram_series(ctx, &family, p)?;
                emit(b, &p.attributes, p.start_time_unix_nano, p.time_unix_nano, p.flags, series);
            }
        }
        metric::Data::Summary(s) => {
            for p in &s.data_points {
                add_summary_point(b, ctx, &family, p)?;
            }
        }
        metric::Data::ExponentialHistogram(h) => {
            // Delta temporality was refused above, so every point is a running total.
            let mut points = Vec::with_capacity(h.data_points.len());
            for p in &h.data_points {
                let labels = ctx.labels(&p.attributes, &[(METRIC_NAME, &family)])?;
                points.push((labels, native_histogram(p)?, exemplars(&p.exemplars), ns_to_ms(p.start_time_unix_nano)));
            }
            for (labels, sample, exemplars, start) in points {
                let i = b.index_of(labels);
                b.push_start(i, sample.t, start);
                b.series[i].histograms.push(sample);
                b.series[i].exemplars.extend(exemplars);
            }
        }
    }
    b.metadata.push(MetricMetadata {
        metric_family_name: family,
        metric_type: metric_type(kind),
        help: m.description.clone(),
        unit: m.unit.clone(),
    });
    Ok(())
}

/// Classic histogram series: `_sum` (when the point has a sum), `_count`, and cumulative
/// `_bucket{le}` series ending in `le="+Inf"` equal to the count. Each exemplar goes to the
/// first bucket whose bound is at least its value.
fn histogram_series(ctx: &Context, family: &str, p: &HistogramDataPoint) -> Result<Vec<PointSeries>, String> {
    let mut series = Vec::with_capacity(p.explicit_bounds.len() + 3);
    let plain = |labels, value| PointSeries { labels, value, exemplars: Vec::new() };
    if let Some(sum) = p.sum {
        series.push(plain(ctx.labels(&p.attributes, &[(METRIC_NAME, &format!("{family}_sum"))])?, sum));
    }
    series.push(plain(ctx.labels(&p.attributes, &[(METRIC_NAME, &format!("{family}_count"))])?, p.count as f64));

    let bucket_name = format!("{family}_bucket");
    let mut cumulative = 0u64;
    // As many buckets as both lists cover, then +Inf holding the total count.
    let explicit = p.explicit_bounds.iter().zip(&p.bucket_counts).map(|(bound, count)| {
        cumulative = cumulative.saturating_add(*count);
        (*bound, cumulative as f64)
    });
    let all: Vec<(f64, f64)> = explicit.chain([(f64::INFINITY, p.count as f64)]).collect();
    let mut buckets: Vec<(f64, usize)> = Vec::with_capacity(all.len());
    for (bound, v) in all {
        let le = format_float(bound);
        buckets.push((bound, series.len()));
        series.push(plain(ctx.labels(&p.attributes, &[(METRIC_NAME, &bucket_name), ("le", &le)])?, v));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    for e in exemplars(&p.exemplars) {
        if let Some((_, i)) = buckets.iter().find(|(bound, _)| e.v <= *bound) {
            series[*i].exemplars.push(e);
        }
    }
    Ok(series)
}

/// `exponentialToNativeHistogram`: OTLP scale `s` is native schema `s` (scales above 8 are
/// merged down to 8, scales below -4 refused); OTLP bucket `i` covers `(base^i, base^(i+1)]`
/// and native bucket `i` covers `(base^(i-1), base^i]`, so indexes shift by one. Points
/// flagged "no recorded value" become stale markers (sum the staleness NaN, no buckets). The
/// reset hint is left unknown, as Prometheus does, so the store detects resets itself.
fn native_histogram(p: &ExponentialHistogramDataPoint) -> Result<HistogramSample, String> {
    if p.scale < MIN_NATIVE_SCHEMA {
        return Err(format!(
            "exponential histogram scale {} cannot be converted to a native histogram; the scale must be at \
             least {MIN_NATIVE_SCHEMA}",
            p.scale
        ));
    }
    let t = ns_to_ms(p.time_unix_nano);
    let schema = p.scale.min(MAX_NATIVE_SCHEMA);
    let zero_threshold = p.zero_threshold.max(DEFAULT_ZERO_THRESHOLD);
    if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
        let h = FloatHistogram { schema, zero_threshold, sum: STALE_NAN, ..FloatHistogram::default() };
        return Ok(HistogramSample { t, h });
    }
    let scale_down = (p.scale - schema) as u32;
    let positive = native_buckets(p.positive.as_ref(), scale_down)?;
    let negative = native_buckets(p.negative.as_ref(), scale_down)?;
    let in_buckets: f64 = positive.iter().chain(&negative).map(|b| b.1).sum::<f64>() + p.zero_count as f64;
    if in_buckets != p.count as f64 {
        return Err(format!(
            "exponential histogram point has {in_buckets} observations in its buckets but a count of {}; the count \
             must equal the bucket counts plus the zero count",
            p.count
        ));
    }
    let h = FloatHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema,
        zero_threshold,
        zero_count: p.zero_count as f64,
        count: p.count as f64,
        sum: p.sum.unwrap_or(0.0),
        positive,
        negative,
        custom_values: Vec::new(),
    };
    Ok(HistogramSample { t, h })
}

/// One side's buckets as sorted native `(index, count)` pairs, `2^scale_down` OTLP buckets
/// merged into each; empty buckets are left out.
fn native_buckets(
    buckets: Option<&exponential_histogram_data_point::Buckets>,
    scale_down: u32,
) -> Result<Vec<(i32, f64)>, String> {
    let Some(buckets) = buckets else { return Ok(Vec::new()) };
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.bucket_counts.len());
    for (i, &count) in buckets.bucket_counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let otlp_idx = i64::from(buckets.offset) + i as i64;
        // Shifting an i64 by 63 already leaves only its sign.
        let idx = i32::try_from((otlp_idx >> scale_down.min(63)) + 1)
            .map_err(|_| format!("exponential histogram bucket index {otlp_idx} is out of range"))?;
        match out.last_mut() {
            Some(last) if last.0 == idx => last.1 += count as f64,
            _ => out.push((idx, count as f64)),
        }
    }
    Ok(out)
}

/// Summary series: `_sum`, `_count`, and one series per quantile.
fn add_summary_point(b: &mut Builder, ctx: &Context, family: &str, p: &SummaryDataPoint) -> Result<(), String> {
    let t = ns_to_ms(p.time_unix_nano);
    // `_sum` and `_count` are running totals since the point's start; quantiles are not.
    let start = ns_to_ms(p.start_time_unix_nano);
    let labels = ctx.labels(&p.attributes, &[(METRIC_NAME, &format!("{family}_sum"))])?;
    let i = b.push(labels, t, point_value(p.flags, p.sum));
    b.push_start(i, t, start);
    let labels = ctx.labels(&p.attributes, &[(METRIC_NAME, &format!("{family}_count"))])?;
    let i = b.push(labels, t, point_value(p.flags, p.count as f64));
    b.push_start(i, t, start);
    for q in &p.quantile_values {
        let quantile = format_float(q.quantile);
        let labels = ctx.labels(&p.attributes, &[(METRIC_NAME, family), ("quantile", &quantile)])?;
        b.push(labels, t, point_value(p.flags, q.value));
    }
    Ok(())
}

/// `target_info{job, instance, <other resource attributes>} 1`, only when the resource has
/// attributes beyond the identifying ones and at least job or instance is known.
fn add_target_info(
    b: &mut Builder,
    ctx: &Context,
    resource: &[KeyValue],
    earliest: Timestamp,
    latest: Timestamp,
) -> Result<(), String> {
    let identifying = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];
    let non_identifying = resource.iter().filter(|kv| !identifying.contains(&kv.key.as_str()));
    if non_identifying.clone().next().is_none() {
        return Ok(());
    }
    let attributes: Vec<KeyValue> = if ctx.opts.keep_identifying_resource_attributes {
        resource.to_vec()
    } else {
        non_identifying.cloned().collect()
    };
    // Promoted attributes are not repeated on target_info, as in Prometheus.
    let info_ctx = Context {
        opts: ctx.opts,
        resource_labels: ctx.resource_labels.iter().filter(|(n, _)| n == "job" || n == "instance").cloned().collect(),
    };
    if info_ctx.resource_labels.is_empty() {
        return Ok(());
    }
    let labels = info_ctx.labels(&attributes, &[(METRIC_NAME, TARGET_INFO)])?;
    let i = b.index_of(labels);
    let series = &mut b.series[i];
    let start = earliest.max(latest - TARGET_INFO_INTERVAL_MS * MAX_TARGET_INFO_SAMPLES);
    let mut t = start;
    while t < latest {
        series.samples.push(Sample { t, v: 1.0 });
        t += TARGET_INFO_INTERVAL_MS;
    }
    if series.samples.last().is_none_or(|s| s.t < latest) {
        series.samples.push(Sample { t: latest, v: 1.0 });
    }
    Ok(())
}
