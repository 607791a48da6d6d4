//! A server process this program started: its temporary directory, readiness, memory
//! readings and shutdown.
//!
//! Every process is stopped on every path: explicitly after its run, from `Drop` on errors and
//! Ctrl-C (the caller drops the run when the signal arrives), and by the kernel
//! (`PR_SET_PDEATHSIG`) if this program itself is killed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

/// How long a server may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often resident memory is sampled during a run.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often [`Server::watch`] checks that the server is still alive.
const LIVENESS_EVERY: Duration = Duration::from_millis(500);

/// Where a server keeps its files: `data` is what gets measured; the log and any config
/// live beside it so they are never counted.
pub struct Workspace {
    root: TempDir,
}

impl Workspace {
    pub fn new(peer: &str) -> anyhow::Result<Workspace> {
        let root = tempfile::Builder::new()
            .prefix(&format!("osprey-bench-{peer}-"))
            .tempdir()
            .context("cannot create a temporary directory: check that $TMPDIR is writable")?;
        std::fs::create_dir(root.path().join("data")).context("cannot create the data directory")?;
        Ok(Workspace { root })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

pub struct Server {
    child: Child,
    pub base_url: String,
    log: PathBuf,
    rss_max: Arc<AtomicU64>,
    hwm: u64,
    sampler: tokio::task::JoinHandle<()>,
    /// Dropped after the process is stopped (fields drop after `Drop::drop` runs).
    pub workspace: Workspace,
}

/// Binds port 0 and releases it: the port is free unless another program grabs it within
/// the next moment, which on a developer machine it does not.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts `command` (output to a log file in the workspace) and waits until `GET
    /// <base_url><ready_path>` answers 200.
    pub async fn start(
        mut command: Command,
        workspace: Workspace,
        port: u16,
        ready_path: &str,
        client: &reqwest::Client,
    ) -> anyhow::Result<Server> {
        let log = workspace.file("server.log");
        let out = File::create(&log).context("cannot create the server log")?;
        command.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe. PDEATHSIG fires when the spawning thread exits; servers are
        // spawned from the main thread, which lives as long as this program.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().with_context(|| format!("cannot start {program}"))?;
        let pid = child.id();
        let rss_max = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn(sample_rss(pid, rss_max.clone()));
        let mut server =
            Server { child, base_url: format!("http://127.0.0.1:{port}"), log, rss_max, hwm: 0, sampler, workspace };
        server.wait_ready(ready_path, client).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, ready_path: &str, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}{ready_path}", self.base_url);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("exited with {status} before becoming ready; its log ends with:\n{}", self.log_tail());
            }
            if let Ok(response) = client.get(&url).timeout(Duration::from_secs(2)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("not ready at {url} after {READY_TIMEOUT:?}; its log ends with:\n{}", self.log_tail())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Peak resident set size so far (VmHWM), remembered across the process's exit.
    pub fn peak_rss_hwm(&mut self) -> u64 {
        if self.is_running() {
            if let Some(hwm) = read_status_kib(self.pid(), "VmHWM:") {
                self.hwm = self.hwm.max(hwm * 1024);
            }
        }
        self.hwm
    }

    /// The largest VmRSS seen by sampling every 100 ms.
    pub fn peak_rss_sampled(&self) -> u64 {
        self.rss_max.load(Ordering::Relaxed)
    }

    /// Starts both peak readings afresh from the current resident size, so that a later phase
    /// (queries after loading) is measured on its own. Returns false if the kernel refused to
    /// reset VmHWM (`/proc/<pid>/clear_refs`), which then still includes the earlier peak.
    pub fn reset_peak_rss(&mut self) -> bool {
        let now = read_status_kib(self.pid(), "VmRSS:").map_or(0, |kib| kib * 1024);
        self.rss_max.store(now, Ordering::Relaxed);
        self.hwm = 0;
        // "5" resets the peak resident set size (proc(5)).
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// Runs `work` (which may borrow the server) while checking every 500 ms that the server
    /// is alive; None if it exited.
    pub async fn watch<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return Some(output),
                _ = tokio::time::sleep(LIVENESS_EVERY) => {
                    if !is_alive(self.pid()) {
                        return None;
                    }
                }
            }
        }
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] for a clean exit before SIGKILL.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.peak_rss_hwm();
        self.sampler.abort();
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = libc::pid_t::try_from(self.pid()).context("process id out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our unreaped child, so
        // it cannot have been recycled for another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        bail!("did not exit within {STOP_TIMEOUT:?} of SIGTERM and was killed ({status})")
    }

    /// The last lines of the server's output, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 2_000)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("bench: stopping process {}: {e:#}", self.pid());
        }
    }
}

