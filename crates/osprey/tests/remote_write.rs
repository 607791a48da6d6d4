//! Remote write into the real binary: round trip through the query API, bad input, tenants.

mod common;

use common::*;
use serde_json::json;

#[test]
fn written_samples_are_queryable_with_their_labels() {
    let osprey = Osprey::start(&[]);
    let t0 = 1_700_000_000_000;
    let resp = osprey.remote_write(None, &series_batch("rw_metric", 3, 10, t0));
    assert_eq!(resp.status().as_u16(), 204, "{}", resp.text().unwrap());

    let result = osprey.query(None, "rw_metric", &((t0 + 9 * 15_000) / 1000).to_string());
    assert_eq!(result.len(), 3);
    let first = &result[0];
    assert_eq!(first["metric"], json!({"__name__": "rw_metric", "instance": "host-0", "job": "test"}));
    assert_eq!(first["value"][1], json!("9"));

    let (status, body) = osprey.get(
        None,
        "/api/v1/query_range",
        &[("query", "rw_metric{instance=\"host-1\"}"), ("start", "1700000000"), ("end", "1700000135"), ("step", "15")],
    );
    assert_eq!(status, 200, "{body}");
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 10);
    assert_eq!(values[0], json!([1_700_000_000, "1000"]));

    let (_, series) =
        osprey.get(None, "/api/v1/series", &[("match[]", "rw_metric"), ("start", "1700000000"), ("end", "1700000200")]);
    assert_eq!(series["data"].as_array().unwrap().len(), 3);
    let (_, labels) = osprey.get(None, "/api/v1/labels", &[]);
    assert_eq!(labels["data"], json!(["__name__", "instance", "job"]));
    let (_, values) = osprey.get(None, "/api/v1/label/instance/values", &[]);
    assert_eq!(values["data"], json!(["host-0", "host-1", "host-2"]));
}

#[test]
fn bad_input_gets_a_clear_4xx_and_keeps_what_is_stored() {
    let osprey = Osprey::start(&[]);
    let t0 = 1_700_000_000_000;
    assert_eq!(osprey.remote_write(None, &series_batch("kept", 1, 5, t0)).status().as_u16(), 204);

    let good = osprey_wire::remote_write::encode_write_request(&series_batch("x", 2, 2, t0));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not snappy", b"definitely not snappy".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbled protobuf", snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap()),
        ("empty label name", {
            let mut req = series_batch("x", 1, 1, t0);
            req.series[0].labels = osprey_model::Labels::from_sorted(vec![
                osprey_model::Label::new("1bad", "v"),
                osprey_model::Label::new("__name__", "x"),
            ]);
            osprey_wire::remote_write::encode_write_request(&req)
        }),
    ];
    for (what, body) in cases {
        let resp = osprey.post_write(None, body);
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        assert!((400..500).contains(&status), "{what}: got {status} {text}");
        let parsed: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
        assert_eq!(parsed["status"], "error", "{what}");
        assert!(!parsed["error"].as_str().unwrap().is_empty(), "{what}");
    }
    // Still serving, and nothing stored was lost.
    let result = osprey.query(None, "count_over_time(kept[5m])", &((t0 + 60_000) / 1000).to_string());
    assert_eq!(result[0]["value"][1], json!("5"));
}

