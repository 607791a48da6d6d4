//! Status, health and self-metrics endpoints, with Prometheus's JSON shapes.

mod common;

use common::*;
use serde_json::json;

#[test]
fn status_endpoints_answer_like_prometheus() {
    // Every query counts as slow here, so each one is logged; `--set` reaches any option.
    let osprey = Osprey::start(&["--set", "query.slow_query_log_threshold=0s"]);
    assert_eq!(
        osprey.remote_write(None, &series_batch("status_metric", 3, 2, 1_700_000_000_000)).status().as_u16(),
        204
    );

    let (status, body) = osprey.get(None, "/api/v1/status/buildinfo", &[]);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["version"], json!(env!("CARGO_PKG_VERSION")));

    let (_, body) = osprey.get(None, "/api/v1/status/tsdb", &[]);
    assert_eq!(body["data"]["headStats"]["numSeries"], json!(3));
    assert_eq!(body["data"]["seriesCountByMetricName"][0], json!({"name": "status_metric", "value": 3}));
    // Another tenant's head is empty.
    let (_, other) = osprey.get(Some("someone-else"), "/api/v1/status/tsdb", &[]);
    assert_eq!(other["data"]["headStats"]["numSeries"], json!(0));

    let (_, body) = osprey.get(None, "/api/v1/status/runtimeinfo", &[]);
    assert_eq!(body["data"]["storageRetention"], json!("15d"));
    let (_, body) = osprey.get(None, "/api/v1/status/flags", &[]);
    assert_eq!(body["data"]["storage.retention"], json!("15d"));
    let (_, body) = osprey.get(None, "/api/v1/targets", &[]);
    assert_eq!(body["data"]["activeTargets"], json!([]));

    let (status, body) = osprey.get(None, "/api/v1/format_query", &[("query", "sum(rate(x[5m]))by(job)")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!("sum by (job) (rate(x[5m]))"));
    let (status, body) = osprey.get(None, "/api/v1/query", &[("query", "sum(")]);
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], json!("bad_data"));
    let (status, body) =
        osprey.get(None, "/api/v1/query_range", &[("query", "up"), ("start", "10"), ("end", "5"), ("step", "1")]);
    assert_eq!((status, body["error"].as_str()), (400, Some("end timestamp must not be before start time")));
    let (status, body) = osprey.get(None, "/api/v1/series", &[]);
    assert_eq!((status, body["error"].as_str()), (400, Some("no match[] parameter provided")));

    let metrics = client().get(osprey.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("osprey_ingest_samples_total{protocol=\"remote_write\"} 6"), "{metrics}");
    assert!(metrics.contains("osprey_tsdb_head_series 3"), "{metrics}");
    assert!(metrics.contains("osprey_query_duration_seconds_count"), "{metrics}");
    assert_eq!(client().get(osprey.url("/health")).send().unwrap().status().as_u16(), 200);
    assert!(osprey.log().contains("slow query"), "log:\n{}", osprey.log());
    assert!(osprey.log().contains("query=sum("), "the slow query's text is logged");
}
