//! The manager against real HTTP servers on 127.0.0.1 and a recording appender.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::routing::get;
use osprey_model::{is_stale_nan, AppendSummary, MetricsAppender, StorageError, TenantId, WriteRequest};
use osprey_wire::exposition::SCRAPE_ACCEPT_HEADER;
use parking_lot::Mutex;

use super::*;
use crate::TargetHealth;

/// Records every batch it is given.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<(TenantId, WriteRequest)>>,
}

impl MetricsAppender for Recorder {
    fn append(&self, tenant: &TenantId, request: WriteRequest) -> Result<AppendSummary, StorageError> {
        self.batches.lock().push((tenant.clone(), request));
        Ok(AppendSummary::default())
    }
}

impl Recorder {
    /// `name{labels} value` lines of every series in batch `i`, sorted; markers as `STALE`.
    fn batch(&self, i: usize) -> Vec<String> {
        let batches = self.batches.lock();
        let mut lines: Vec<String> = batches[i]
            .1
            .series
            .iter()
            .map(|s| {
                let v = s.samples[0].v;
                let v = if is_stale_nan(v) { "STALE".to_string() } else { v.to_string() };
                format!("{} {v}", s.labels)
            })
            .collect();
        lines.sort();
        lines
    }

    fn len(&self) -> usize {
        self.batches.lock().len()
    }

