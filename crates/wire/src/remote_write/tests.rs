use super::*;
use osprey_model::{CounterResetHint, Exemplar, FloatHistogram, HistogramSample, MetricMetadata, Sample, TimeSeries};
use proptest::prelude::*;

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

/// Protobuf wire-format helpers, so tests pin Prometheus's field numbers independently of
/// our own message declarations.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(tag << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn label(name: &str, value: &str) -> Vec<u8> {
    let mut l = Vec::new();
    len_field(1, name.as_bytes(), &mut l);
    len_field(2, value.as_bytes(), &mut l);
    l
}

fn series_raw(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> Vec<u8> {
    let mut ts = Vec::new();
    for (n, v) in labels {
        len_field(1, &label(n, v), &mut ts);
    }
    for (v, t) in samples {
        let mut s = Vec::new();
        s.push(1 << 3 | 1); // field 1, fixed64 (double)
        s.extend_from_slice(&v.to_le_bytes());
        s.push(2 << 3); // field 2, varint (int64)
        varint(*t as u64, &mut s);
        len_field(2, &s, &mut ts);
    }
    ts
}

fn request_raw(series: &[Vec<u8>]) -> Vec<u8> {
    let mut req = Vec::new();
    for ts in series {
        len_field(1, ts, &mut req);
    }
    req
}

fn decode_err(series: &[(&str, &str)]) -> String {
    let body = snappy(&request_raw(&[series_raw(series, &[(1.0, 1)])]));
    decode_write_request(&body).unwrap_err().to_string()
}

fn sample_request() -> WriteRequest {
    WriteRequest {
        series: vec![
            TimeSeries {
                labels: Labels::from_pairs([("__name__", "http_requests_total"), ("job", "api"), ("code", "200")]),
                samples: vec![
                    Sample::new(1000, 1.5),
                    Sample::new(2000, f64::INFINITY),
                    Sample::new(3000, osprey_model::STALE_NAN),
                ],
                exemplars: vec![Exemplar { labels: Labels::from_pairs([("trace_id", "abc123")]), t: 1500, v: 0.25 }],
                histograms: vec![],
                start_timestamps: Vec::new(),
            },
            TimeSeries {
                labels: Labels::from_pairs([("__name__", "up"), ("instance", "a:9100")]),
                samples: vec![Sample::new(-5, 1.0)],
                exemplars: vec![],
                histograms: vec![],
                start_timestamps: Vec::new(),
            },
        ],
        metadata: vec![MetricMetadata {
            metric_family_name: "http_requests".into(),
            metric_type: MetricType::Counter,
            help: "Requests served.".into(),
            unit: "requests".into(),
        }],
    }
}

#[test]
fn round_trips_series_exemplars_and_metadata() {
    let req = sample_request();
    let back = decode_write_request(&encode_write_request(&req)).unwrap();
    assert_eq!(back.series.len(), 2);
    assert_eq!(back.series[0].labels, req.series[0].labels);
    assert_eq!(back.series[0].exemplars, req.series[0].exemplars);
    assert_eq!(back.metadata, req.metadata);
    // Compare samples bit for bit: the staleness marker is a NaN and must survive exactly.
    for (a, b) in back.series.iter().zip(&req.series) {
        let bits = |s: &TimeSeries| s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b));
    }
    assert!(osprey_model::is_stale_nan(back.series[0].samples[2].v));
}

