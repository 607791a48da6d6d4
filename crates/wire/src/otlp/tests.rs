use super::*;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, summary_data_point, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use osprey_model::{is_stale_nan, Labels, MetricMetadata, MetricType, TimeSeries, WriteRequest};
use proptest::prelude::*;

const T0_NS: u64 = 1_700_000_000_123_456_789;
const T0_MS: i64 = 1_700_000_000_123;
const CUMULATIVE: i32 = 2;
const DELTA: i32 = 1;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }) }
}

fn number(attrs: Vec<KeyValue>, v: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: T0_NS,
        start_time_unix_nano: T0_NS - 1,
        value: Some(v),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} help"),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource { attributes: resource, ..Default::default() }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: "lib".into(), version: "1.0".into(), ..Default::default() }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn service() -> Vec<KeyValue> {
    vec![kv("service.name", "api"), kv("service.namespace", "shop"), kv("service.instance.id", "pod-1")]
}

fn convert(req: &ExportMetricsServiceRequest) -> WriteRequest {
    metrics_to_write_request(req, &OtlpOptions::default()).unwrap()
}

/// Series as `labels => [(t, v)]` text, for compact assertions.
fn render(series: &[TimeSeries]) -> Vec<String> {
    series
        .iter()
        .map(|s| format!("{} => {:?}", s.labels, s.samples.iter().map(|x| (x.t, x.v)).collect::<Vec<_>>()))
        .collect()
}

fn find<'a>(req: &'a WriteRequest, name: &str) -> Vec<&'a TimeSeries> {
    req.series.iter().filter(|s| s.labels.metric_name() == Some(name)).collect()
}

#[test]
fn monotonic_cumulative_sum_becomes_a_counter_with_total() {
    let mut point = number(vec![kv("http.method", "GET"), kv("2xx", "yes")], number_data_point::Value::AsInt(42));
    point.exemplars = vec![Exemplar {
        filtered_attributes: vec![kv("user", "u1")],
        time_unix_nano: T0_NS,
        span_id: vec![0xab, 0xcd, 0, 0, 0, 0, 0, 1],
        trace_id: vec![0x01; 16],
        value: Some(exemplar::Value::AsDouble(0.5)),
    }];
    let sum = Sum { data_points: vec![point], aggregation_temporality: CUMULATIVE, is_monotonic: true };
    let got = convert(&request(service(), vec![metric("http.server.requests", "{request}", metric::Data::Sum(sum))]));
    assert_eq!(
        render(&find(&got, "http_server_requests_total").into_iter().cloned().collect::<Vec<_>>()),
        vec![format!(
            r#"{{__name__="http_server_requests_total", http_method="GET", instance="pod-1", job="shop/api", key_2xx="yes"}} => [({T0_MS}, 42.0)]"#
        )]
    );
    let s = find(&got, "http_server_requests_total")[0];
    assert_eq!(s.exemplars.len(), 1);
    assert_eq!(
        s.exemplars[0].labels,
        Labels::from_pairs([
            ("trace_id", "01010101010101010101010101010101"),
            ("span_id", "abcd000000000001"),
            ("user", "u1")
        ])
    );
    assert_eq!((s.exemplars[0].t, s.exemplars[0].v), (T0_MS, 0.5));
    assert_eq!(
        got.metadata,
        vec![MetricMetadata {
            metric_family_name: "http_server_requests_total".into(),
            metric_type: MetricType::Counter,
            help: "http.server.requests help".into(),
            unit: "{request}".into(),
        }]
    );
}

