//! OTLP/JSON for metrics, decoded into the same prost messages as OTLP/protobuf.
//!
//! `opentelemetry-proto`'s serde derives do not follow the OTLP/JSON encoding for metrics
//! (64-bit counts and bucket counts arrive as strings, exemplar values are flattened oneofs,
//! summary and exponential histogram fields lack defaults), so this module maps the JSON by hand,
//! as the protobuf JSON mapping and the OTLP spec require:
//! - keys in lowerCamelCase, the original snake_case names accepted too; unknown keys ignored;
//! - 64-bit integers as decimal strings or numbers; doubles as numbers or "NaN"/"Infinity"/"-Infinity";
//! - enums as integers or their names;
//! - `traceId`/`spanId` as hex (the OTLP exception), other bytes as base64;
//! - `null` means absent.

use base64::Engine;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point, metric, number_data_point, summary_data_point, Exemplar,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Map, Value};

use super::WireError;

type Obj = Map<String, Value>;

/// A decoding failure and where it happened, collected while unwinding.
struct JsonError {
    /// Path segments, innermost first.
    path: Vec<String>,
    message: String,
}

impl JsonError {
    fn new(message: impl Into<String>) -> JsonError {
        JsonError { path: Vec::new(), message: message.into() }
    }

    fn at(mut self, segment: impl Into<String>) -> JsonError {
        self.path.push(segment.into());
        self
    }

    fn into_wire(self) -> WireError {
        let mut path = String::new();
        for seg in self.path.iter().rev() {
            if seg.starts_with('(') {
                path.push(' ');
            } else if !path.is_empty() && !seg.starts_with('[') {
                path.push('.');
            }
            path.push_str(seg);
        }
        if path.is_empty() {
            WireError::OtlpJson(self.message)
        } else {
            WireError::OtlpJson(format!("at {path}: {}", self.message))
        }
    }
}

type Result<T> = std::result::Result<T, JsonError>;

pub(crate) fn decode(body: &[u8]) -> std::result::Result<ExportMetricsServiceRequest, WireError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WireError::OtlpJson(e.to_string()))?;
    let root = as_object(&value).map_err(JsonError::into_wire)?;
    let resource_metrics = list(root, "resourceMetrics", resource_metrics).map_err(JsonError::into_wire)?;
    Ok(ExportMetricsServiceRequest { resource_metrics })
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_object(v: &Value) -> Result<&Obj> {
    v.as_object().ok_or_else(|| JsonError::new(format!("expected an object, got {}", describe(v))))
}

/// The value under `camel` (or its snake_case spelling); `null` counts as absent.
fn get<'a>(o: &'a Obj, camel: &str) -> Option<&'a Value> {
    let v = match o.get(camel) {
        Some(v) => Some(v),
        None if camel.bytes().any(|b| b.is_ascii_uppercase()) => o.get(&snake_case(camel)),
        None => None,
    };
    v.filter(|v| !v.is_null())
}

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn list<T>(o: &Obj, key: &str, item: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>> {
    let Some(v) = get(o, key) else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| JsonError::new(format!("expected an array, got {}", describe(v))).at(key))?;
    arr.iter().enumerate().map(|(i, x)| item(x).map_err(|e| e.at(format!("[{i}]")).at(key))).collect()
}

fn field<T: Default>(o: &Obj, key: &str, parse: impl Fn(&Value) -> Result<T>) -> Result<T> {
    match get(o, key) {
        Some(v) => parse(v).map_err(|e| e.at(key)),
        None => Ok(T::default()),
    }
}

fn opt_field<T>(o: &Obj, key: &str, parse: impl Fn(&Value) -> Result<T>) -> Result<Option<T>> {
    get(o, key).map(|v| parse(v).map_err(|e| e.at(key))).transpose()
}

fn string(v: &Value) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| JsonError::new(format!("expected a string, got {}", describe(v))))
}

fn boolean(v: &Value) -> Result<bool> {
    v.as_bool().ok_or_else(|| JsonError::new(format!("expected true or false, got {}", describe(v))))
}

