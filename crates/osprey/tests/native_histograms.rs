//! Native histograms end to end through the real binary: remote_write 1.0 and 2.0 bodies from
//! our encoder, and the OpenTelemetry Python SDK's exponential histograms over OTLP/HTTP,
//! read back through `/api/v1/query` in Prometheus's JSON `histogram` shape and through
//! `histogram_count`, `histogram_sum` and `histogram_quantile`.

mod common;

use std::process::Command;

use common::*;
use osprey_model::{
    CounterResetHint, Exemplar, FloatHistogram, HistogramSample, Labels, Sample, TimeSeries, WriteRequest,
};
use osprey_wire::remote_write;
use serde_json::{json, Value};

/// Schema 0 (bucket `i` is `(2^(i-1), 2^i]`): 1 in the zero bucket, 2 in (0.5, 1], 3 in (1, 2],
/// 4 in (2, 4].
fn latency_histogram(scale: f64) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: CounterResetHint::NotCounterReset,
        schema: 0,
        zero_threshold: 0.001,
        zero_count: scale,
        count: 10.0 * scale,
        sum: 20.0 * scale,
        positive: vec![(0, 2.0 * scale), (1, 3.0 * scale), (2, 4.0 * scale)],
        negative: vec![],
        custom_values: vec![],
    }
}

/// Two histogram samples of `name` a minute apart ending at `t`, the second twice the first, and
/// one float series with an exemplar.
fn request(name: &str, t: i64) -> WriteRequest {
    WriteRequest {
        series: vec![
            TimeSeries {
                labels: Labels::from_pairs([("__name__", name), ("job", "api")]),
                histograms: vec![
                    HistogramSample { t: t - 60_000, h: latency_histogram(1.0) },
                    HistogramSample { t, h: latency_histogram(2.0) },
                ],
                ..TimeSeries::default()
            },
            TimeSeries {
                labels: Labels::from_pairs([("__name__", format!("{name}_floats")), ("job", "api".to_string())]),
                samples: vec![Sample::new(t, 7.0)],
                exemplars: vec![Exemplar { labels: Labels::from_pairs([("trace_id", "abc")]), t, v: 7.0 }],
                histograms: vec![],
                start_timestamps: Vec::new(),
            },
        ],
        metadata: vec![],
    }
}

fn secs(t: i64) -> String {
    format!("{:.3}", t as f64 / 1000.0)
}

/// The latest histogram of `name` at `t` must be the second sample, in Prometheus's shape.
fn assert_histogram_round_trip(osprey: &Osprey, name: &str, t: i64) {
    let result = osprey.query(None, name, &secs(t));
    assert_eq!(result.len(), 1, "{result:?}");
    assert_eq!(result[0]["metric"], json!({"__name__": name, "job": "api"}));
    assert!(result[0].get("value").is_none(), "{result:?}");
    assert_eq!(result[0]["histogram"][0].as_f64(), Some(t as f64 / 1000.0));
    assert_eq!(
        result[0]["histogram"][1],
        json!({
            "count": "20",
            "sum": "40",
            "buckets": [
                [3, "-0.001", "0.001", "2"],
                [0, "0.5", "1", "4"],
                [0, "1", "2", "6"],
                [0, "2", "4", "8"],
            ],
        })
    );
    let scalar = |q: &str| -> String {
        let r = osprey.query(None, q, &secs(t));
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r[0]["value"][1].as_str().unwrap().to_string()
    };
    assert_eq!(scalar(&format!("histogram_count({name})")), "20");
    assert_eq!(scalar(&format!("histogram_sum({name})")), "40");
    // Over the minute the histogram doubled: +10 observations, +20 of sum.
    assert_eq!(scalar(&format!("histogram_count(increase({name}[2m]))")).parse::<f64>().map(|v| v > 0.0), Ok(true));
    assert_eq!(scalar(&format!("histogram_count({name} - {name} offset 1m)")), "10");
}