#[test]
fn tenants_never_see_each_others_series() {
    let osprey = Osprey::start(&[]);
    let t0 = 1_700_000_000_000;
    assert_eq!(osprey.remote_write(Some("team-a"), &series_batch("secret_a", 2, 3, t0)).status().as_u16(), 204);
    assert_eq!(osprey.remote_write(Some("team-b"), &series_batch("secret_b", 1, 3, t0)).status().as_u16(), 204);
    let at = ((t0 + 30_000) / 1000).to_string();
    assert_eq!(osprey.query(Some("team-a"), "secret_a", &at).len(), 2);
    assert_eq!(osprey.query(Some("team-b"), "secret_a", &at).len(), 0);
    assert_eq!(osprey.query(None, "secret_a", &at).len(), 0);
    let (_, names) = osprey.get(Some("team-b"), "/api/v1/label/__name__/values", &[]);
    assert_eq!(names["data"], json!(["secret_b"]));
    let (status, body) = osprey.get(Some("bad/tenant"), "/api/v1/labels", &[]);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let osprey = Osprey::start(&[]);
    let t0 = 1_700_000_000_000;
    for batch in 0..20 {
        let req = series_batch("durable", 50, 4, t0 + batch * 60_000);
        assert_eq!(osprey.remote_write(None, &req).status().as_u16(), 204);
    }
    let osprey = osprey.kill9_and_restart();
    let at = ((t0 + 20 * 60_000) / 1000).to_string();
    let result = osprey.query(None, "sum(count_over_time(durable[30m]))", &at);
    assert_eq!(result[0]["value"][1], json!("4000"), "log:\n{}", osprey.log());
}

/// The newest non-empty WAL segment of the default tenant.
fn newest_wal_segment(data_dir: &std::path::Path) -> std::path::PathBuf {
    let wal = data_dir.join("metrics/tenants/anonymous/wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap_or_else(|e| panic!("no WAL at {}: {e}", wal.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().chars().all(|c| c.is_ascii_digit()))
        .filter(|p| p.metadata().unwrap().len() > 0)
        .collect();
    segments.sort();
    segments.pop().expect("a non-empty WAL segment")
}

#[test]
fn a_torn_wal_tail_is_cut_and_reported_and_the_rest_is_kept() {
    let mut osprey = Osprey::start(&[]);
    let t0 = 1_700_000_000_000;
    for batch in 0..10 {
        let req = series_batch("torn", 5, 2, t0 + batch * 30_000);
        assert_eq!(osprey.remote_write(None, &req).status().as_u16(), 204);
    }
    osprey.proc.kill9();
    // Tear the last record as a crash in the middle of a write would.
    let segment = newest_wal_segment(&osprey.data_dir);
    let len = segment.metadata().unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 7).unwrap();

    let osprey = Osprey::start_on(osprey.port, &osprey.data_dir.clone(), &[]);
    let at = ((t0 + 10 * 30_000) / 1000).to_string();
    let result = osprey.query(None, "sum(count_over_time(torn[1h]))", &at);
    // The first nine batches are intact; the torn tenth is gone.
    assert_eq!(result[0]["value"][1], json!("90"), "log:\n{}", osprey.log());
    assert!(osprey.log().contains("bytes_dropped"), "the loss was not reported; log:\n{}", osprey.log());
    // And the repaired WAL takes new writes.
    assert_eq!(osprey.remote_write(None, &series_batch("torn", 5, 1, t0 + 11 * 30_000)).status().as_u16(), 204);
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    let osprey = Osprey::start(&[]);
    let resp = osprey.post_write(None, vec![0u8; 33 << 20]);
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(osprey.remote_write(None, &series_batch("after", 1, 1, 1_700_000_000_000)).status().as_u16(), 204);
}

#[test]
fn sigterm_shuts_down_cleanly_and_keeps_everything() {
    let mut osprey = Osprey::start(&[]);
    let t0 = 1_700_000_000_000;
    assert_eq!(osprey.remote_write(None, &series_batch("graceful", 10, 3, t0)).status().as_u16(), 204);
    let status = osprey.proc.sigterm();
    assert!(status.success(), "exit status {status}; log:\n{}", osprey.log());
    let osprey = Osprey::start_on(osprey.port, &osprey.data_dir.clone(), &[]);
    let result = osprey.query(None, "sum(count_over_time(graceful[1h]))", &((t0 + 60_000) / 1000).to_string());
    assert_eq!(result[0]["value"][1], json!("30"));
}