fn u64_value(v: &Value) -> Result<u64> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        JsonError::new(format!("expected an unsigned 64-bit integer (a number or a decimal string), got {v}"))
    })
}

fn i64_value(v: &Value) -> Result<i64> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| JsonError::new(format!("expected a 64-bit integer (a number or a decimal string), got {v}")))
}

fn u32_value(v: &Value) -> Result<u32> {
    u64_value(v).and_then(|n| u32::try_from(n).map_err(|_| JsonError::new(format!("{n} does not fit in 32 bits"))))
}

fn i32_value(v: &Value) -> Result<i32> {
    i64_value(v).and_then(|n| i32::try_from(n).map_err(|_| JsonError::new(format!("{n} does not fit in 32 bits"))))
}

fn f64_value(v: &Value) -> Result<f64> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        JsonError::new(format!("expected a double (a number, \"NaN\", \"Infinity\" or \"-Infinity\"), got {v}"))
    })
}

fn hex_bytes(v: &Value) -> Result<Vec<u8>> {
    let s = v.as_str().ok_or_else(|| JsonError::new(format!("expected a hex string, got {}", describe(v))))?;
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bad =
        || JsonError::new(format!("expected a hex string (OTLP/JSON encodes trace and span ids in hex), got {s:?}"));
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(bad()),
        })
        .collect()
}

fn base64_bytes(v: &Value) -> Result<Vec<u8>> {
    let s = v.as_str().ok_or_else(|| JsonError::new(format!("expected a base64 string, got {}", describe(v))))?;
    let engines = [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE];
    engines
        .iter()
        .find_map(|e| e.decode(s).ok())
        .or_else(|| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim_end_matches('=')).ok())
        .ok_or_else(|| JsonError::new(format!("expected base64, got {s:?}")))
}

/// An enum given as its number or its name.
fn enumeration(v: &Value, names: &[&str]) -> Result<i32> {
    match v {
        Value::String(s) => match names.iter().position(|n| n == s) {
            Some(i) => Ok(i as i32),
            None => Err(JsonError::new(format!("unknown value {s:?}; expected one of {names:?} or a number"))),
        },
        _ => i32_value(v),
    }
}

const TEMPORALITIES: &[&str] =
    &["AGGREGATION_TEMPORALITY_UNSPECIFIED", "AGGREGATION_TEMPORALITY_DELTA", "AGGREGATION_TEMPORALITY_CUMULATIVE"];

fn resource_metrics(v: &Value) -> Result<ResourceMetrics> {
    let o = as_object(v)?;
    Ok(ResourceMetrics {
        resource: opt_field(o, "resource", resource)?,
        scope_metrics: list(o, "scopeMetrics", scope_metrics)?,
        schema_url: field(o, "schemaUrl", string)?,
    })
}

fn resource(v: &Value) -> Result<Resource> {
    let o = as_object(v)?;
    Ok(Resource {
        attributes: list(o, "attributes", key_value)?,
        dropped_attributes_count: field(o, "droppedAttributesCount", u32_value)?,
        entity_refs: list(o, "entityRefs", entity_ref)?,
    })
}

fn entity_ref(v: &Value) -> Result<EntityRef> {
    let o = as_object(v)?;
    Ok(EntityRef {
        schema_url: field(o, "schemaUrl", string)?,
        r#type: field(o, "type", string)?,
        id_keys: list(o, "idKeys", string)?,
        description_keys: list(o, "descriptionKeys", string)?,
    })
}

fn scope_metrics(v: &Value) -> Result<ScopeMetrics> {
    let o = as_object(v)?;
    Ok(ScopeMetrics {
        scope: opt_field(o, "scope", scope)?,
        metrics: list(o, "metrics", metric)?,
        schema_url: field(o, "schemaUrl", string)?,
    })
}

fn scope(v: &Value) -> Result<InstrumentationScope> {
    let o = as_object(v)?;
    Ok(InstrumentationScope {
        name: field(o, "name", string)?,
        version: field(o, "version", string)?,
        attributes: list(o, "attributes", key_value)?,
        dropped_attributes_count: field(o, "droppedAttributesCount", u32_value)?,
    })
}