#[test]
fn remote_write_1_0_native_histograms_are_queryable() {
    let osprey = Osprey::start(&[]);
    let t = now_ms() - 30_000;
    let resp = osprey.remote_write(None, &request("rpc_latency_seconds", t));
    assert_eq!(resp.status().as_u16(), 204, "{}", resp.text().unwrap_or_default());
    assert_histogram_round_trip(&osprey, "rpc_latency_seconds", t);

    // Osprey's own metrics count them apart from float samples.
    let n = request("rpc_latency_seconds", t).histogram_count();
    let (_, metrics) = osprey.get(None, "/metrics", &[]);
    let metrics = metrics.as_str().unwrap_or_default();
    for line in [
        format!("osprey_ingest_histograms_total{{protocol=\"remote_write\"}} {n}"),
        format!("osprey_tsdb_histograms_appended_total {n}"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from:\n{metrics}");
    }

    // An invalid histogram is refused with a 400 that names the series.
    let mut bad = request("bad_latency_seconds", t);
    bad.series[0].histograms[0].h.positive[0].1 = -1.0;
    let resp = osprey.remote_write(None, &bad);
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().unwrap();
    assert!(body.contains("bad_latency_seconds") && body.contains("negative count"), "{body}");
}

#[test]
fn remote_write_2_0_native_histograms_are_queryable_and_counted_in_headers() {
    let osprey = Osprey::start(&[]);
    let t = now_ms() - 30_000;
    let post = |content_type: &str, body: Vec<u8>| {
        client()
            .post(osprey.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", content_type)
            .header("X-Prometheus-Remote-Write-Version", "2.0.0")
            .body(body)
            .send()
            .unwrap()
    };
    let resp =
        post(remote_write::CONTENT_TYPE_V2, remote_write::encode_write_request_v2(&request("rpc_v2_seconds", t)));
    let header = |resp: &reqwest::blocking::Response, name: &str| {
        resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    };
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(header(&resp, "X-Prometheus-Remote-Write-Samples-Written").as_deref(), Some("1"));
    assert_eq!(header(&resp, "X-Prometheus-Remote-Write-Histograms-Written").as_deref(), Some("2"));
    assert_eq!(header(&resp, "X-Prometheus-Remote-Write-Exemplars-Written").as_deref(), Some("1"));
    assert_histogram_round_trip(&osprey, "rpc_v2_seconds", t);

    // A 1.0 body sent as 2.0 reads as an empty request (2.0 reserves 1.0's field numbers).
    let resp = post(remote_write::CONTENT_TYPE_V2, remote_write::encode_write_request(&request("v1_body", t)));
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(header(&resp, "X-Prometheus-Remote-Write-Samples-Written").as_deref(), Some("0"));
    assert!(osprey.query(None, "v1_body_floats", &secs(t)).is_empty());

    // A refused 2.0 request still says how much was written: nothing.
    let mut bad = request("bad_v2_seconds", t);
    bad.series[0].histograms[1].h.schema = 99;
    let resp = post(remote_write::CONTENT_TYPE_V2, remote_write::encode_write_request_v2(&bad));
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(header(&resp, "X-Prometheus-Remote-Write-Histograms-Written").as_deref(), Some("0"));
    assert!(resp.text().unwrap().contains("histogram schema 99 is invalid"));

    // Unknown messages and media types are 415, as in Prometheus.
    let resp = post("application/x-protobuf;proto=io.prometheus.write.v3.Request", vec![]);
    assert_eq!(resp.status().as_u16(), 415);
    assert!(resp.text().unwrap().contains("unknown remote write protobuf message"));
    let resp = post("application/json", vec![]);
    assert_eq!(resp.status().as_u16(), 415);
}

fn value_at(osprey: &Osprey, q: &str) -> f64 {
    let r = osprey.query(None, q, &secs(now_ms()));
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn assert_close(got: f64, want: f64, relative: f64, what: &str) {
    assert!((got - want).abs() <= want.abs() * relative, "{what}: got {got}, want {want} within {relative}");
}

#[test]
fn otel_sdk_exponential_histograms_become_native_histograms() {
    if !require_python("opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http") {
        return;
    }
    let osprey = Osprey::start(&[]);
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/otlp_exp_histogram_app.py");
    let status = Command::new("python3").arg(fixture).arg(osprey.url("/v1/metrics")).status().unwrap();
    assert!(status.success(), "OTLP export failed; log:\n{}", osprey.log());

    let rpc = r#"rpc_duration_seconds{job="rpc",instance="pod-3",method="get"}"#;
    let raw = osprey.query(None, rpc, &secs(now_ms()));
    assert_eq!(raw.len(), 1, "{raw:?}");
    let h: &Value = &raw[0]["histogram"][1];
    assert_eq!(h["count"], "100", "{h}");
    assert_eq!(h["sum"], "5050", "{h}");

    assert_eq!(value_at(&osprey, &format!("histogram_count({rpc})")), 100.0);
    assert_eq!(value_at(&osprey, &format!("histogram_sum({rpc})")), 5050.0);
    // Scale 4: buckets are 2^(1/16) (4.4%) wide, so estimates land within that of the truth.
    assert_close(value_at(&osprey, &format!("histogram_quantile(0.5, {rpc})")), 50.0, 0.045, "median of 1..100");
    assert_close(value_at(&osprey, &format!("histogram_quantile(0.9, {rpc})")), 90.0, 0.045, "p90 of 1..100");

    // Scale 10 merged down to schema 8: buckets 2^(1/256) (0.27%) wide.
    let cache = "cache_lookup_seconds";
    assert_eq!(value_at(&osprey, &format!("histogram_count({cache})")), 100.0);
    assert_close(value_at(&osprey, &format!("histogram_sum({cache})")), 104.95, 1e-9, "sum of 1.000..1.099");
    assert_close(value_at(&osprey, &format!("histogram_quantile(0.5, {cache})")), 1.0495, 0.003, "median");
    let (status, body) = osprey.get(None, "/api/v1/metadata", &[("metric", "rpc_duration_seconds")]);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["rpc_duration_seconds"][0]["type"], "histogram", "{body}");
}
