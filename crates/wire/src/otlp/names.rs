//! Prometheus's OTLP naming rules (`github.com/prometheus/otlptranslator`: `MetricNamer`,
//! `LabelNamer`, the UCUM unit maps) for the legacy name character set Osprey stores.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};

/// How OTLP metric names become Prometheus names; both escape to the legacy character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TranslationStrategy {
    /// Prometheus's default: invalid characters become `_`, and unit (`_seconds`,
    /// `_bytes_per_second`), `_total` (monotonic sums) and `_ratio` (unit `1` gauges) suffixes
    /// are added.
    #[default]
    UnderscoreEscapingWithSuffixes,
    /// Invalid characters become `_`; no suffixes are added.
    UnderscoreEscapingWithoutSuffixes,
}

/// The OTLP metric kinds that naming distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    Summary,
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// UCUM main units to Prometheus base-unit words.
fn main_unit(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// UCUM "per" units (after the `/`) to singular words.
fn per_unit(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// `buildUnitSuffixes`: the main and `per_` suffixes of a unit; annotations in braces
/// (`{requests}`) carry no unit and yield nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let usable = |u: &str| !u.is_empty() && !u.contains(['{', '}']);
    let main = main.trim();
    let main_suffix = if usable(main) { main_unit(main).to_string() } else { String::new() };
    let per_suffix = match per.map(str::trim) {
        Some(p) if usable(p) => format!("per_{}", per_unit(p)),
        _ => String::new(),
    };
    (main_suffix, per_suffix)
}

/// `cleanUpUnit`: invalid characters to `_`, runs of `_` collapsed, one leading `_` dropped.
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// The Prometheus metric family name for an OTLP metric, or why there is none.
pub(crate) fn metric_name(
    name: &str,
    unit: &str,
    kind: NameKind,
    strategy: TranslationStrategy,
) -> Result<String, String> {
    let mut normalized = match strategy {
        TranslationStrategy::UnderscoreEscapingWithSuffixes => {
            // Every character outside [a-zA-Z0-9:], underscores included, separates words.
            let mut tokens: Vec<&str> = name.split(|c: char| !is_metric_char(c)).filter(|t| !t.is_empty()).collect();
            let (main, per) = unit_suffixes(unit);
            let (mut main, per) = (clean_up_unit(&main), clean_up_unit(&per));
            // `addUnitTokens`: a suffix already among the tokens is not repeated.
            if tokens.contains(&main.as_str()) {
                main.clear();
            }
            let per = if per == "per_" { "" } else { per.strip_suffix('_').unwrap_or(&per) };
            let per = if tokens.contains(&per) { "" } else { per };
            if !per.is_empty() {
                main = main.strip_suffix('_').unwrap_or(&main).to_string();
            }
            if !main.is_empty() {
                tokens.push(&main);
            }
            if !per.is_empty() {
                tokens.push(per);
            }
            if kind == NameKind::MonotonicCounter {
                tokens.retain(|t| *t != "total");
                tokens.push("total");
            }
            if unit == "1" && kind == NameKind::Gauge {
                tokens.retain(|t| *t != "ratio");
                tokens.push("ratio");
            }
            tokens.join("_")
        }
        // Here underscores are kept as they are rather than collapsed, as in Prometheus.
        TranslationStrategy::UnderscoreEscapingWithoutSuffixes => {
            let valid = |c: char| is_metric_char(c) || c == '_';
            name.split(|c: char| !valid(c)).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("_")
        }
    };
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert(0, '_');
    }
    if normalized.is_empty() {
        return Err(format!("its name {name:?} has no character usable in a Prometheus metric name"));
    }
    Ok(normalized)
}

/// `LabelNamer.Build`: invalid characters to `_`; a leading digit gets `key_`, a single
/// leading `_` gets `key`; names of underscores only are refused.
pub(crate) fn label_name(attribute: &str) -> Result<String, String> {
    if attribute.is_empty() {
        return Err("an attribute has an empty key".to_string());
    }
    let mut name: String = attribute.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    if name != attribute && name.bytes().all(|b| b == b'_') {
        return Err(format!("attribute {attribute:?} becomes the invalid label name {name:?}"));
    }
    Ok(name)
}

/// `pcommon.Value.AsString`: how an attribute value becomes a label value.
pub(crate) fn value_string(v: Option<&AnyValue>) -> String {
    let mut out = String::new();
    if let Some(v) = v.and_then(|v| v.value.as_ref()) {
        match v {
            any_value::Value::StringValue(s) => out.push_str(s),
            _ => write_value(v, false, &mut out),
        }
    }
    out
}

