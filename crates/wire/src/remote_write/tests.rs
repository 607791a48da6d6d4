use super::*;
use osprey_model::{Exemplar, MetricMetadata, Sample, TimeSeries};
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
            },
            TimeSeries {
                labels: Labels::from_pairs([("__name__", "up"), ("instance", "a:9100")]),
                samples: vec![Sample::new(-5, 1.0)],
                exemplars: vec![],
                histograms: vec![],
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
fn rejects_native_histograms_clearly() {
    let mut ts = series_raw(&[("__name__", "latency")], &[]);
    let mut h = Vec::new();
    h.push(15 << 3);
    varint(1000, &mut h);
    len_field(4, &h, &mut ts);
    let err = decode_write_request(&snappy(&request_raw(&[ts]))).unwrap_err();
    assert!(matches!(err, WireError::NativeHistogramsUnsupported { count: 1, .. }), "{err}");
    assert!(err.to_string().contains("send_native_histograms: false"));
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
    let series = (labels, samples, exemplars).prop_map(|(labels, samples, exemplars)| TimeSeries {
        labels,
        samples,
        exemplars,
        histograms: Vec::new(),
    });
    proptest::collection::vec(series, 0..6).prop_map(|series| WriteRequest { series, metadata: Vec::new() })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_write_request(&body);
        let _ = decode_write_request(&snappy(&body));
    }

    /// Values compare by bit pattern (NaN payloads such as the staleness marker must survive),
    /// except that -0.0 becomes 0.0: proto3 omits fields equal to zero, as Prometheus's encoder does.
    #[test]
    fn round_trips_arbitrary_valid_requests(req in arb_request()) {
        let bits = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
        let back = decode_write_request(&encode_write_request(&req)).unwrap();
        prop_assert_eq!(back.series.len(), req.series.len());
        for (a, b) in back.series.iter().zip(&req.series) {
            prop_assert_eq!(&a.labels, &b.labels);
            let exemplars = |s: &TimeSeries| s.exemplars.iter().map(|e| (e.labels.clone(), e.t, bits(e.v))).collect::<Vec<_>>();
            let samples = |s: &TimeSeries| s.samples.iter().map(|x| (x.t, bits(x.v))).collect::<Vec<_>>();
            prop_assert_eq!(exemplars(a), exemplars(b));
            prop_assert_eq!(samples(a), samples(b));
        }
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
}