#[test]
fn gauges_and_non_monotonic_sums_become_gauges() {
    let gauge = Gauge { data_points: vec![number(vec![], number_data_point::Value::AsDouble(0.25))] };
    let updown = Sum {
        data_points: vec![number(vec![], number_data_point::Value::AsInt(-3))],
        aggregation_temporality: CUMULATIVE,
        is_monotonic: false,
    };
    let got = convert(&request(
        vec![kv("service.name", "api")],
        vec![
            metric("system.cpu.utilization", "1", metric::Data::Gauge(gauge)),
            metric("queue.size", "{item}", metric::Data::Sum(updown)),
        ],
    ));
    assert_eq!(
        render(&got.series),
        vec![
            format!(r#"{{__name__="system_cpu_utilization_ratio", job="api"}} => [({T0_MS}, 0.25)]"#),
            format!(r#"{{__name__="queue_size", job="api"}} => [({T0_MS}, -3.0)]"#),
        ]
    );
    assert_eq!(got.metadata[0].metric_type, MetricType::Gauge);
    assert_eq!(got.metadata[1].metric_type, MetricType::Gauge);
}

#[test]
fn histograms_become_cumulative_classic_buckets_ending_in_inf() {
    let point = HistogramDataPoint {
        attributes: vec![kv("route", "/a")],
        time_unix_nano: T0_NS,
        count: 10,
        sum: Some(4.5),
        bucket_counts: vec![2, 3, 4, 1],
        explicit_bounds: vec![0.1, 0.5, 1.0],
        exemplars: vec![Exemplar {
            time_unix_nano: T0_NS,
            trace_id: vec![0xff; 16],
            value: Some(exemplar::Value::AsDouble(0.3)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let h = Histogram { data_points: vec![point], aggregation_temporality: CUMULATIVE };
    let got = convert(&request(vec![], vec![metric("http.duration", "s", metric::Data::Histogram(h))]));
    assert_eq!(
        render(&got.series),
        vec![
            format!(r#"{{__name__="http_duration_seconds_sum", route="/a"}} => [({T0_MS}, 4.5)]"#),
            format!(r#"{{__name__="http_duration_seconds_count", route="/a"}} => [({T0_MS}, 10.0)]"#),
            format!(r#"{{__name__="http_duration_seconds_bucket", le="0.1", route="/a"}} => [({T0_MS}, 2.0)]"#),
            format!(r#"{{__name__="http_duration_seconds_bucket", le="0.5", route="/a"}} => [({T0_MS}, 5.0)]"#),
            format!(r#"{{__name__="http_duration_seconds_bucket", le="1", route="/a"}} => [({T0_MS}, 9.0)]"#),
            format!(r#"{{__name__="http_duration_seconds_bucket", le="+Inf", route="/a"}} => [({T0_MS}, 10.0)]"#),
        ]
    );
    // The exemplar (0.3) lands on the first bucket whose bound covers it: le="0.5".
    let with_exemplar: Vec<_> = got.series.iter().filter(|s| !s.exemplars.is_empty()).collect();
    assert_eq!(with_exemplar.len(), 1);
    assert_eq!(with_exemplar[0].labels.get("le"), Some("0.5"));
    assert_eq!(got.metadata[0].metric_type, MetricType::Histogram);
    assert_eq!(got.metadata[0].metric_family_name, "http_duration_seconds");
}

#[test]
fn histograms_without_sum_omit_the_sum_series() {
    let point = HistogramDataPoint { time_unix_nano: T0_NS, count: 3, bucket_counts: vec![3], ..Default::default() };
    let h = Histogram { data_points: vec![point], aggregation_temporality: CUMULATIVE };
    let got = convert(&request(vec![], vec![metric("jobs", "", metric::Data::Histogram(h))]));
    let names: Vec<_> = got.series.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(names, vec![r#"{__name__="jobs_count"}"#, r#"{__name__="jobs_bucket", le="+Inf"}"#]);
}

#[test]
fn summaries_become_quantile_sum_and_count_series() {
    let point = SummaryDataPoint {
        time_unix_nano: T0_NS,
        count: 7,
        sum: 12.5,
        quantile_values: vec![
            summary_data_point::ValueAtQuantile { quantile: 0.5, value: 1.5 },
            summary_data_point::ValueAtQuantile { quantile: 0.99, value: 3.0 },
        ],
        ..Default::default()
    };
    let got = convert(&request(
        vec![],
        vec![metric("rpc.latency", "ms", metric::Data::Summary(Summary { data_points: vec![point] }))],
    ));
    assert_eq!(
        render(&got.series),
        vec![
            format!(r#"{{__name__="rpc_latency_milliseconds_sum"}} => [({T0_MS}, 12.5)]"#),
            format!(r#"{{__name__="rpc_latency_milliseconds_count"}} => [({T0_MS}, 7.0)]"#),
            format!(r#"{{__name__="rpc_latency_milliseconds", quantile="0.5"}} => [({T0_MS}, 1.5)]"#),
            format!(r#"{{__name__="rpc_latency_milliseconds", quantile="0.99"}} => [({T0_MS}, 3.0)]"#),
        ]
    );
    assert_eq!(got.metadata[0].metric_type, MetricType::Summary);
}

#[test]
fn resource_attributes_become_job_instance_and_target_info() {
    let mut resource = service();
    resource.push(kv("host.name", "node-7"));
    resource.push(kv("cloud.region", "eu-west-1"));
    let gauge = Gauge {
        data_points: vec![
            number(vec![], number_data_point::Value::AsDouble(1.0)),
            NumberDataPoint {
                time_unix_nano: T0_NS + 600_000_000_000,
                ..number(vec![], number_data_point::Value::AsDouble(2.0))
            },
        ],
    };
    let got = convert(&request(resource, vec![metric("up", "", metric::Data::Gauge(gauge))]));
    let info = find(&got, "target_info");
    assert_eq!(info.len(), 1);
    assert_eq!(
        info[0].labels.to_string(),
        r#"{__name__="target_info", cloud_region="eu-west-1", host_name="node-7", instance="pod-1", job="shop/api"}"#
    );
    // One sample every 2.5 minutes from the earliest to the latest point (10 minutes apart).
    let times: Vec<i64> = info[0].samples.iter().map(|s| s.t).collect();
    assert_eq!(times, vec![T0_MS, T0_MS + 150_000, T0_MS + 300_000, T0_MS + 450_000, T0_MS + 600_000]);
    assert!(info[0].samples.iter().all(|s| s.v == 1.0));
    // Other series carry job and instance but not the other resource attributes.
    assert_eq!(find(&got, "up")[0].labels.to_string(), r#"{__name__="up", instance="pod-1", job="shop/api"}"#);

    let only_identifying = convert(&request(
        service(),
        vec![metric(
            "up",
            "",
            metric::Data::Gauge(Gauge { data_points: vec![number(vec![], number_data_point::Value::AsDouble(1.0))] }),
        )],
    ));
    assert!(find(&only_identifying, "target_info").is_empty());
    let opts = OtlpOptions {
        disable_target_info: true,
        promote_resource_attributes: vec!["host.name".into()],
        ..Default::default()
    };
    let mut resource = service();
    resource.push(kv("host.name", "node-7"));
    let gauge = Gauge { data_points: vec![number(vec![], number_data_point::Value::AsDouble(1.0))] };
    let promoted =
        metrics_to_write_request(&request(resource, vec![metric("up", "", metric::Data::Gauge(gauge))]), &opts)
            .unwrap();
    assert_eq!(
        render(&promoted.series),
        vec![format!(r#"{{__name__="up", host_name="node-7", instance="pod-1", job="shop/api"}} => [({T0_MS}, 1.0)]"#)]
    );
}

#[test]
fn colliding_attribute_keys_are_joined_and_no_recorded_value_is_stale() {
    let mut point = number(vec![kv("a_b", "2"), kv("a.b", "1")], number_data_point::Value::AsDouble(5.0));
    point.flags = 1;
    let got = convert(&request(vec![], vec![metric("g", "", metric::Data::Gauge(Gauge { data_points: vec![point] }))]));
    assert_eq!(got.series[0].labels.get("a_b"), Some("1;2"));
    assert!(is_stale_nan(got.series[0].samples[0].v));
}

#[test]
fn delta_exponential_histograms_are_refused_by_name() {
    let exp = ExponentialHistogram {
        data_points: vec![
            ExponentialHistogramDataPoint { time_unix_nano: T0_NS, count: 1, zero_count: 1, ..Default::default() },
            ExponentialHistogramDataPoint { time_unix_nano: T0_NS + 1, count: 2, zero_count: 2, ..Default::default() },
        ],
        aggregation_temporality: DELTA,
    };
    let ok = Gauge { data_points: vec![number(vec![], number_data_point::Value::AsDouble(1.0))] };
    let req = request(
        vec![],
        vec![metric("exp", "", metric::Data::ExponentialHistogram(exp)), metric("fine", "", metric::Data::Gauge(ok))],
    );
    let err = metrics_to_write_request(&req, &OtlpOptions::default()).unwrap_err().to_string();
    assert!(err.contains(r#"OTLP metric "exp""#) && err.contains("delta temporality"), "{err}");

    let partial = metrics_to_write_request_partial(&req, &OtlpOptions::default());
    assert_eq!(partial.rejected_data_points, 2);
    assert_eq!(render(&partial.request.series), vec![format!(r#"{{__name__="fine"}} => [({T0_MS}, 1.0)]"#)]);

    let response = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(
        export_response_protobuf(&partial).as_slice(),
    )
    .unwrap();
    let partial_success = response.partial_success.unwrap();
    assert_eq!(partial_success.rejected_data_points, 2);
    assert!(partial_success.error_message.contains("exp"));
    let json: serde_json::Value = serde_json::from_slice(&export_response_json(&partial)).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedDataPoints"], "2");
    let all_fine = metrics_to_write_request_partial(&request(vec![], vec![]), &OtlpOptions::default());
    assert_eq!(export_response_json(&all_fine), b"{}");
    assert!(export_response_protobuf(&all_fine).is_empty());
}

fn delta_sum(monotonic: bool, points: Vec<NumberDataPoint>) -> metric::Data {
    metric::Data::Sum(Sum { data_points: points, aggregation_temporality: DELTA, is_monotonic: monotonic })
}

/// The deltas as `stream: labels += value @ t` lines.
fn render_deltas(deltas: &[DeltaPoint]) -> Vec<String> {
    deltas
        .iter()
        .flat_map(|d| {
            d.series.iter().map(move |s| format!("{} += {} @ {}", s.labels, s.value, d.time_unix_nano - T0_NS))
        })
        .collect()
}

#[test]
fn delta_sums_are_handed_over_as_increments_with_cumulative_names() {
    let mut second = number(vec![kv("k", "v")], number_data_point::Value::AsDouble(2.5));
    second.time_unix_nano = T0_NS + 10;
    second.start_time_unix_nano = T0_NS;
    second.exemplars = vec![Exemplar {
        time_unix_nano: T0_NS,
        span_id: vec![1; 8],
        value: Some(exemplar::Value::AsInt(1)),
        ..Default::default()
    }];
    let req = request(
        service(),
        vec![
            metric(
                "requests",
                "",
                delta_sum(true, vec![number(vec![kv("k", "v")], number_data_point::Value::AsInt(3)), second]),
            ),
            metric("inflight", "", delta_sum(false, vec![number(vec![], number_data_point::Value::AsInt(-1))])),
        ],
    );
    let got = metrics_to_write_request_partial(&req, &OtlpOptions::default());
    assert_eq!(got.rejected_data_points, 0);
    assert!(find(&got.request, "requests_total").is_empty() && find(&got.request, "inflight").is_empty());
    assert_eq!(
        render_deltas(&got.deltas),
        vec![
            r#"{__name__="requests_total", instance="pod-1", job="shop/api", k="v"} += 3 @ 0"#,
            r#"{__name__="requests_total", instance="pod-1", job="shop/api", k="v"} += 2.5 @ 10"#,
            r#"{__name__="inflight", instance="pod-1", job="shop/api"} += -1 @ 0"#,
        ]
    );
    assert_eq!(got.deltas[1].start_time_unix_nano, T0_NS);
    assert_eq!(got.deltas[1].series[0].exemplars.len(), 1);
    assert_eq!(got.deltas[0].stream, got.deltas[1].stream);
    assert_ne!(got.deltas[0].stream, got.deltas[2].stream);
    let types: Vec<_> = got.request.metadata.iter().map(|m| (m.metric_family_name.as_str(), m.metric_type)).collect();
    assert_eq!(types, vec![("requests_total", MetricType::Counter), ("inflight", MetricType::Gauge)]);

    // The strict conversion has nowhere to keep running totals, so it refuses deltas.
    let err = metrics_to_write_request(&req, &OtlpOptions::default()).unwrap_err().to_string();
    assert!(err.contains("requests_total") && err.contains("delta temporality"), "{err}");
}

#[test]
fn stream_ids_follow_resource_scope_metric_and_attributes_but_not_their_order() {
    let id = |resource: Vec<KeyValue>, scope: &str, name: &str, attrs: Vec<KeyValue>| {
        let mut req = request(
            resource,
            vec![metric(name, "", delta_sum(true, vec![number(attrs, number_data_point::Value::AsInt(1))]))],
        );
        req.resource_metrics[0].scope_metrics[0].scope.as_mut().unwrap().name = scope.into();
        metrics_to_write_request_partial(&req, &OtlpOptions::default()).deltas[0].stream
    };
    let base = id(service(), "lib", "m", vec![kv("a", "1"), kv("b", "2")]);
    assert_eq!(base, id(service(), "lib", "m", vec![kv("b", "2"), kv("a", "1")]));
    let mut reordered = service();
    reordered.reverse();
    assert_eq!(base, id(reordered, "lib", "m", vec![kv("a", "1"), kv("b", "2")]));
    assert_ne!(base, id(service(), "other", "m", vec![kv("a", "1"), kv("b", "2")]));
    assert_ne!(base, id(service(), "lib", "n", vec![kv("a", "1"), kv("b", "2")]));
    assert_ne!(base, id(service(), "lib", "m", vec![kv("a", "1"), kv("b", "3")]));
    assert_ne!(base, id(vec![kv("service.name", "x")], "lib", "m", vec![kv("a", "1"), kv("b", "2")]));
}

#[test]
fn delta_histograms_are_handed_over_with_increments_cumulative_over_le() {
    let point = HistogramDataPoint {
        attributes: vec![kv("route", "/a")],
        time_unix_nano: T0_NS,
        count: 4,
        sum: Some(1.5),
        bucket_counts: vec![1, 2, 1],
        explicit_bounds: vec![0.1, 1.0],
        exemplars: vec![Exemplar {
            time_unix_nano: T0_NS,
            value: Some(exemplar::Value::AsDouble(0.5)),
            ..Default::default()
        }],
        flags: 1,
        ..Default::default()
    };
    let h = Histogram { data_points: vec![point], aggregation_temporality: DELTA };
    let got = metrics_to_write_request_partial(
        &request(vec![], vec![metric("lat", "s", metric::Data::Histogram(h))]),
        &OtlpOptions::default(),
    );
    assert!(got.request.series.is_empty());
    assert_eq!(
        render_deltas(&got.deltas),
        vec![
            r#"{__name__="lat_seconds_sum", route="/a"} += 1.5 @ 0"#,
            r#"{__name__="lat_seconds_count", route="/a"} += 4 @ 0"#,
            r#"{__name__="lat_seconds_bucket", le="0.1", route="/a"} += 1 @ 0"#,
            r#"{__name__="lat_seconds_bucket", le="1", route="/a"} += 3 @ 0"#,
            r#"{__name__="lat_seconds_bucket", le="+Inf", route="/a"} += 4 @ 0"#,
        ]
    );
    assert_eq!(got.deltas[0].series[3].exemplars.len(), 1, "the exemplar goes to le=1");
    assert!(got.deltas[0].no_recorded_value);
    assert_eq!(got.request.metadata[0].metric_type, MetricType::Histogram);
}

#[test]
fn unspecified_temporality_is_refused() {
    let sum = Sum {
        data_points: vec![number(vec![], number_data_point::Value::AsInt(1))],
        aggregation_temporality: 0,
        is_monotonic: true,
    };
    let got = metrics_to_write_request_partial(
        &request(vec![], vec![metric("m", "", metric::Data::Sum(sum))]),
        &OtlpOptions::default(),
    );
    assert_eq!(got.rejected_data_points, 1);
    assert!(got.first_rejection.unwrap().to_string().contains("invalid aggregation temporality 0"));
}

#[test]
fn a_metric_with_an_unusable_attribute_key_is_refused_whole() {
    let gauge = Gauge {
        data_points: vec![
            number(vec![kv("ok", "1")], number_data_point::Value::AsDouble(1.0)),
            number(vec![kv("...", "2")], number_data_point::Value::AsDouble(2.0)),
        ],
    };
    let req = request(vec![], vec![metric("g", "", metric::Data::Gauge(gauge))]);
    let partial = metrics_to_write_request_partial(&req, &OtlpOptions::default());
    assert!(partial.request.series.is_empty(), "{:?}", partial.request.series);
    assert_eq!(partial.rejected_data_points, 2);
    let err = partial.first_rejection.unwrap().to_string();
    assert!(err.contains(r#"attribute "..." becomes the invalid label name "___""#), "{err}");
}

#[test]
fn many_attributes_convert_in_near_linear_time() {
    // 20k attributes on one point: a quadratic label builder would take minutes here.
    let attrs: Vec<KeyValue> = (0..20_000).map(|i| kv(&format!("attr.{i}"), "v")).collect();
    let gauge = Gauge { data_points: vec![number(attrs, number_data_point::Value::AsDouble(1.0))] };
    let got = convert(&request(vec![], vec![metric("wide", "", metric::Data::Gauge(gauge))]));
    assert_eq!(got.series[0].labels.len(), 20_001);
    assert_eq!(got.series[0].labels.get("attr_19999"), Some("v"));
}

/// One request exercising every metric kind, written once as a struct and once as OTLP/JSON.
fn kitchen_sink() -> ExportMetricsServiceRequest {
    let mut req = request(
        vec![
            kv("service.name", "api"),
            KeyValue { key: "n".into(), value: Some(AnyValue { value: Some(any_value::Value::IntValue(7)) }) },
        ],
        vec![
            metric(
                "requests",
                "1",
                metric::Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        exemplars: vec![Exemplar {
                            time_unix_nano: T0_NS,
                            trace_id: vec![0x5b, 0x8e],
                            span_id: vec![0xee, 0xe1],
                            value: Some(exemplar::Value::AsInt(3)),
                            filtered_attributes: vec![],
                        }],
                        ..number(vec![kv("code", "200")], number_data_point::Value::AsInt(9_007_199_254_740_993))
                    }],
                    aggregation_temporality: CUMULATIVE,
                    is_monotonic: true,
                }),
            ),
            metric(
                "latency",
                "s",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: T0_NS,
                        count: 3,
                        sum: Some(1.5),
                        bucket_counts: vec![1, 2],
                        explicit_bounds: vec![0.5],
                        ..Default::default()
                    }],
                    aggregation_temporality: CUMULATIVE,
                }),
            ),
            metric(
                "temp",
                "Cel",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(vec![], number_data_point::Value::AsDouble(f64::INFINITY))],
                }),
            ),
            metric(
                "rpc",
                "",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: T0_NS,
                        count: 2,
                        sum: 3.0,
                        quantile_values: vec![summary_data_point::ValueAtQuantile { quantile: 0.5, value: 1.0 }],
                        ..Default::default()
                    }],
                }),
            ),
        ],
    );
    req.resource_metrics[0].schema_url = "https://opentelemetry.io/schemas/1.21.0".into();
    req
}

const KITCHEN_SINK_JSON: &str = r#"{
  "resourceMetrics": [{
    "resource": {"attributes": [
      {"key": "service.name", "value": {"stringValue": "api"}},
      {"key": "n", "value": {"intValue": "7"}}
    ]},
    "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
    "scopeMetrics": [{
      "scope": {"name": "lib", "version": "1.0"},
      "metrics": [
        {"name": "requests", "description": "requests help", "unit": "1",
         "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
           {"attributes": [{"key": "code", "value": {"stringValue": "200"}}],
            "startTimeUnixNano": "1700000000123456788", "timeUnixNano": "1700000000123456789",
            "asInt": "9007199254740993",
            "exemplars": [{"timeUnixNano": "1700000000123456789", "traceId": "5B8E", "spanId": "eee1", "asInt": "3"}]}
         ]}},
        {"name": "latency", "description": "latency help", "unit": "s",
         "histogram": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "dataPoints": [
           {"timeUnixNano": "1700000000123456789", "count": "3", "sum": 1.5,
            "bucketCounts": ["1", 2], "explicitBounds": [0.5]}
         ]}},
        {"name": "temp", "description": "temp help", "unit": "Cel",
         "gauge": {"data_points": [
           {"start_time_unix_nano": 1700000000123456788, "time_unix_nano": "1700000000123456789", "as_double": "Infinity"}
         ]}},
        {"name": "rpc", "description": "rpc help", "unknownField": {"ignored": true},
         "summary": {"dataPoints": [
           {"timeUnixNano": "1700000000123456789", "count": "2", "sum": 3,
            "quantileValues": [{"quantile": 0.5, "value": 1}]}
         ]}}
      ]
    }]
  }]
}"#;

#[test]
fn json_and_protobuf_decode_to_the_same_request_and_series() {
    let expected = kitchen_sink();
    let from_proto = decode_metrics_protobuf(&expected.encode_to_vec()).unwrap();
    let from_json = decode_metrics_json(KITCHEN_SINK_JSON.as_bytes()).unwrap();
    assert_eq!(from_proto, expected);
    assert_eq!(from_json, expected);
    let a = convert(&from_proto);
    let b = convert(&from_json);
    assert_eq!(render(&a.series), render(&b.series));
    assert_eq!(a.metadata, b.metadata);
    // 2^53 + 1 survives: 64-bit integers arrive as strings precisely so they are not rounded.
    let requests = find(&a, "requests_total")[0];
    assert_eq!(requests.samples[0].v, 9_007_199_254_740_993i64 as f64);
    assert_eq!(requests.exemplars[0].labels.get("trace_id"), Some("5b8e"));
    assert!(find(&a, "temp_celsius")[0].samples[0].v.is_infinite());
    assert_eq!(find(&a, "target_info")[0].labels.get("n"), Some("7"));
}

#[test]
fn json_errors_name_the_path() {
    let bad = KITCHEN_SINK_JSON.replace(r#""count": "3""#, r#""count": "three""#);
    let err = decode_metrics_json(bad.as_bytes()).unwrap_err().to_string();
    assert!(
        err.contains(
            r#"resourceMetrics[0].scopeMetrics[0].metrics[1] (metric "latency").histogram.dataPoints[0].count"#
        ),
        "{err}"
    );
    let bad = KITCHEN_SINK_JSON.replace(r#""traceId": "5B8E""#, r#""traceId": "W4E=""#);
    let err = decode_metrics_json(bad.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("traceId") && err.contains("hex"), "{err}");
    assert!(decode_metrics_json(b"{\"resourceMetrics\": 3}").unwrap_err().to_string().contains("expected an array"));
    assert!(decode_metrics_json(b"[1,").is_err());
}

#[test]
fn garbled_and_truncated_protobuf_is_an_error() {
    let body = kitchen_sink().encode_to_vec();
    for cut in 1..body.len() {
        if let Ok(req) = decode_metrics_protobuf(&body[..cut]) {
            // A cut on a field boundary is a valid, shorter message; converting it must not panic.
            let _ = metrics_to_write_request_partial(&req, &OtlpOptions::default());
        }
    }
    let err = decode_metrics_protobuf(b"\x0a\xff\xff\xff\xff\x0f").unwrap_err().to_string();
    assert!(err.contains("ExportMetricsServiceRequest"), "{err}");
}

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(req) = decode_metrics_protobuf(&body) {
            let _ = metrics_to_write_request_partial(&req, &OtlpOptions::default());
        }
        if let Ok(req) = decode_metrics_json(&body) {
            let _ = metrics_to_write_request_partial(&req, &OtlpOptions::default());
        }
    }

    #[test]
    fn decoders_never_panic_on_mutated_valid_bodies(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut proto = kitchen_sink().encode_to_vec();
        let mut json = KITCHEN_SINK_JSON.as_bytes().to_vec();
        for (i, b) in flips {
            let p = i.index(proto.len());
            proto[p] ^= b;
            let j = i.index(json.len());
            json[j] ^= b;
        }
        if let Ok(req) = decode_metrics_protobuf(&proto) {
            let _ = metrics_to_write_request_partial(&req, &OtlpOptions::default());
        }
        if let Ok(req) = decode_metrics_json(&json) {
            let _ = metrics_to_write_request_partial(&req, &OtlpOptions::default());
        }
    }
}

fn exp_point(
    scale: i32,
    positive: (i32, Vec<u64>),
    negative: (i32, Vec<u64>),
    zero_count: u64,
) -> ExponentialHistogramDataPoint {
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    let count = positive.1.iter().chain(&negative.1).sum::<u64>() + zero_count;
    ExponentialHistogramDataPoint {
        attributes: vec![kv("route", "/a")],
        time_unix_nano: T0_NS,
        count,
        sum: Some(10.5),
        scale,
        zero_count,
        positive: Some(Buckets { offset: positive.0, bucket_counts: positive.1 }),
        negative: Some(Buckets { offset: negative.0, bucket_counts: negative.1 }),
        ..Default::default()
    }
}

fn exp_request(points: Vec<ExponentialHistogramDataPoint>) -> ExportMetricsServiceRequest {
    let exp = ExponentialHistogram { data_points: points, aggregation_temporality: CUMULATIVE };
    request(service(), vec![metric("rpc.latency", "s", metric::Data::ExponentialHistogram(exp))])
}

#[test]
fn cumulative_exponential_histograms_become_native_histograms() {
    use osprey_model::{CounterResetHint, FloatHistogram};
    let mut point = exp_point(0, (-1, vec![1, 0, 2]), (0, vec![3]), 1);
    point.exemplars = vec![Exemplar {
        time_unix_nano: T0_NS,
        trace_id: vec![0xab; 16],
        value: Some(exemplar::Value::AsDouble(0.7)),
        ..Default::default()
    }];
    let got = convert(&exp_request(vec![point]));
    let series = find(&got, "rpc_latency_seconds");
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].labels.get("route"), Some("/a"));
    assert_eq!(series[0].labels.get("job"), Some("shop/api"));
    assert!(series[0].samples.is_empty());
    assert_eq!(series[0].exemplars.len(), 1);
    assert_eq!(series[0].histograms.len(), 1);
    assert_eq!(series[0].histograms[0].t, T0_MS);
    // OTLP bucket i covers (2^i, 2^(i+1)], native bucket i covers (2^(i-1), 2^i]: indexes shift by one.
    assert_eq!(
        series[0].histograms[0].h,
        FloatHistogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: 1.0,
            count: 7.0,
            sum: 10.5,
            positive: vec![(0, 1.0), (2, 2.0)],
            negative: vec![(1, 3.0)],
            custom_values: vec![],
        }
    );
    let meta = got.metadata.iter().find(|m| m.metric_family_name == "rpc_latency_seconds").unwrap();
    assert_eq!(meta.metric_type, MetricType::Histogram);
}

#[test]
fn exponential_scales_above_8_merge_down_and_below_minus_4_are_refused() {
    let got = convert(&exp_request(vec![exp_point(10, (0, vec![1, 1, 1, 1, 1]), (-9, vec![2]), 0)]));
    let h = &find(&got, "rpc_latency_seconds")[0].histograms[0].h;
    assert_eq!(h.schema, 8);
    // OTLP indexes 0..=4 at scale 10 are (i >> 2) at scale 8, then shifted by one.
    assert_eq!(h.positive, vec![(1, 4.0), (2, 1.0)]);
    assert_eq!(h.negative, vec![(-2, 2.0)]);

    let err = metrics_to_write_request(
        &exp_request(vec![exp_point(-5, (0, vec![1]), (0, vec![]), 0)]),
        &OtlpOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("scale -5 cannot be converted") && err.contains("at least -4"), "{err}");

    let mut wrong = exp_point(0, (0, vec![1]), (0, vec![]), 0);
    wrong.count = 5;
    let err = metrics_to_write_request(&exp_request(vec![wrong]), &OtlpOptions::default()).unwrap_err().to_string();
    assert!(err.contains("1 observations in its buckets but a count of 5"), "{err}");
}

#[test]
fn exponential_points_without_a_recorded_value_are_stale_markers() {
    let mut point = exp_point(2, (0, vec![1]), (0, vec![]), 0);
    point.flags = 1;
    let got = convert(&exp_request(vec![point]));
    let h = &find(&got, "rpc_latency_seconds")[0].histograms[0].h;
    assert!(is_stale_nan(h.sum));
    assert!(h.positive.is_empty());
}

#[test]
fn otlp_json_exponential_histograms_become_native_histograms() {
    let body = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
        "scopeMetrics":[{"metrics":[{"name":"db.wait","unit":"ms","exponentialHistogram":{
            "aggregationTemporality":2,
            "dataPoints":[{"timeUnixNano":"1700000000123456789","count":"4","sum":9.5,"scale":1,
                "zeroCount":"1","zeroThreshold":0.01,"positive":{"offset":2,"bucketCounts":["2","1"]}}]}}]}]}]}"#;
    let got = convert(&decode_metrics_json(body.as_bytes()).unwrap());
    let h = &find(&got, "db_wait_milliseconds")[0].histograms[0];
    assert_eq!(h.t, T0_MS);
    assert_eq!((h.h.schema, h.h.count, h.h.sum, h.h.zero_count, h.h.zero_threshold), (1, 4.0, 9.5, 1.0, 0.01));
    assert_eq!(h.h.positive, vec![(3, 2.0), (4, 1.0)]);
}

#[test]
fn cumulative_points_carry_their_start_time_as_start_timestamps() {
    const START_NS: u64 = T0_NS - 60_000_000_000;
    const START_MS: i64 = T0_MS - 60_000;
    let mut counted = number(vec![], number_data_point::Value::AsInt(5));
    counted.start_time_unix_nano = START_NS;
    let unset =
        NumberDataPoint { start_time_unix_nano: 0, ..number(vec![kv("k", "v")], number_data_point::Value::AsInt(1)) };
    let sum = Sum { data_points: vec![counted, unset], aggregation_temporality: CUMULATIVE, is_monotonic: true };
    let classic = HistogramDataPoint {
        time_unix_nano: T0_NS,
        start_time_unix_nano: START_NS,
        count: 3,
        sum: Some(1.5),
        bucket_counts: vec![1, 2],
        explicit_bounds: vec![0.5],
        ..Default::default()
    };
    let classic = Histogram { data_points: vec![classic], aggregation_temporality: CUMULATIVE };
    let exp = ExponentialHistogram {
        data_points: vec![ExponentialHistogramDataPoint {
            start_time_unix_nano: START_NS,
            ..exp_point(0, (0, vec![1]), (0, vec![]), 0)
        }],
        aggregation_temporality: CUMULATIVE,
    };
    let gauge = Gauge { data_points: vec![number(vec![], number_data_point::Value::AsDouble(1.0))] };
    let summary = SummaryDataPoint {
        time_unix_nano: T0_NS,
        start_time_unix_nano: START_NS,
        count: 2,
        sum: 3.0,
        quantile_values: vec![summary_data_point::ValueAtQuantile { quantile: 0.5, value: 1.0 }],
        ..Default::default()
    };
    let summary = Summary { data_points: vec![summary] };
    let got = convert(&request(
        vec![],
        vec![
            metric("requests", "", metric::Data::Sum(sum)),
            metric("latency", "", metric::Data::Histogram(classic)),
            metric("rpc", "", metric::Data::ExponentialHistogram(exp)),
            metric("temperature", "", metric::Data::Gauge(gauge)),
            metric("rpc_duration", "", metric::Data::Summary(summary)),
        ],
    ));
    let starts = |name: &str| find(&got, name).iter().map(|s| s.start_timestamps.clone()).collect::<Vec<_>>();
    assert_eq!(starts("requests_total"), [vec![(T0_MS, START_MS)], vec![]], "an unset start is none");
    assert_eq!(starts("latency_sum"), [vec![(T0_MS, START_MS)]]);
    assert_eq!(starts("latency_count"), [vec![(T0_MS, START_MS)]]);
    assert_eq!(starts("latency_bucket"), [vec![(T0_MS, START_MS)], vec![(T0_MS, START_MS)]]);
    assert_eq!(starts("rpc"), [vec![(T0_MS, START_MS)]]);
    assert_eq!(starts("temperature"), [Vec::<(i64, i64)>::new()], "gauges have no start");
    assert_eq!(starts("rpc_duration_sum"), [vec![(T0_MS, START_MS)]]);
    assert_eq!(starts("rpc_duration_count"), [vec![(T0_MS, START_MS)]]);
    assert_eq!(starts("rpc_duration"), [Vec::<(i64, i64)>::new()], "quantiles are not running totals");
}
