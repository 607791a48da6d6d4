//! Sends a pre-encoded workload: one task per shard, each shard's requests strictly in order,
//! retrying 429 and 5xx answers (and connection failures) with exponential backoff the way
//! Prometheus's queue manager does, and dropping requests refused with another 4xx.
//!
//! Data from the past is sent in phases of data time: every sender finishes a phase before any
//! starts the next, so no sender runs ahead of the others by more than a phase. Prometheus and
//! Osprey refuse samples more than an hour older than the newest they hold.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::workload::{Batch, Workload};

/// How hard to try before a request counts as failed.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Prometheus's queue manager defaults: 30 ms doubling up to 5 s. It retries forever;
    /// ten attempts bound a run against a server that stays down.
    fn default() -> RetryPolicy {
        RetryPolicy { max_attempts: 10, first_backoff: Duration::from_millis(30), max_backoff: Duration::from_secs(5) }
    }
}
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A sender stops after this many requests in a row failed every attempt: the server is not
/// coming back, and retrying the rest would take hours.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendStats {
    pub wall: Duration,
    pub requests: u64,
    pub samples_accepted: u64,
    pub retries: u64,
    /// Requests refused with a 4xx other than 429, not retried.
    pub rejected_requests: u64,
    /// Requests that still failed after the last attempt, or were never sent because the
    /// sender gave up on the server.
    pub failed_requests: u64,
    pub samples_lost: u64,
    pub first_error: Option<String>,
}

impl SendStats {
    fn merge(&mut self, other: SendStats) {
        self.requests += other.requests;
        self.samples_accepted += other.samples_accepted;
        self.retries += other.retries;
        self.rejected_requests += other.rejected_requests;
        self.failed_requests += other.failed_requests;
        self.samples_lost += other.samples_lost;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Sends every shard concurrently and times the whole.
pub async fn send_all(client: &reqwest::Client, url: &str, workload: Arc<Workload>, retry: RetryPolicy) -> SendStats {
    let whole: Vec<Range<usize>> = workload.shards.iter().map(|s| 0..s.len()).collect();
    send_phases(client, url, workload, retry, vec![whole]).await
}

/// Sends every shard concurrently in phases of `phase_ms` of data time (see the module
/// documentation) and times the whole.
pub async fn send_in_phases(
    client: &reqwest::Client,
    url: &str,
    workload: Arc<Workload>,
    retry: RetryPolicy,
    phase_ms: i64,
) -> SendStats {
    let phases = phases(&workload.shards, workload.first_ms, phase_ms);
    send_phases(client, url, workload, retry, phases).await
}

async fn send_phases(
    client: &reqwest::Client,
    url: &str,
    workload: Arc<Workload>,
    retry: RetryPolicy,
    phases: Vec<Vec<Range<usize>>>,
) -> SendStats {
    let start = Instant::now();
    let mut total = SendStats::default();
    for phase in phases {
        let mut tasks = tokio::task::JoinSet::new();
        for (shard, range) in phase.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let (client, url, workload) = (client.clone(), url.to_string(), workload.clone());
            tasks.spawn(async move { send_shard(&client, &url, &workload.shards[shard][range], retry).await });
        }
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(stats) => total.merge(stats),
                Err(e) => total
                    .merge(SendStats { first_error: Some(format!("sender task failed: {e}")), ..SendStats::default() }),
            }
        }
    }
    total.wall = start.elapsed();
    total
}

/// Splits each shard's batches into phases by their newest timestamp: phase `p` holds, per
/// shard, the batches whose data reaches into `[first_ms + p * phase_ms, first_ms + (p + 1) *
/// phase_ms)`. Each shard's batches stay in order and every batch is in exactly one phase.
fn phases(shards: &[Vec<Batch>], first_ms: i64, phase_ms: i64) -> Vec<Vec<Range<usize>>> {
    let phase_of = |b: &Batch| usize::try_from((b.max_t - first_ms).max(0) / phase_ms.max(1)).unwrap_or(usize::MAX);
    let count = shards.iter().flatten().map(phase_of).max().map_or(0, |p| p.saturating_add(1));
    let mut phases = vec![vec![0..0; shards.len()]; count];
    for (s, shard) in shards.iter().enumerate() {
        let mut begin = 0;
        for (phase, ranges) in phases.iter_mut().enumerate() {
            // `max_t` never decreases within a shard, so each phase is one contiguous run.
            let end = begin + shard[begin..].iter().take_while(|b| phase_of(b) <= phase).count();
            ranges[s] = begin..end;
            begin = end;
        }
    }
    phases.retain(|p| p.iter().any(|r| !r.is_empty()));
    phases
}

async fn send_shard(client: &reqwest::Client, url: &str, batches: &[Batch], retry: RetryPolicy) -> SendStats {
    let mut stats = SendStats::default();
    let mut consecutive_failures = 0;
    for (i, batch) in batches.iter().enumerate() {
        if consecutive_failures == MAX_CONSECUTIVE_FAILURES {
            stats.samples_lost += batches[i..].iter().map(|b| b.samples).sum::<u64>();
            stats.requests += (batches.len() - i) as u64;
            stats.failed_requests += (batches.len() - i) as u64;
            break;
        }
        stats.requests += 1;
        let mut backoff = retry.first_backoff;
        for attempt in 1..=retry.max_attempts {
            let outcome = post(client, url, batch).await;
            match outcome {
                Outcome::Accepted => {
                    stats.samples_accepted += batch.samples;
                    consecutive_failures = 0;
                    break;
                }
                Outcome::Rejected(message) => {
                    consecutive_failures = 0;
                    stats.rejected_requests += 1;
                    stats.samples_lost += batch.samples;
                    stats.first_error.get_or_insert(message);
                    break;
                }
                Outcome::Retry(message) if attempt == retry.max_attempts => {
                    consecutive_failures += 1;
                    stats.failed_requests += 1;
                    stats.samples_lost += batch.samples;
                    stats.first_error.get_or_insert(format!("gave up after {attempt} attempts: {message}"));
                }
                Outcome::Retry(_) => {
                    stats.retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(retry.max_backoff);
                }
            }
        }
    }
    stats
}