async fn sample_rss(pid: u32, max: Arc<AtomicU64>) {
    let mut ticker = tokio::time::interval(RSS_SAMPLE_EVERY);
    loop {
        ticker.tick().await;
        match read_status_kib(pid, "VmRSS:") {
            Some(kib) => {
                max.fetch_max(kib * 1024, Ordering::Relaxed);
            }
            None => return,
        }
    }
}

/// CPU time (user + system) the process has used, from /proc/<pid>/stat; None once gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks_per_second())
}

/// utime + stime, the 12th and 13th fields after the parenthesised command name.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Whether `pid` runs: our servers are unreaped children, so once they exit they stay
/// zombies (state `Z`) until [`Server::stop`] reaps them.
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// A `kB` field of /proc/<pid>/status, or None once the process is gone.
fn read_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

fn tail(path: &Path, max_bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(it printed nothing)".to_string(),
        Ok(text) => text,
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Sum of the sizes of the regular files under `dir` (like `du --apparent-size`), skipping
/// directories for which `skip` is true.
pub fn dir_size(dir: &Path, skip: &dyn Fn(&Path) -> bool) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let path = entry.path();
        if meta.is_dir() {
            if !skip(&path) {
                total += dir_size(&path, skip)?;
            }
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_fields() {
        let status = "Name:\tprometheus\nVmPeak:\t 1000 kB\nVmHWM:\t  52340 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(52_340));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(51_200));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_a_command_name_with_spaces() {
        let stat = "42 (my server) S 1 42 42 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 8 0 1000";
        assert_eq!(parse_cpu_ticks(stat), Some(320));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn dir_size_sums_files_and_honours_skips() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("block/chunks")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("wal")).expect("mkdir");
        std::fs::write(dir.path().join("block/index"), [0u8; 100]).expect("write");
        std::fs::write(dir.path().join("block/chunks/000001"), [0u8; 1000]).expect("write");
        std::fs::write(dir.path().join("wal/00000000"), [0u8; 5000]).expect("write");
        assert_eq!(dir_size(dir.path(), &|_| false).expect("size"), 6100);
        let skip_wal = |p: &Path| p.file_name().is_some_and(|n| n == "wal");
        assert_eq!(dir_size(dir.path(), &skip_wal).expect("size"), 1100);
    }

    #[tokio::test]
    async fn a_process_that_exits_early_is_reported_with_its_log() {
        let workspace = Workspace::new("test").expect("workspace");
        let mut command = Command::new("sh");
        command.args(["-c", "echo cannot open storage >&2; exit 3"]);
        let port = free_port().expect("port");
        let client = reqwest::Client::new();
        let err = Server::start(command, workspace, port, "/ready", &client).await.err().expect("must fail");
        let message = format!("{err:#}");
        assert!(message.contains("exited with exit status: 3"), "{message}");
        assert!(message.contains("cannot open storage"), "{message}");
    }

    #[tokio::test]
    async fn stop_ends_a_running_process_and_keeps_its_peak_memory() {
        let workspace = Workspace::new("test").expect("workspace");
        let port = free_port().expect("port");
        // A server stand-in: answers readiness checks until told to stop.
        let mut command = Command::new("python3");
        command.args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"]);
        let client = reqwest::Client::new();
        let mut server = Server::start(command, workspace, port, "/", &client).await.expect("starts");
        assert!(server.is_running());
        let hwm = server.peak_rss_hwm();
        assert!(hwm > 0);
        assert!(server.reset_peak_rss(), "clear_refs refused");
        assert!(server.peak_rss_sampled() > 0 && server.peak_rss_sampled() <= hwm);
        let answered = server.watch(async { 7 }).await;
        assert_eq!(answered, Some(7));
        server.stop().expect("stops on SIGTERM");
        assert!(!server.is_running());
        assert!(server.peak_rss_hwm() > 0 && server.peak_rss_hwm() <= hwm);
        let never = server.watch(std::future::pending::<()>()).await;
        assert_eq!(never, None, "watch must notice that the server exited");
    }
}
