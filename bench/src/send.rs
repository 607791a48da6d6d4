//! Sends a pre-encoded workload: one task per shard, each shard's requests strictly in order,
//! retrying 429 and 5xx answers (and connection failures) with exponential backoff the way
//! Prometheus's queue manager does, and dropping requests refused with another 4xx.

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
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for shard in 0..workload.shards.len() {
        let (client, url, workload) = (client.clone(), url.to_string(), workload.clone());
        tasks.spawn(async move { send_shard(&client, &url, &workload.shards[shard], retry).await });
    }
    let mut total = SendStats::default();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(stats) => total.merge(stats),
            Err(e) => {
                total.merge(SendStats { first_error: Some(format!("sender task failed: {e}")), ..SendStats::default() })
            }
        }
    }
    total.wall = start.elapsed();
    total
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
        let batch = Batch { body: bytes::Bytes::from_static(b"body"), samples: 10 };
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