enum Outcome {
    Accepted,
    Retry(String),
    Rejected(String),
}

async fn post(client: &reqwest::Client, url: &str, batch: &Batch) -> Outcome {
    let response = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("User-Agent", "osprey-bench")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .timeout(REQUEST_TIMEOUT)
        .body(batch.body.clone())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(format!("request failed: {e}")),
    };
    let status = response.status();
    // Reading the body to the end lets the connection be reused.
    let body = response.text().await.unwrap_or_default();
    let is_retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    if status.is_success() {
        Outcome::Accepted
    } else if is_retryable {
        Outcome::Retry(describe(status, &body))
    } else {
        Outcome::Rejected(describe(status, &body))
    }
}

fn describe(status: StatusCode, body: &str) -> String {
    let body: String = body.trim().chars().take(300).collect();
    format!("{status}: {body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A one-connection-at-a-time HTTP server answering with `statuses` in turn (then 204).
    fn scripted_server(statuses: Vec<u16>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/api/v1/write", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in listener.incoming().take(50) {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let status = statuses.next().unwrap_or(204);
                let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops");
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        url
    }

    fn workload(batches: usize) -> Arc<Workload> {
        let batch = Batch { body: bytes::Bytes::from_static(b"body"), samples: 10, max_t: 0 };
        Arc::new(Workload {
            shards: vec![vec![batch; batches]],
            samples: 10 * batches as u64,
            body_bytes: 4 * batches as u64,
            first_ms: 0,
            last_ms: 0,
        })
    }

    fn fast_retries() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, first_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(4) }
    }

    #[test]
    fn phases_keep_shards_in_order_and_close_in_time() {
        let batch = |max_t| Batch { body: bytes::Bytes::new(), samples: 1, max_t };
        let shards = vec![
            vec![batch(1_000), batch(1_500), batch(3_100), batch(9_000)],
            vec![batch(2_900), batch(5_000), batch(5_500)],
            vec![],
        ];
        let p = phases(&shards, 1_000, 1_000);
        // Phases 0, 1, 2, 4 and 8 have batches; 3 and 5 to 7 are empty and dropped.
        assert_eq!(
            p,
            vec![
                vec![0..2, 0..0, 0..0],
                vec![2..2, 0..1, 0..0],
                vec![2..3, 1..1, 0..0],
                vec![3..3, 1..3, 0..0],
                vec![3..4, 3..3, 0..0],
            ]
        );
        assert!(phases(&[vec![], vec![]], 0, 1_000).is_empty());
    }

    #[tokio::test]
    async fn sending_in_phases_sends_everything_once() {
        let url = scripted_server(vec![]);
        let mut w = Arc::try_unwrap(workload(4)).expect("sole owner");
        for (t, b) in w.shards[0].iter_mut().enumerate() {
            b.max_t = t as i64;
        }
        let stats = send_in_phases(&reqwest::Client::new(), &url, Arc::new(w), fast_retries(), 1).await;
        assert_eq!((stats.requests, stats.samples_accepted, stats.samples_lost), (4, 40, 0));
    }

    #[tokio::test]
    async fn gives_up_on_a_server_that_keeps_failing() {
        let url = scripted_server(vec![500; 9]);
        let stats = send_all(&reqwest::Client::new(), &url, workload(5), fast_retries()).await;
        // Three requests use all three attempts, the last two are never sent.
        assert_eq!((stats.requests, stats.retries, stats.failed_requests), (5, 6, 5));
        assert_eq!((stats.samples_accepted, stats.samples_lost), (0, 50));
        assert_eq!(stats.first_error.as_deref(), Some("gave up after 3 attempts: 500 Internal Server Error: oops"));
    }

    #[tokio::test]
    async fn retries_429_and_5xx_and_counts_them() {
        let url = scripted_server(vec![429, 503, 204, 204]);
        let stats = send_all(&reqwest::Client::new(), &url, workload(2), fast_retries()).await;
        assert_eq!((stats.requests, stats.retries, stats.samples_accepted), (2, 2, 20));
        assert_eq!((stats.rejected_requests, stats.failed_requests, stats.samples_lost), (0, 0, 0));
    }

    #[tokio::test]
    async fn drops_requests_refused_with_400_and_keeps_the_first_error() {
        let url = scripted_server(vec![400, 204, 400]);
        let stats = send_all(&reqwest::Client::new(), &url, workload(3), fast_retries()).await;
        assert_eq!((stats.samples_accepted, stats.rejected_requests, stats.samples_lost), (10, 2, 20));
        assert_eq!(stats.retries, 0);
        assert_eq!(stats.first_error.as_deref(), Some("400 Bad Request: oops"));
    }
}