    /// Waits (bounded) for a batch after `from` that satisfies `pred`; returns its index.
    async fn wait_for(&self, from: usize, pred: impl Fn(&[String]) -> bool) -> usize {
        for _ in 0..200 {
            for i in from..self.len() {
                if pred(&self.batch(i)) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no matching batch after {from}; have {} batches", self.len());
    }
}

/// A metrics server on an ephemeral port that records the request headers it gets.
struct Server {
    address: String,
    headers: Arc<Mutex<Option<HeaderMap>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `body` as the classic text format, gzip-compressed when `gzip`.
    async fn start(body: &'static str, gzip: bool) -> Server {
        let headers = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&headers);
        let encoded = if gzip {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, body.as_bytes()).unwrap();
            encoder.finish().unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        let encoding = if gzip { "gzip" } else { "identity" };
        let app = axum::Router::new().route(
            "/metrics",
            get(move |h: HeaderMap| {
                *seen.lock() = Some(h);
                let encoded = encoded.clone();
                async move {
                    let headers = [
                        (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
                        (header::CONTENT_ENCODING, encoding),
                    ];
                    (headers, encoded)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Server { address, headers, stop: Some(stop), task }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

fn configs(yaml: &str) -> Vec<ScrapeConfig> {
    serde_norway::from_str(yaml).unwrap()
}

/// A clock that moves one second forward every time it is read.
struct SteppingClock(std::sync::atomic::AtomicI64);

impl Clock for SteppingClock {
    fn now(&self) -> osprey_model::Timestamp {
        self.0.fetch_add(1000, std::sync::atomic::Ordering::SeqCst)
    }
}

fn manager(recorder: &Arc<Recorder>) -> ScrapeManager {
    let appender: Arc<dyn MetricsAppender> = Arc::clone(recorder) as Arc<dyn MetricsAppender>;
    let clock = Arc::new(SteppingClock(std::sync::atomic::AtomicI64::new(1_000_000)));
    ScrapeManager::with_clock(appender, TenantId::default_tenant(), clock).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_target_then_marks_everything_stale_when_it_dies_and_goes_away() {
    let server = Server::start("# TYPE a gauge\na 1\nb{x=\"y\"} 2\n", false).await;
    let recorder = Arc::new(Recorder::default());
    let scraper = manager(&recorder);
    let address = server.address.clone();
    let yaml = format!(
        "- job_name: test\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n  authorization: {{credentials: secret}}\n  static_configs: [{{targets: ['{address}'], labels: {{env: dev}}}}]\n"
    );
    scraper.apply_config(configs(&yaml)).await.unwrap();

    let up = format!(r#"{{__name__="up", env="dev", instance="{address}", job="test"}} 1"#);
    let first = recorder.wait_for(0, |b| b.contains(&up)).await;
    let lines = recorder.batch(first);
    assert!(
        lines.contains(&format!(r#"{{__name__="a", env="dev", instance="{address}", job="test"}} 1"#)),
        "{lines:?}"
    );
    assert!(lines.contains(&format!(r#"{{__name__="b", env="dev", instance="{address}", job="test", x="y"}} 2"#)));
    assert!(lines
        .contains(&format!(r#"{{__name__="scrape_samples_scraped", env="dev", instance="{address}", job="test"}} 2"#)));
    assert_eq!(recorder.batches.lock()[first].0, TenantId::default_tenant());
    assert_eq!(recorder.batches.lock()[first].1.metadata[0].metric_family_name, "a");

    let headers = server.headers.lock().clone().unwrap();
    assert_eq!(headers[header::ACCEPT], SCRAPE_ACCEPT_HEADER);
    assert_eq!(headers[header::AUTHORIZATION], "Bearer secret");
    assert!(headers[header::ACCEPT_ENCODING].to_str().unwrap().contains("gzip"));
    assert_eq!(headers["x-prometheus-scrape-timeout-seconds"], "0.15");

    let status = &scraper.targets()[0];
    assert_eq!(status.health, TargetHealth::Up);
    assert_eq!(status.scrape_pool, "test");
    assert_eq!(status.scrape_url, format!("http://{address}/metrics"));
    assert_eq!(status.labels.to_string(), format!(r#"{{env="dev", instance="{address}", job="test"}}"#));
    assert_eq!(status.discovered_labels.get("__address__"), Some(address.as_str()));
    assert_eq!(status.scrape_interval, Duration::from_millis(200));
    assert!(status.last_scrape.is_some());
    assert_eq!(status.last_error, "");

    server.stop().await;
    let down = format!(r#"{{__name__="up", env="dev", instance="{address}", job="test"}} 0"#);
    let failed = recorder.wait_for(first, |b| b.contains(&down)).await;
    {
        // Every series of the failed scrape, markers included, has that scrape's timestamp,
        // which is later than the samples it marks stale.
        let batches = recorder.batches.lock();
        let times: Vec<i64> = batches[failed].1.series.iter().map(|s| s.samples[0].t).collect();
        assert!(times.iter().all(|&t| t == times[0]), "{times:?}");
        assert!(times[0] > batches[first].1.series[0].samples[0].t);
        assert!(times[0] < 10_000_000, "timestamps come from the injected clock: {}", times[0]);
    }
    let lines = recorder.batch(failed);
    assert!(
        lines.contains(&format!(r#"{{__name__="a", env="dev", instance="{address}", job="test"}} STALE"#)),
        "{lines:?}"
    );
    assert!(lines.contains(&format!(r#"{{__name__="b", env="dev", instance="{address}", job="test", x="y"}} STALE"#)));
    let status = &scraper.targets()[0];
    assert_eq!(status.health, TargetHealth::Down);
    assert!(status.last_error.contains(&address), "{}", status.last_error);

    // Removing the job stops the loop and marks its synthetic series stale before returning.
    scraper.apply_config(Vec::new()).await.unwrap();
    assert!(scraper.targets().is_empty());
    let last = recorder.batch(recorder.len() - 1);
    assert_eq!(last.len(), 5, "{last:?}");
    assert!(last.iter().all(|l| l.ends_with("STALE")), "{last:?}");
    scraper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_file_sd_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(&file, r#"[{"targets": ["127.0.0.1:1"], "labels": {"team": "a"}}]"#).unwrap();
    let recorder = Arc::new(Recorder::default());
    let scraper = manager(&recorder);
    let yaml = format!(
        "- job_name: files\n  scrape_interval: 1h\n  file_sd_configs: [{{files: ['{}/*.json'], refresh_interval: 50ms}}]\n",
        dir.path().display()
    );
    scraper.apply_config(configs(&yaml)).await.unwrap();
    let targets = scraper.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].health, TargetHealth::Unknown);
    assert_eq!(targets[0].labels.get("team"), Some("a"));
    assert_eq!(targets[0].discovered_labels.get("__meta_filepath"), Some(file.display().to_string().as_str()));

    std::fs::write(&file, r#"[{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"team": "b"}}]"#).unwrap();
    let mut instances = Vec::new();
    for _ in 0..200 {
        instances = scraper.targets().iter().map(|t| t.labels.to_string()).collect();
        if instances.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        instances,
        [r#"{instance="127.0.0.1:1", job="files", team="b"}"#, r#"{instance="127.0.0.1:2", job="files", team="b"}"#]
    );
    scraper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_diffs_jobs_and_rejects_bad_configs_without_change() {
    let recorder = Arc::new(Recorder::default());
    let scraper = manager(&recorder);
    let two_jobs = "- job_name: a\n  scrape_interval: 1h\n  static_configs: [{targets: ['127.0.0.1:1']}]\n\
                    - job_name: b\n  scrape_interval: 1h\n  relabel_configs: [{source_labels: [__address__], regex: '.*:2', action: drop}]\n  static_configs: [{targets: ['127.0.0.1:1', '127.0.0.1:2']}]\n";
    scraper.apply_config(configs(two_jobs)).await.unwrap();
    let pools: Vec<String> = scraper.targets().into_iter().map(|t| t.scrape_pool).collect();
    assert_eq!(pools, ["a", "b"]);
    let dropped = scraper.dropped_targets();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].discovered_labels.get("__address__"), Some("127.0.0.1:2"));

    let err = scraper.apply_config(configs("- job_name: a\n- job_name: a\n")).await.unwrap_err();
    assert_eq!(err, ConfigError::DuplicateJob("a".into()));
    assert_eq!(scraper.targets().len(), 2, "a rejected config changes nothing");

    scraper
        .apply_config(configs("- job_name: b\n  scrape_interval: 1h\n  static_configs: [{targets: ['127.0.0.1:1']}]\n"))
        .await
        .unwrap();
    let pools: Vec<String> = scraper.targets().into_iter().map(|t| t.scrape_pool).collect();
    assert_eq!(pools, ["b"]);
    assert!(scraper.dropped_targets().is_empty());

    scraper.shutdown().await;
    assert!(scraper.targets().is_empty());
    scraper.apply_config(configs(two_jobs)).await.unwrap();
    assert!(scraper.targets().is_empty(), "a shut-down manager stays down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_gzip_pages_with_basic_auth_from_a_file() {
    let server = Server::start("zipped 42\n", true).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let recorder = Arc::new(Recorder::default());
    let scraper = manager(&recorder);
    let yaml = format!(
        "- job_name: gz\n  scrape_interval: 100ms\n  basic_auth: {{username: me, password_file: '{}'}}\n  static_configs: [{{targets: ['{}']}}]\n",
        password_file.display(),
        server.address
    );
    scraper.apply_config(configs(&yaml)).await.unwrap();
    let want = format!(r#"{{__name__="zipped", instance="{}", job="gz"}} 42"#, server.address);
    recorder.wait_for(0, |b| b.contains(&want)).await;
    let headers = server.headers.lock().clone().unwrap();
    // base64("me:s3cret"): the file's trailing newline is not part of the password.
    assert_eq!(headers[header::AUTHORIZATION], "Basic bWU6czNjcmV0");
    scraper.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_are_checked_when_the_config_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("ca.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let scraper = manager(&Arc::new(Recorder::default()));
    for (tls, want) in [
        (format!("{{ca_file: '{}'}}", missing.display()), "cannot read"),
        (format!("{{ca_file: '{}'}}", garbage.display()), "holds no PEM certificate"),
        (
            format!("{{cert_file: '{}', key_file: '{}'}}", garbage.display(), garbage.display()),
            "are not a PEM certificate and key",
        ),
    ] {
        let yaml = format!("- job_name: tls\n  scheme: https\n  tls_config: {tls}\n");
        let err = scraper.apply_config(configs(&yaml)).await.unwrap_err().to_string();
        assert!(err.starts_with("job \"tls\": cannot set up the HTTP client: "), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let yaml =
        "- job_name: tls\n  scheme: https\n  tls_config: {insecure_skip_verify: true}\n  follow_redirects: false\n";
    scraper.apply_config(configs(yaml)).await.unwrap();
    scraper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_unless_disabled() {
    let app = axum::Router::new()
        .route("/metrics", get(|| async { axum::response::Redirect::temporary("/real") }))
        .route("/real", get(|| async { "redirected 1\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let recorder = Arc::new(Recorder::default());
    let scraper = manager(&recorder);
    let job = |follow: bool| {
        format!(
            "- job_name: r\n  scrape_interval: 100ms\n  follow_redirects: {follow}\n  static_configs: [{{targets: ['{address}']}}]\n"
        )
    };
    scraper.apply_config(configs(&job(true))).await.unwrap();
    let want = format!(r#"{{__name__="redirected", instance="{address}", job="r"}} 1"#);
    recorder.wait_for(0, |b| b.contains(&want)).await;

    scraper.apply_config(configs(&job(false))).await.unwrap();
    for _ in 0..200 {
        if scraper.targets()[0].last_error.contains("307") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(scraper.targets()[0].last_error, "server returned HTTP status 307 Temporary Redirect");
    scraper.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_pages_fail_the_scrape() {
    let server = Server::start("a_metric_line_that_is_long 1\n", true).await;
    let recorder = Arc::new(Recorder::default());
    let scraper = manager(&recorder);
    let yaml = format!(
        "- job_name: big\n  scrape_interval: 100ms\n  body_size_limit: 16B\n  static_configs: [{{targets: ['{}']}}]\n",
        server.address
    );
    scraper.apply_config(configs(&yaml)).await.unwrap();
    let down = format!(r#"{{__name__="up", instance="{}", job="big"}} 0"#, server.address);
    recorder.wait_for(0, |b| b.contains(&down)).await;
    assert_eq!(
        scraper.targets()[0].last_error,
        "body size limit exceeded: the page is larger than body_size_limit (16 bytes)"
    );
    scraper.shutdown().await;
    server.stop().await;
}