#[test]
fn decodes_hand_built_protobuf_with_prometheus_field_numbers() {
    let mut exemplar = Vec::new();
    len_field(1, &label("trace_id", "t1"), &mut exemplar);
    exemplar.push(2 << 3 | 1);
    exemplar.extend_from_slice(&2.5f64.to_le_bytes());
    exemplar.push(3 << 3);
    varint(1234, &mut exemplar);
    let mut ts = series_raw(&[("__name__", "up"), ("job", "node")], &[(1.0, 1000), (0.0, 2000)]);
    len_field(3, &exemplar, &mut ts);

    let mut metadata = Vec::new();
    metadata.push(1 << 3);
    varint(2, &mut metadata); // GAUGE
    len_field(2, b"up", &mut metadata);
    len_field(4, b"Whether the target is up.", &mut metadata);
    len_field(5, b"", &mut metadata);
    let mut req = request_raw(&[ts]);
    len_field(3, &metadata, &mut req);

    let got = decode_write_request(&snappy(&req)).unwrap();
    assert_eq!(got.series.len(), 1);
    let s = &got.series[0];
    assert_eq!(s.labels.to_string(), r#"{__name__="up", job="node"}"#);
    assert_eq!(s.samples, vec![Sample::new(1000, 1.0), Sample::new(2000, 0.0)]);
    assert_eq!(s.exemplars, vec![Exemplar { labels: Labels::from_pairs([("trace_id", "t1")]), t: 1234, v: 2.5 }]);
    assert_eq!(
        got.metadata,
        vec![MetricMetadata {
            metric_family_name: "up".into(),
            metric_type: MetricType::Gauge,
            help: "Whether the target is up.".into(),
            unit: String::new(),
        }]
    );
}

#[test]
fn sorts_unsorted_labels_and_drops_empty_values() {
    let body = snappy(&request_raw(&[series_raw(&[("job", "x"), ("__name__", "up"), ("env", "")], &[(1.0, 1)])]));
    let got = decode_write_request(&body).unwrap();
    assert_eq!(got.series[0].labels.to_string(), r#"{__name__="up", job="x"}"#);
}

#[test]
fn rejects_invalid_label_names_naming_them() {
    let msg = decode_err(&[("__name__", "up"), ("bad-name", "x")]);
    assert!(msg.contains(r#"invalid label name "bad-name""#), "{msg}");
    assert!(msg.contains(r#"__name__="up""#), "{msg}");
}

#[test]
fn rejects_invalid_metric_names() {
    let msg = decode_err(&[("__name__", "1up")]);
    assert!(msg.starts_with(r#"invalid metric name "1up""#), "{msg}");
}

#[test]
fn rejects_duplicate_label_names() {
    let msg = decode_err(&[("__name__", "up"), ("job", "a"), ("job", "b")]);
    assert!(msg.starts_with(r#"duplicate label name "job""#), "{msg}");
}

#[test]
fn rejects_series_without_a_metric_name() {
    let msg = decode_err(&[("job", "a")]);
    assert!(msg.contains("has no metric name"), "{msg}");
    let msg = decode_err(&[]);
    assert!(msg.contains("has no metric name"), "{msg}");
}

#[test]
fn rejects_bad_snappy_with_advice() {
    let err = decode_write_request(b"\xff\xff\xff\xff\xff\xff not snappy").unwrap_err();
    assert!(matches!(err, WireError::Snappy(_)), "{err}");
    assert!(err.to_string().contains("send a snappy block-compressed protobuf"), "{err}");
    // The snappy framed (stream) format is a common mistake; it must be refused, not misread.
    let mut framed = Vec::new();
    {
        use std::io::Write;
        let mut w = snap::write::FrameEncoder::new(&mut framed);
        w.write_all(&request_raw(&[series_raw(&[("__name__", "up")], &[(1.0, 1)])])).unwrap();
    }
    assert!(decode_write_request(&framed).is_err());
}

#[test]
fn rejects_garbled_and_truncated_protobuf() {
    let err = decode_write_request(&snappy(b"\x0a\xff\xff\xff\x0f garbage")).unwrap_err();
    assert!(matches!(err, WireError::Protobuf { .. }), "{err}");
    assert!(err.to_string().contains("prometheus.WriteRequest"), "{err}");

    let raw = request_raw(&[series_raw(&[("__name__", "up"), ("job", "node")], &[(1.0, 1000)])]);
    for cut in 1..raw.len() {
        assert!(decode_write_request(&snappy(&raw[..cut])).is_err(), "truncated at {cut} decoded");
    }
    let body = encode_write_request(&sample_request());
    for cut in 0..body.len() {
        assert!(decode_write_request(&body[..cut]).is_err(), "truncated snappy at {cut} decoded");
    }
}

#[test]
fn enforces_the_decompressed_size_limit_before_allocating() {
    let body = encode_write_request(&sample_request());
    let err = decode_write_request_with_limit(&body, 16).unwrap_err();
    assert!(matches!(err, WireError::BodyTooLarge { limit: 16, .. }), "{err}");
    // A header declaring 4 GiB must be refused without trying to allocate it.
    let mut huge = Vec::new();
    varint(u64::from(u32::MAX), &mut huge);
    huge.extend_from_slice(b"\x00abc");
    assert!(matches!(decode_write_request(&huge), Err(WireError::BodyTooLarge { .. }) | Err(WireError::Snappy(_))));
}

#[test]
fn skips_unknown_fields_of_every_wire_type() {
    let unknown = |field: u32, out: &mut Vec<u8>| {
        varint(u64::from(field << 3), out); // varint
        varint(300, out);
        varint(u64::from((field + 1) << 3 | 1), out); // fixed64
        out.extend_from_slice(&[0; 8]);
        len_field(field + 2, b"skipped", out); // length-delimited
        varint(u64::from((field + 3) << 3 | 5), out); // fixed32
        out.extend_from_slice(&[0; 4]);
    };
    let mut l = label("__name__", "up");
    unknown(10, &mut l);
    let mut sample = Vec::new();
    unknown(10, &mut sample);
    sample.push(1 << 3 | 1);
    sample.extend_from_slice(&7.0f64.to_le_bytes());
    let mut ts = Vec::new();
    unknown(10, &mut ts);
    len_field(1, &l, &mut ts);
    len_field(2, &sample, &mut ts);
    let mut req = Vec::new();
    unknown(10, &mut req);
    len_field(1, &ts, &mut req);
    let got = decode_write_request(&snappy(&req)).unwrap();
    assert_eq!(got.series[0].labels.to_string(), r#"{__name__="up"}"#);
    assert_eq!(got.series[0].samples, vec![Sample::new(0, 7.0)]);
}

#[test]
fn rejects_known_fields_with_the_wrong_wire_type_giving_the_offset() {
    let mut req = Vec::new();
    varint(1 << 3, &mut req); // timeseries as a varint
    varint(5, &mut req);
    let err = decode_write_request(&snappy(&req)).unwrap_err().to_string();
    assert!(err.contains("wrong wire type") && err.contains("at byte"), "{err}");
    let err = decode_write_request(&snappy(&[0x0a, 0x05, 0x0a])).unwrap_err().to_string();
    assert!(err.contains("runs past the end"), "{err}");
    let mut bad_utf8 = Vec::new();
    len_field(1, &[0x0a, 0x02, 0xff, 0xfe], &mut bad_utf8);
    let mut req = Vec::new();
    len_field(1, &bad_utf8, &mut req);
    let err = decode_write_request(&snappy(&req)).unwrap_err().to_string();
    assert!(err.contains("not valid UTF-8"), "{err}");
}

#[test]
fn exemplar_labels_are_validated_and_many_of_them_decode_quickly() {
    let exemplar_with = |labels: &[(String, String)]| {
        let mut e = Vec::new();
        for (n, v) in labels {
            len_field(1, &label(n, v), &mut e);
        }
        let mut ts = series_raw(&[("__name__", "up")], &[(1.0, 1)]);
        len_field(3, &e, &mut ts);
        snappy(&request_raw(&[ts]))
    };
    // 20k labels: a quadratic label builder would take minutes here.
    let many: Vec<(String, String)> = (0..20_000).rev().map(|i| (format!("l{i}"), "v".to_string())).collect();
    let got = decode_write_request(&exemplar_with(&many)).unwrap();
    assert_eq!(got.series[0].exemplars[0].labels.len(), 20_000);
    assert_eq!(got.series[0].exemplars[0].labels.as_slice()[0].name, "l0");

    let dup = [("a".to_string(), "1".to_string()), ("a".to_string(), "2".to_string())];
    let err = decode_write_request(&exemplar_with(&dup)).unwrap_err().to_string();
    assert!(err.starts_with(r#"duplicate exemplar label name "a""#), "{err}");
    let bad = [("trace-id".to_string(), "1".to_string())];
    let err = decode_write_request(&exemplar_with(&bad)).unwrap_err().to_string();
    assert!(err.starts_with(r#"invalid exemplar label name "trace-id""#), "{err}");
}

/// A series as round trips must keep it: values by bit pattern (NaN payloads such as the
/// staleness marker must survive), except that -0.0 becomes 0.0, since proto3 omits fields
/// equal to zero, as Prometheus's encoder does.
type ComparableSeries = (Labels, Vec<(i64, u64)>, Vec<(Labels, i64, u64)>, Vec<HistogramSample>);

fn comparable(request: &WriteRequest) -> Vec<ComparableSeries> {
    let bits = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
    request
        .series
        .iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.samples.iter().map(|x| (x.t, bits(x.v))).collect(),
                s.exemplars.iter().map(|e| (e.labels.clone(), e.t, bits(e.v))).collect(),
                s.histograms.clone(),
            )
        })
        .collect()
}

fn arb_request() -> impl Strategy<Value = WriteRequest> {
    let name = prop::sample::select(vec!["job", "instance", "a", "le", "_x", "zz9"]);
    let labels = ("[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", proptest::collection::btree_map(name, "\\PC{0,8}", 0..5)).prop_map(
        |(metric, rest)| {
            let mut pairs: Vec<(String, String)> = rest.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            pairs.push(("__name__".to_string(), metric));
            Labels::from_pairs(pairs)
        },
    );
    let samples = proptest::collection::vec((any::<i64>(), any::<u64>()), 0..4)
        .prop_map(|v| v.into_iter().map(|(t, bits)| Sample::new(t, f64::from_bits(bits))).collect::<Vec<_>>());
    let exemplars = proptest::collection::vec((any::<i64>(), any::<f64>(), "[0-9a-f]{0,32}"), 0..2).prop_map(|v| {
        v.into_iter()
            .map(|(t, v, id)| Exemplar { labels: Labels::from_pairs([("trace_id", id)]), t, v })
            .collect::<Vec<_>>()
    });
    let histograms = proptest::collection::vec((any::<i64>(), arb_histogram()), 0..3)
        .prop_map(|v| v.into_iter().map(|(t, h)| HistogramSample { t, h }).collect::<Vec<_>>());
    let series = (labels, samples, exemplars, histograms).prop_map(|(labels, samples, exemplars, histograms)| {
        TimeSeries { labels, samples, exemplars, histograms, start_timestamps: Vec::new() }
    });
    proptest::collection::vec(series, 0..6).prop_map(|series| WriteRequest { series, metadata: Vec::new() })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_write_request(&body);
        let _ = decode_write_request(&snappy(&body));
    }

    #[test]
    fn round_trips_arbitrary_valid_requests(req in arb_request()) {
        let back = decode_write_request(&encode_write_request(&req)).unwrap();
        prop_assert_eq!(comparable(&back), comparable(&req));
    }

    /// The same through 2.0.
    #[test]
    fn round_trips_arbitrary_valid_requests_v2(req in arb_request()) {
        let back = decode_write_request_v2(&encode_write_request_v2(&req)).unwrap();
        prop_assert_eq!(comparable(&back), comparable(&req));
    }

    #[test]
    fn v2_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_write_request_v2(&body);
        let _ = decode_write_request_v2(&snappy(&body));
    }

    #[test]
    fn v2_never_panics_on_mutated_valid_bodies(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut raw = to_proto_v2(&histogram_request()).encode_to_vec();
        for (i, b) in flips {
            let i = i.index(raw.len());
            raw[i] ^= b;
        }
        let _ = decode_write_request_v2(&snappy(&raw));
        let _ = decode_write_request(&snappy(&raw));
    }

    /// Arbitrary field values (schemas, offsets, lengths, deltas at their extremes) give a
    /// histogram or an error, never a panic or an overflow.
    #[test]
    fn arbitrary_histogram_fields_never_panic(
        schema in prop_oneof![any::<i32>(), -60i32..60],
        spans in proptest::collection::vec((prop_oneof![any::<i32>(), -5i32..5], prop_oneof![any::<u32>(), 0u32..4]), 0..4),
        deltas in proptest::collection::vec(prop_oneof![any::<i64>(), -3i64..3], 0..8),
        counts in proptest::collection::vec(any::<f64>(), 0..8),
        custom_values in proptest::collection::vec(any::<f64>(), 0..4),
        count in any::<u64>(),
        float in any::<bool>(),
    ) {
        let spans: Vec<proto::BucketSpan> = spans.into_iter().map(|(offset, length)| proto::BucketSpan { offset, length }).collect();
        let h = proto::Histogram {
            count: Some(if float { proto::HistogramCount::CountFloat(count as f64) } else { proto::HistogramCount::CountInt(count) }),
            schema,
            negative_spans: spans.clone(),
            negative_deltas: deltas.clone(),
            negative_counts: counts.clone(),
            positive_spans: spans,
            positive_deltas: deltas,
            positive_counts: counts,
            custom_values,
            ..int_histogram()
        };
        let _ = decode_write_request(&int_histogram_request(h));
    }

    #[test]
    fn histograms_never_panic_when_mutated(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut raw = to_proto(&histogram_request()).encode_to_vec();
        for (i, b) in flips {
            let i = i.index(raw.len());
            raw[i] ^= b;
        }
        let _ = decode_write_request(&snappy(&raw));
    }

    #[test]
    fn never_panics_on_mutated_valid_bodies(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut raw = to_proto(&sample_request()).encode_to_vec();
        for (i, b) in flips {
            let i = i.index(raw.len());
            raw[i] ^= b;
        }
        let _ = decode_write_request(&snappy(&raw));
    }

    /// The packed decoding the server uses accepts and refuses exactly what the owned one
    /// does, with the same errors, and holds the same series.
    #[test]
    fn packed_decoding_agrees_with_owned_decoding(
        req in arb_request(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let v1 = to_proto(&req).encode_to_vec();
        let v2 = to_proto_v2(&req).encode_to_vec();
        for (message, mut raw) in [(ProtoMessage::V1, v1), (ProtoMessage::V2, v2)] {
            for &(i, b) in &flips {
                let i = i.index(raw.len().max(1));
                if let Some(byte) = raw.get_mut(i) {
                    *byte ^= b;
                }
            }
            let body = snappy(&raw);
            let owned = decode_message_with_limit(message, &body, MAX_DECOMPRESSED_BYTES);
            let packed = decode_packed_with_limit(message, &body, MAX_DECOMPRESSED_BYTES);
            if let Ok(p) = &packed {
                let labels: Vec<Labels> = p.series().map(|s| s.to_labels()).collect();
                let expected: Vec<Labels> = owned.iter().flat_map(|r| r.series.iter().map(|s| s.labels.clone())).collect();
                prop_assert_eq!(labels, expected);
            }
            // By their debug form, where NaN values compare equal.
            let packed = packed.map(PackedWriteRequest::into_write_request);
            prop_assert_eq!(format!("{packed:?}"), format!("{owned:?}"));
        }
    }
}

/// Valid histograms: exponential (schemas -4 to 8, both sides, zero bucket) or custom buckets.
fn arb_histogram() -> impl Strategy<Value = FloatHistogram> {
    let buckets = || {
        proptest::collection::btree_map(-40i32..40, 0.0f64..1e6, 0..6).prop_map(|m| m.into_iter().collect::<Vec<_>>())
    };
    let hint = prop::sample::select(vec![
        CounterResetHint::Unknown,
        CounterResetHint::CounterReset,
        CounterResetHint::NotCounterReset,
        CounterResetHint::Gauge,
    ]);
    let exponential = (-4i32..=8, buckets(), buckets(), 0.0f64..1e3, 0.0f64..1e-3, -1e9f64..1e9, 0.0f64..1e7, hint)
        .prop_map(|(schema, positive, negative, zero_count, zero_threshold, sum, count, counter_reset_hint)| {
            FloatHistogram {
                counter_reset_hint,
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive,
                negative,
                custom_values: Vec::new(),
            }
        });
    let custom = (proptest::collection::btree_set(-1000i32..1000, 1..6), 0.0f64..1e6, -1e9f64..1e9).prop_map(
        |(bounds, count, sum)| {
            let custom_values: Vec<f64> = bounds.into_iter().map(|b| f64::from(b) / 10.0).collect();
            let positive = (0..=custom_values.len() as i32).step_by(2).map(|i| (i, f64::from(i) + 1.0)).collect();
            FloatHistogram {
                schema: osprey_model::CUSTOM_BUCKETS_SCHEMA,
                count,
                sum,
                positive,
                custom_values,
                ..FloatHistogram::default()
            }
        },
    );
    prop_oneof![exponential, custom]
}

fn latency(h: FloatHistogram) -> WriteRequest {
    WriteRequest {
        series: vec![TimeSeries {
            labels: Labels::from_pairs([("__name__", "rpc_latency_seconds"), ("job", "api")]),
            histograms: vec![HistogramSample { t: 1_000, h }],
            ..TimeSeries::default()
        }],
        metadata: vec![],
    }
}

fn histogram_request() -> WriteRequest {
    let mut req = latency(FloatHistogram {
        counter_reset_hint: CounterResetHint::NotCounterReset,
        schema: 3,
        zero_threshold: 0.001,
        zero_count: 2.0,
        count: 12.0,
        sum: 3.5,
        positive: vec![(-2, 1.0), (-1, 0.0), (4, 5.0), (20, 2.0)],
        negative: vec![(1, 2.0)],
        custom_values: vec![],
    });
    req.series.extend(sample_request().series);
    req.metadata = sample_request().metadata;
    req
}

/// An integer histogram as Prometheus's remote-write sender encodes one.
fn int_histogram() -> proto::Histogram {
    proto::Histogram {
        count: Some(proto::HistogramCount::CountInt(10)),
        sum: 18.4,
        schema: 1,
        zero_threshold: 1e-128,
        zero_count: Some(proto::HistogramZeroCount::ZeroCountInt(1)),
        negative_spans: vec![proto::BucketSpan { offset: 0, length: 2 }],
        negative_deltas: vec![1, 0],
        negative_counts: vec![],
        // Buckets -1, 0 (span 1), then 3 (span 2, one bucket after a gap of two).
        positive_spans: vec![proto::BucketSpan { offset: -1, length: 2 }, proto::BucketSpan { offset: 2, length: 1 }],
        positive_deltas: vec![2, 1, -1],
        positive_counts: vec![],
        reset_hint: 1,
        timestamp: 5_000,
        custom_values: vec![],
        start_timestamp: 0,
    }
}

fn int_histogram_request(h: proto::Histogram) -> Vec<u8> {
    let req = proto::WriteRequest {
        timeseries: vec![proto::TimeSeries {
            labels: vec![proto::Label { name: "__name__".into(), value: "rpc_latency_seconds".into() }],
            samples: vec![],
            exemplars: vec![],
            histograms: vec![h],
        }],
        metadata: vec![],
    };
    snappy(&req.encode_to_vec())
}

#[test]
fn round_trips_native_histograms_of_both_versions() {
    let req = histogram_request();
    for (name, back) in [
        ("1.0", decode_write_request(&encode_write_request(&req)).unwrap()),
        ("2.0", decode_write_request_v2(&encode_write_request_v2(&req)).unwrap()),
    ] {
        assert_eq!(back.series[0].histograms, req.series[0].histograms, "{name}");
        assert_eq!(back.series[1].exemplars, req.series[1].exemplars, "{name}");
        assert_eq!(back.metadata[0].help, req.metadata[0].help, "{name}");
    }
    // 2.0 carries metadata per series: the counter family is named after its series.
    let back = decode_write_request_v2(&encode_write_request_v2(&req)).unwrap();
    assert_eq!(back.metadata[0].metric_family_name, "http_requests_total");
}

#[test]
fn integer_histograms_become_float_counts() {
    let got = decode_write_request(&int_histogram_request(int_histogram())).unwrap();
    let h = &got.series[0].histograms[0];
    assert_eq!(h.t, 5_000);
    assert_eq!(
        h.h,
        FloatHistogram {
            counter_reset_hint: CounterResetHint::CounterReset,
            schema: 1,
            zero_threshold: 1e-128,
            zero_count: 1.0,
            count: 10.0,
            sum: 18.4,
            positive: vec![(-1, 2.0), (0, 3.0), (3, 2.0)],
            negative: vec![(0, 1.0), (1, 1.0)],
            custom_values: vec![],
        }
    );
}

#[test]
fn decodes_unpacked_repeated_histogram_fields() {
    // Field 4 of the series: a histogram written field by field, deltas and counts unpacked.
    let mut h = Vec::new();
    h.push(2 << 3 | 1); // count_float
    h.extend_from_slice(&3.0f64.to_le_bytes());
    h.push(4 << 3); // schema 0, zigzag
    varint(0, &mut h);
    let mut span = Vec::new();
    span.push(1 << 3);
    varint(5, &mut span); // zigzag(-3)
    span.push(2 << 3);
    varint(2, &mut span);
    len_field(11, &span, &mut h);
    for c in [1.0f64, 2.0] {
        h.push(13 << 3 | 1);
        h.extend_from_slice(&c.to_le_bytes());
    }
    let mut ts = series_raw(&[("__name__", "x")], &[]);
    len_field(4, &h, &mut ts);
    let got = decode_write_request(&snappy(&request_raw(&[ts]))).unwrap();
    assert_eq!(got.series[0].histograms[0].h.positive, vec![(-3, 1.0), (-2, 2.0)]);
    assert_eq!(got.series[0].histograms[0].h.count, 3.0);
}

#[test]
fn refuses_invalid_histograms_as_prometheus_does_naming_the_series() {
    let check = |h: proto::Histogram, expect: &str| {
        let err = decode_write_request(&int_histogram_request(h)).unwrap_err();
        assert!(matches!(err, WireError::InvalidHistogram { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(r#"{__name__="rpc_latency_seconds"}"#), "{msg}");
        assert!(msg.contains(expect), "expected {expect:?} in {msg}");
    };
    check(proto::Histogram { positive_deltas: vec![2, 1], ..int_histogram() }, "spans need 3 buckets, have 2");
    check(proto::Histogram { negative_deltas: vec![1, -2], ..int_histogram() }, "observation count of -1");
    check(proto::Histogram { schema: 9000, ..int_histogram() }, "schema 9000 is invalid");
    check(proto::Histogram { schema: -5, ..int_histogram() }, "schema -5 is invalid");
    check(
        proto::Histogram { count: Some(proto::HistogramCount::CountInt(11)), ..int_histogram() },
        "10 observations found in buckets, but the count field is 11",
    );
    check(
        proto::Histogram { sum: f64::NAN, count: Some(proto::HistogramCount::CountInt(9)), ..int_histogram() },
        "count must be at least",
    );
    check(
        proto::Histogram {
            positive_spans: vec![
                proto::BucketSpan { offset: 0, length: 2 },
                proto::BucketSpan { offset: -1, length: 1 },
            ],
            ..int_histogram()
        },
        "span number 2 has a negative offset -1",
    );
    let float = |positive: Vec<f64>| proto::Histogram {
        count: Some(proto::HistogramCount::CountFloat(1.0)),
        zero_count: None,
        negative_spans: vec![],
        negative_deltas: vec![],
        positive_spans: vec![proto::BucketSpan { offset: 0, length: positive.len() as u32 }],
        positive_deltas: vec![],
        positive_counts: positive,
        ..int_histogram()
    };
    check(float(vec![1.0, -0.5]), "negative count -0.5");
    check(proto::Histogram { custom_values: vec![1.0], ..float(vec![1.0]) }, "must not have custom bucket bounds");
    let custom = |bounds: Vec<f64>| proto::Histogram {
        schema: osprey_model::CUSTOM_BUCKETS_SCHEMA,
        zero_threshold: 0.0,
        custom_values: bounds,
        ..float(vec![1.0, 2.0])
    };
    check(custom(vec![1.0, 1.0]), "bounds must increase");
    check(custom(vec![1.0, f64::INFINITY]), "must not be +Inf");
    check(custom(vec![]), "spans reach bucket 2 but there are 0 bounds");
    check(proto::Histogram { zero_threshold: 0.1, ..custom(vec![1.0, 2.0]) }, "zero threshold of 0");
    // A float histogram's count is not checked against its buckets (rounding), as in Prometheus.
    assert!(decode_write_request(&int_histogram_request(float(vec![5.0, 6.0]))).is_ok());
    assert!(decode_write_request(&int_histogram_request(custom(vec![1.0, 2.0]))).is_ok());
}

/// An integer histogram with nothing on the negative side or in the zero bucket.
fn h_template() -> proto::Histogram {
    proto::Histogram { negative_spans: vec![], negative_deltas: vec![], zero_count: None, ..int_histogram() }
}

#[test]
fn reserved_finer_schemas_are_reduced_to_8() {
    let h = proto::Histogram {
        schema: 10,
        positive_spans: vec![proto::BucketSpan { offset: 3, length: 4 }],
        positive_deltas: vec![1, 0, 0, 0],
        negative_spans: vec![],
        negative_deltas: vec![],
        zero_count: None,
        count: Some(proto::HistogramCount::CountInt(4)),
        ..int_histogram()
    };
    let got = decode_write_request(&int_histogram_request(h)).unwrap();
    let h = &got.series[0].histograms[0].h;
    assert_eq!(h.schema, 8);
    // Indexes 3 to 6 at schema 10 fall into 1 and 2 at schema 8.
    assert_eq!(h.positive, vec![(1, 2.0), (2, 2.0)]);
    // The finest reserved schema, 44 bits above 8, with indexes far from 0 on both sides.
    let h = proto::Histogram {
        schema: 52,
        positive_spans: vec![
            proto::BucketSpan { offset: i32::MIN, length: 1 },
            proto::BucketSpan { offset: i32::MAX, length: 2 },
        ],
        positive_deltas: vec![1, 0, 0],
        count: Some(proto::HistogramCount::CountInt(3)),
        ..h_template()
    };
    let got = decode_write_request(&int_histogram_request(h)).unwrap();
    let h = &got.series[0].histograms[0].h;
    assert_eq!(h.schema, 8);
    // Indexes i32::MIN, 0 and 1: the first two merge into 0.
    assert_eq!(h.positive, vec![(0, 2.0), (1, 1.0)]);
}

/// A 2.0 request from symbols and series built by hand.
fn v2_raw(symbols: &[&str], series: &[Vec<u8>]) -> Vec<u8> {
    let mut req = Vec::new();
    for ts in series {
        len_field(5, ts, &mut req);
    }
    // Symbols after the series: the decoder must not depend on their order.
    for s in symbols {
        len_field(4, s.as_bytes(), &mut req);
    }
    req
}

fn packed(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        varint(*v, &mut out);
    }
    out
}

#[test]
fn decodes_hand_built_v2_with_prometheus_field_numbers() {
    let symbols = ["", "__name__", "http_requests_total", "job", "api", "trace_id", "abc", "Requests.", "requests"];
    let mut ts = Vec::new();
    len_field(1, &packed(&[1, 2, 3, 4]), &mut ts);
    let mut sample = Vec::new();
    sample.push(1 << 3 | 1);
    sample.extend_from_slice(&7.0f64.to_le_bytes());
    sample.push(2 << 3);
    varint(1000, &mut sample);
    len_field(2, &sample, &mut ts);
    let mut exemplar = Vec::new();
    len_field(1, &packed(&[5, 6]), &mut exemplar);
    exemplar.push(2 << 3 | 1);
    exemplar.extend_from_slice(&1.5f64.to_le_bytes());
    len_field(4, &exemplar, &mut ts);
    let mut meta = Vec::new();
    meta.push(1 << 3);
    varint(1, &mut meta);
    meta.push(3 << 3);
    varint(7, &mut meta);
    meta.push(4 << 3);
    varint(8, &mut meta);
    len_field(5, &meta, &mut ts);
    ts.push(6 << 3); // created_timestamp of the experimental period: the start of every sample
    varint(500, &mut ts);
    let got = decode_write_request_v2(&snappy(&v2_raw(&symbols, &[ts]))).unwrap();
    let s = &got.series[0];
    assert_eq!(s.labels.to_string(), r#"{__name__="http_requests_total", job="api"}"#);
    assert_eq!(s.samples, vec![Sample::new(1000, 7.0)]);
    assert_eq!(s.start_timestamps, vec![(1000, 500)]);
    assert_eq!(s.exemplars, vec![Exemplar { labels: Labels::from_pairs([("trace_id", "abc")]), t: 0, v: 1.5 }]);
    assert_eq!(
        got.metadata,
        vec![MetricMetadata {
            metric_family_name: "http_requests_total".into(),
            metric_type: MetricType::Counter,
            help: "Requests.".into(),
            unit: "requests".into(),
        }]
    );
}

#[test]
fn v2_start_timestamps_per_sample_win_over_the_series_created_timestamp() {
    let symbols = ["", "__name__", "c_total"];
    let mut ts = Vec::new();
    len_field(1, &packed(&[1, 2]), &mut ts);
    for (t, start) in [(1000u64, 0u64), (2000, 1500)] {
        let mut sample = Vec::new();
        sample.push(1 << 3 | 1);
        sample.extend_from_slice(&1.0f64.to_le_bytes());
        sample.push(2 << 3);
        varint(t, &mut sample);
        if start != 0 {
            sample.push(3 << 3); // start_timestamp
            varint(start, &mut sample);
        }
        len_field(2, &sample, &mut ts);
    }
    let mut with_created = ts.clone();
    with_created.push(6 << 3);
    varint(900, &mut with_created);
    let got = decode_write_request_v2(&snappy(&v2_raw(&symbols, &[ts, with_created]))).unwrap();
    assert_eq!(got.series[0].start_timestamps, vec![(2000, 1500)], "0 is none");
    assert_eq!(got.series[1].start_timestamps, vec![(1000, 900), (2000, 1500)]);
}

#[test]
fn start_timestamps_round_trip_through_v2_and_are_dropped_by_v1() {
    let mut req = histogram_request();
    let floats = req.series.iter_mut().find(|s| !s.samples.is_empty()).unwrap();
    floats.start_timestamps = floats.samples.iter().map(|s| (s.t, s.t - 10_000)).collect();
    let hists = req.series.iter_mut().find(|s| !s.histograms.is_empty()).unwrap();
    hists.start_timestamps = hists.histograms.iter().map(|h| (h.t, -1)).collect();
    let back = decode_write_request_v2(&encode_write_request_v2(&req)).unwrap();
    let starts = |r: &WriteRequest| r.series.iter().map(|s| s.start_timestamps.clone()).collect::<Vec<_>>();
    assert_eq!(starts(&back), starts(&req));
    let v1 = decode_write_request(&encode_write_request(&req)).unwrap();
    assert!(v1.series.iter().all(|s| s.start_timestamps.is_empty()));
}

#[test]
fn v2_metadata_is_per_family() {
    let mut req = WriteRequest {
        series: ["rpc_seconds_bucket", "rpc_seconds_sum", "rpc_seconds_count"]
            .iter()
            .map(|n| TimeSeries {
                labels: Labels::from_pairs([("__name__", *n)]),
                samples: vec![Sample::new(1, 1.0)],
                ..TimeSeries::default()
            })
            .collect(),
        metadata: vec![],
    };
    req.metadata.push(MetricMetadata {
        metric_family_name: "rpc_seconds".into(),
        metric_type: MetricType::Histogram,
        help: "RPC latency.".into(),
        unit: "seconds".into(),
    });
    let back = decode_write_request_v2(&encode_write_request_v2(&req)).unwrap();
    assert_eq!(back.metadata, req.metadata);
}

#[test]
fn v2_refuses_bad_symbol_references() {
    let check = |labels_refs: &[u64], expect: &str| {
        let mut ts = Vec::new();
        len_field(1, &packed(labels_refs), &mut ts);
        let err = decode_write_request_v2(&snappy(&v2_raw(&["", "__name__", "up"], &[ts]))).unwrap_err().to_string();
        assert!(err.contains(expect), "expected {expect:?} in {err}");
    };
    check(&[1, 2, 3, 2], "symbol reference 3 is out of range: the request has 3 symbols");
    check(&[1, 2, 1], "labels_refs has 3 entries");
    check(&[2, 2], "has no metric name");
    check(&[1, 2, 1, 2], "duplicate label name");
}

#[test]
fn v2_refuses_garbled_and_truncated_input_naming_the_v2_message() {
    let raw = to_proto_v2(&histogram_request()).encode_to_vec();
    for cut in 1..raw.len() {
        if let Err(WireError::Protobuf { message, .. }) = decode_write_request_v2(&snappy(&raw[..cut])) {
            assert_eq!(message, "io.prometheus.write.v2.Request");
        }
    }
    let err = decode_write_request_v2(&snappy(b"\x2a\xff\xff\xff\x0f garbage")).unwrap_err();
    assert!(err.to_string().contains("io.prometheus.write.v2.Request"), "{err}");
    let body = encode_write_request_v2(&histogram_request());
    for cut in 0..body.len() {
        assert!(decode_write_request_v2(&body[..cut]).is_err(), "truncated snappy at {cut} decoded");
    }
    let err = decode_write_request_v2_with_limit(&body, 16).unwrap_err();
    assert!(matches!(err, WireError::BodyTooLarge { limit: 16, .. }), "{err}");
}

#[test]
fn negotiates_the_message_as_prometheus_3_does() {
    let check =
        |ct: Option<&str>, enc: Option<&str>, expect: Result<ProtoMessage, &str>| match (negotiate(ct, enc), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{ct:?}"),
            (Err(e), Err(want)) => {
                assert!(matches!(e, WireError::UnsupportedMediaType(_)));
                assert!(e.to_string().contains(want), "expected {want:?} in {e}");
            }
            (got, want) => panic!("{ct:?} {enc:?}: got {got:?}, want {want:?}"),
        };
    use ProtoMessage::{V1, V2};
    check(None, None, Ok(V1));
    check(Some(""), Some(""), Ok(V1));
    check(Some("application/x-protobuf"), Some("snappy"), Ok(V1));
    check(Some(" application/x-protobuf "), Some("SNAPPY"), Ok(V1));
    check(Some("application/x-protobuf;proto=prometheus.WriteRequest"), None, Ok(V1));
    check(Some(CONTENT_TYPE_V2), Some("snappy"), Ok(V2));
    check(Some("application/x-protobuf;charset=utf-8;proto=io.prometheus.write.v2.Request"), None, Ok(V2));
    // Parameters are not trimmed, as in Prometheus: " proto" is another parameter.
    check(Some("application/x-protobuf; proto=io.prometheus.write.v2.Request"), None, Ok(V1));
    check(Some("application/json"), None, Err("expected application/x-protobuf as the first (media) part"));
    check(Some("application/x-protobuf;proto"), None, Err("expected parameters to be key-values"));
    check(
        Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
        None,
        Err("unknown remote write protobuf message io.prometheus.write.v3.Request"),
    );
    check(Some(CONTENT_TYPE_V2), Some("zstd"), Err("zstd encoding (compression) is not accepted"));
}