/// Renders a value as Go's pdata does: scalars plainly, arrays and maps as JSON (map keys in
/// the order given, as pdata keeps them), strings quoted only inside JSON.
fn write_value(v: &any_value::Value, in_json: bool, out: &mut String) {
    use base64::Engine;
    match v {
        any_value::Value::StringValue(s) if in_json => out.push_str(&json_string(s)),
        any_value::Value::StringValue(s) => out.push_str(s),
        any_value::Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => out.push_str(&i.to_string()),
        any_value::Value::DoubleValue(d) => out.push_str(&go_json_float(*d)),
        any_value::Value::BytesValue(b) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(b);
            if in_json {
                out.push_str(&json_string(&encoded));
            } else {
                out.push_str(&encoded);
            }
        }
        any_value::Value::ArrayValue(a) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_item(item, out);
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(kv) => {
            out.push('{');
            for (i, item) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(&item.key));
                out.push(':');
                match &item.value {
                    Some(v) => write_json_item(v, out),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

fn write_json_item(v: &AnyValue, out: &mut String) {
    match &v.value {
        Some(v) => write_value(v, true, out),
        None => out.push_str("null"),
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A double as Go's pdata prints it: ES6 number formatting (plain decimal between 1e-6 and
/// 1e21, otherwise exponent form like `1e+21`), and the JSON marshaller's complaint for
/// non-finite values.
fn go_json_float(d: f64) -> String {
    if !d.is_finite() {
        let g = if d.is_nan() {
            "NaN"
        } else if d > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return format!("json: unsupported value: {g}");
    }
    let abs = d.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{d}");
    }
    let e = format!("{d:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => e,
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` prints it, for `le` and `quantile`.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, unit: &str, kind: NameKind) -> String {
        metric_name(n, unit, kind, TranslationStrategy::UnderscoreEscapingWithSuffixes).unwrap()
    }

    #[test]
    fn builds_metric_names_as_prometheus_does() {
        // Cases from otlptranslator's metric_namer_test.go.
        assert_eq!(name("http.server.duration", "s", NameKind::Histogram), "http_server_duration_seconds");
        assert_eq!(name("requests.count", "1", NameKind::MonotonicCounter), "requests_count_total");
        assert_eq!(name("memory.usage", "By", NameKind::Gauge), "memory_usage_bytes");
        assert_eq!(name("system.cpu.utilization", "1", NameKind::Gauge), "system_cpu_utilization_ratio");
        assert_eq!(name("network.io", "By/s", NameKind::Gauge), "network_io_bytes_per_second");
        assert_eq!(name("requests", "{requests}", NameKind::MonotonicCounter), "requests_total");
        assert_eq!(name("foo_total_bar", "", NameKind::MonotonicCounter), "foo_bar_total");
        assert_eq!(name("duration_seconds", "s", NameKind::Gauge), "duration_seconds");
        assert_eq!(name("2xx.count", "", NameKind::Gauge), "_2xx_count");
        assert_eq!(name("a..b__c", "", NameKind::NonMonotonicCounter), "a_b_c");
        assert_eq!(name("rate", "1/s", NameKind::Gauge), "rate_per_second");
        assert_eq!(name("weird", "m/s/x", NameKind::Gauge), "weird_meters_per_s_x");
        assert_eq!(
            metric_name(
                "http.requests",
                "s",
                NameKind::MonotonicCounter,
                TranslationStrategy::UnderscoreEscapingWithoutSuffixes
            )
            .unwrap(),
            "http_requests"
        );
        assert_eq!(
            metric_name("a__b.c", "", NameKind::Gauge, TranslationStrategy::UnderscoreEscapingWithoutSuffixes).unwrap(),
            "a__b_c"
        );
        assert!(metric_name("...", "", NameKind::Gauge, TranslationStrategy::UnderscoreEscapingWithSuffixes).is_err());
    }

    #[test]
    fn builds_label_names_as_prometheus_does() {
        assert_eq!(label_name("http.method").unwrap(), "http_method");
        assert_eq!(label_name("123invalid").unwrap(), "key_123invalid");
        assert_eq!(label_name("_private").unwrap(), "key_private");
        assert_eq!(label_name("__reserved__").unwrap(), "__reserved__");
        assert_eq!(label_name("héllo").unwrap(), "h_llo");
        assert!(label_name("..").is_err());
        assert!(label_name("").is_err());
    }

    #[test]
    fn renders_values_as_pdata_does() {
        let v = |x: any_value::Value| value_string(Some(&AnyValue { value: Some(x) }));
        assert_eq!(v(any_value::Value::IntValue(-3)), "-3");
        assert_eq!(v(any_value::Value::DoubleValue(1.0)), "1");
        assert_eq!(v(any_value::Value::DoubleValue(1e21)), "1e+21");
        assert_eq!(v(any_value::Value::DoubleValue(1.5e-7)), "1.5e-7");
        assert_eq!(v(any_value::Value::BoolValue(true)), "true");
        assert_eq!(v(any_value::Value::BytesValue(b"hi".to_vec())), "aGk=");
        let arr = any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: vec![
                AnyValue { value: Some(any_value::Value::StringValue("a\"b".into())) },
                AnyValue { value: Some(any_value::Value::IntValue(2)) },
            ],
        });
        assert_eq!(v(arr), r#"["a\"b",2]"#);
        assert_eq!(value_string(None), "");
        assert_eq!(format_float(0.005), "0.005");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
    }
}