fn key_value(v: &Value) -> Result<KeyValue> {
    let o = as_object(v)?;
    Ok(KeyValue { key: field(o, "key", string)?, value: opt_field(o, "value", any_value)? })
}

fn any_value(v: &Value) -> Result<AnyValue> {
    let o = as_object(v)?;
    let one = |key: &str, parse: &dyn Fn(&Value) -> Result<any_value::Value>| opt_field(o, key, parse);
    let value = one("stringValue", &|v| string(v).map(any_value::Value::StringValue))?
        .or(one("boolValue", &|v| boolean(v).map(any_value::Value::BoolValue))?)
        .or(one("intValue", &|v| i64_value(v).map(any_value::Value::IntValue))?)
        .or(one("doubleValue", &|v| f64_value(v).map(any_value::Value::DoubleValue))?)
        .or(one("arrayValue", &|v| {
            let o = as_object(v)?;
            Ok(any_value::Value::ArrayValue(ArrayValue { values: list(o, "values", any_value)? }))
        })?)
        .or(one("kvlistValue", &|v| {
            let o = as_object(v)?;
            Ok(any_value::Value::KvlistValue(KeyValueList { values: list(o, "values", key_value)? }))
        })?)
        .or(one("bytesValue", &|v| base64_bytes(v).map(any_value::Value::BytesValue))?);
    Ok(AnyValue { value })
}

fn metric(v: &Value) -> Result<Metric> {
    let o = as_object(v)?;
    let name: String = field(o, "name", string)?;
    let body = || -> Result<Metric> {
        let data = if let Some(g) = opt_field(o, "gauge", gauge)? {
            Some(metric::Data::Gauge(g))
        } else if let Some(s) = opt_field(o, "sum", sum)? {
            Some(metric::Data::Sum(s))
        } else if let Some(h) = opt_field(o, "histogram", histogram)? {
            Some(metric::Data::Histogram(h))
        } else if let Some(h) = opt_field(o, "exponentialHistogram", exponential_histogram)? {
            Some(metric::Data::ExponentialHistogram(h))
        } else {
            opt_field(o, "summary", summary)?.map(metric::Data::Summary)
        };
        Ok(Metric {
            name: name.clone(),
            description: field(o, "description", string)?,
            unit: field(o, "unit", string)?,
            metadata: list(o, "metadata", key_value)?,
            data,
        })
    };
    body().map_err(|e| if name.is_empty() { e } else { e.at(format!("(metric {name:?})")) })
}

fn gauge(v: &Value) -> Result<Gauge> {
    let o = as_object(v)?;
    Ok(Gauge { data_points: list(o, "dataPoints", number_point)? })
}

fn sum(v: &Value) -> Result<Sum> {
    let o = as_object(v)?;
    Ok(Sum {
        data_points: list(o, "dataPoints", number_point)?,
        aggregation_temporality: field(o, "aggregationTemporality", |v| enumeration(v, TEMPORALITIES))?,
        is_monotonic: field(o, "isMonotonic", boolean)?,
    })
}

fn histogram(v: &Value) -> Result<Histogram> {
    let o = as_object(v)?;
    Ok(Histogram {
        data_points: list(o, "dataPoints", histogram_point)?,
        aggregation_temporality: field(o, "aggregationTemporality", |v| enumeration(v, TEMPORALITIES))?,
    })
}

fn exponential_histogram(v: &Value) -> Result<ExponentialHistogram> {
    let o = as_object(v)?;
    Ok(ExponentialHistogram {
        data_points: list(o, "dataPoints", exponential_histogram_point)?,
        aggregation_temporality: field(o, "aggregationTemporality", |v| enumeration(v, TEMPORALITIES))?,
    })
}

fn summary(v: &Value) -> Result<Summary> {
    let o = as_object(v)?;
    Ok(Summary { data_points: list(o, "dataPoints", summary_point)? })
}

