//! Test harness: runs the real `osprey` binary on 127.0.0.1 with a temp data dir, and real
//! peers (Prometheus, node exporter, Python clients) when they are installed. Every process
//! started here is killed when its guard drops.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use osprey_model::{Labels, Sample, TimeSeries, WriteRequest};
use serde_json::Value;

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        unsafe_free_sigterm(self.child.id());
        wait_timeout(&mut self.child, Duration::from_secs(30)).unwrap_or_else(|| {
            let _ = self.child.kill();
            self.child.wait().unwrap()
        })
    }
}

fn unsafe_free_sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `osprey` binary, serving on a free port with its own data dir.
pub struct Osprey {
    pub proc: Proc,
    pub port: u16,
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn osprey_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_osprey"))
}

impl Osprey {
    pub fn start(extra_args: &[&str]) -> Osprey {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut o = Osprey::start_in(&data_dir, extra_args);
        o._tmp = Some(tmp);
        o
    }

    /// Starts on an existing data dir (a restart), keeping the same port when given.
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Osprey {
        Osprey::start_on(free_port(), data_dir, extra_args)
    }

    pub fn start_on(port: u16, data_dir: &Path, extra_args: &[&str]) -> Osprey {
        let log = std::fs::File::create(data_dir.with_extension(format!("{port}.log"))).ok();
        let mut cmd = Command::new(osprey_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .env("OSPREY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        let child = cmd.spawn().expect("start osprey");
        let o = Osprey {
            proc: Proc { child, name: "osprey".into() },
            port,
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _tmp: None,
        };
        o.wait_ready();
        o
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension(format!("{}.log", self.port))).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = client().get(self.url("/ready")).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("osprey did not become ready within 60s; log:\n{}", self.log());
    }

    /// Kills with SIGKILL and starts again on the same data dir and port.
    pub fn kill9_and_restart(mut self) -> Osprey {
        self.proc.kill9();
        let tmp = self._tmp.take();
        let args: Vec<String> = self.extra_args.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut o = Osprey::start_on(self.port, &self.data_dir, &args);
        o._tmp = tmp;
        o
    }

    pub fn remote_write(&self, tenant: Option<&str>, req: &WriteRequest) -> reqwest::blocking::Response {
        self.post_write(tenant, osprey_wire::remote_write::encode_write_request(req))
    }

    pub fn post_write(&self, tenant: Option<&str>, body: Vec<u8>) -> reqwest::blocking::Response {
        let mut r = client()
            .post(self.url("/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if let Some(t) = tenant {
            r = r.header("X-Scope-OrgID", t);
        }
        r.send().expect("remote write request")
    }

    /// GET an API path with query parameters; returns (status, JSON body).
    pub fn get(&self, tenant: Option<&str>, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let mut r = client().get(self.url(path)).query(params);
        if let Some(t) = tenant {
            r = r.header("X-Scope-OrgID", t);
        }
        let resp = r.send().expect("api request");
        let status = resp.status().as_u16();
        let body = resp.text().unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// The value of the first series an instant query at the current time returns.
    pub fn latest_value(&self, q: &str) -> Option<String> {
        let now = format!("{:.3}", now_ms() as f64 / 1000.0);
        self.query(None, q, &now).first().and_then(|s| s["value"][1].as_str()).map(str::to_string)
    }

    /// The `data.result` of a successful instant query.
    pub fn query(&self, tenant: Option<&str>, q: &str, time: &str) -> Vec<Value> {
        let (status, body) = self.get(tenant, "/api/v1/query", &[("query", q), ("time", time)]);
        assert_eq!(status, 200, "query {q} failed: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// `n` series named `name` with `samples` samples each, 15 s apart from `start_ms`.
pub fn series_batch(name: &str, n: usize, samples: usize, start_ms: i64) -> WriteRequest {
    WriteRequest {
        series: (0..n)
            .map(|i| TimeSeries {
                labels: Labels::from_pairs([
                    ("__name__", name.to_string()),
                    ("instance", format!("host-{i}")),
                    ("job", "test".into()),
                ]),
                samples: (0..samples)
                    .map(|j| Sample::new(start_ms + j as i64 * 15_000, (i * 1000 + j) as f64))
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
                start_timestamps: Vec::new(),
            })
            .collect(),
        metadata: vec![],
    }
}

/// Polls `f` until it returns Some, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a peer program is installed; tests that need it say they were skipped otherwise.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::File::create(path).unwrap().write_all(text.as_bytes()).unwrap();
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Requires a peer program: in CI (where `make test` installed it) its absence is a failure;
/// elsewhere the test prints that it was skipped and why.
pub fn require(program: &str) -> bool {
    if have(program) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is not installed; `make test` installs it (scripts/install-test-deps.sh)");
    }
    eprintln!("skipped: {program} is not installed (run `make test` to install test peers)");
    false
}

/// Requires Python modules (e.g. `"opentelemetry.sdk, prometheus_client"`), like [`require`].
pub fn require_python(modules: &str) -> bool {
    let ok = Command::new("python3").args(["-c", &format!("import {modules}")]).status().is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("python modules {modules} are not installed; `make test` installs them (scripts/install-test-deps.sh)");
    }
    eprintln!("skipped: python modules {modules} are not installed (run `make test` to install them)");
    false
}

/// Starts `prometheus-node-exporter` on a free loopback port, with slow or host-specific
/// collectors off so that its scrapes are quick and stable.
pub fn start_node_exporter() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--no-collector.systemd", "--no-collector.hwmon", "--no-collector.thermal_zone", "--no-collector.rapl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node exporter");
    let p = Proc { child, name: "node-exporter".into() };
    let ok = eventually(Duration::from_secs(20), || {
        client().get(format!("http://127.0.0.1:{port}/metrics")).send().ok().filter(|r| r.status().is_success())
    });
    assert!(ok.is_some(), "node exporter did not start");
    (p, port)
}