fn number_point(v: &Value) -> Result<NumberDataPoint> {
    let o = as_object(v)?;
    let value = match opt_field(o, "asDouble", f64_value)? {
        Some(d) => Some(number_data_point::Value::AsDouble(d)),
        None => opt_field(o, "asInt", i64_value)?.map(number_data_point::Value::AsInt),
    };
    Ok(NumberDataPoint {
        attributes: list(o, "attributes", key_value)?,
        start_time_unix_nano: field(o, "startTimeUnixNano", u64_value)?,
        time_unix_nano: field(o, "timeUnixNano", u64_value)?,
        exemplars: list(o, "exemplars", exemplar)?,
        flags: field(o, "flags", u32_value)?,
        value,
    })
}

fn histogram_point(v: &Value) -> Result<HistogramDataPoint> {
    let o = as_object(v)?;
    Ok(HistogramDataPoint {
        attributes: list(o, "attributes", key_value)?,
        start_time_unix_nano: field(o, "startTimeUnixNano", u64_value)?,
        time_unix_nano: field(o, "timeUnixNano", u64_value)?,
        count: field(o, "count", u64_value)?,
        sum: opt_field(o, "sum", f64_value)?,
        bucket_counts: list(o, "bucketCounts", u64_value)?,
        explicit_bounds: list(o, "explicitBounds", f64_value)?,
        exemplars: list(o, "exemplars", exemplar)?,
        flags: field(o, "flags", u32_value)?,
        min: opt_field(o, "min", f64_value)?,
        max: opt_field(o, "max", f64_value)?,
    })
}

fn buckets(v: &Value) -> Result<exponential_histogram_data_point::Buckets> {
    let o = as_object(v)?;
    Ok(exponential_histogram_data_point::Buckets {
        offset: field(o, "offset", i32_value)?,
        bucket_counts: list(o, "bucketCounts", u64_value)?,
    })
}

fn exponential_histogram_point(v: &Value) -> Result<ExponentialHistogramDataPoint> {
    let o = as_object(v)?;
    Ok(ExponentialHistogramDataPoint {
        attributes: list(o, "attributes", key_value)?,
        start_time_unix_nano: field(o, "startTimeUnixNano", u64_value)?,
        time_unix_nano: field(o, "timeUnixNano", u64_value)?,
        count: field(o, "count", u64_value)?,
        sum: opt_field(o, "sum", f64_value)?,
        scale: field(o, "scale", i32_value)?,
        zero_count: field(o, "zeroCount", u64_value)?,
        positive: opt_field(o, "positive", buckets)?,
        negative: opt_field(o, "negative", buckets)?,
        flags: field(o, "flags", u32_value)?,
        exemplars: list(o, "exemplars", exemplar)?,
        min: opt_field(o, "min", f64_value)?,
        max: opt_field(o, "max", f64_value)?,
        zero_threshold: field(o, "zeroThreshold", f64_value)?,
    })
}

fn summary_point(v: &Value) -> Result<SummaryDataPoint> {
    let o = as_object(v)?;
    Ok(SummaryDataPoint {
        attributes: list(o, "attributes", key_value)?,
        start_time_unix_nano: field(o, "startTimeUnixNano", u64_value)?,
        time_unix_nano: field(o, "timeUnixNano", u64_value)?,
        count: field(o, "count", u64_value)?,
        sum: field(o, "sum", f64_value)?,
        quantile_values: list(o, "quantileValues", |v| {
            let o = as_object(v)?;
            Ok(summary_data_point::ValueAtQuantile {
                quantile: field(o, "quantile", f64_value)?,
                value: field(o, "value", f64_value)?,
            })
        })?,
        flags: field(o, "flags", u32_value)?,
    })
}

fn exemplar(v: &Value) -> Result<Exemplar> {
    let o = as_object(v)?;
    let value = match opt_field(o, "asDouble", f64_value)? {
        Some(d) => Some(exemplar::Value::AsDouble(d)),
        None => opt_field(o, "asInt", i64_value)?.map(exemplar::Value::AsInt),
    };
    Ok(Exemplar {
        filtered_attributes: list(o, "filteredAttributes", key_value)?,
        time_unix_nano: field(o, "timeUnixNano", u64_value)?,
        span_id: field(o, "spanId", hex_bytes)?,
        trace_id: field(o, "traceId", hex_bytes)?,
        value,
    })
}
