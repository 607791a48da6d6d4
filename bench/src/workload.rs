//! The remote_write workload, pre-encoded before anything is timed.
//!
//! Shaped like Prometheus's queue manager: series are split into shards, one per concurrent
//! sender; each shard sends its samples scrape round by scrape round in batches of up to
//! `batch_size` samples, one `TimeSeries` entry per sample, so every series' samples arrive in
//! order even though senders run concurrently. Timestamps follow real scrapes: each target has
//! a fixed phase within the interval plus up to ±`jitter_ms` of jitter per scrape (50 ms by
//! default), shared by all its series.

mod catalog;

use bytes::Bytes;
use osprey_model::{Sample, TimeSeries, WriteRequest};

use catalog::{mix, Group};

#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    pub series: usize,
    pub samples_per_series: usize,
    pub interval_ms: i64,
    /// The most a scrape's timestamp strays from its target's phase, in milliseconds.
    pub jitter_ms: i64,
    pub senders: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Timestamp the last scrape round ends at; the workload covers the time just before it.
    pub end_ms: i64,
}

/// One pre-encoded remote_write request body.
#[derive(Clone, Debug)]
pub struct Batch {
    pub body: Bytes,
    pub samples: u64,
}

#[derive(Debug)]
pub struct Workload {
    /// One queue per sender; each must be sent in order.
    pub shards: Vec<Vec<Batch>>,
    pub samples: u64,
    pub body_bytes: u64,
    /// No sample is older than this or newer than `last_ms`.
    pub first_ms: i64,
    pub last_ms: i64,
}

impl WorkloadOptions {
    /// Refuses options the workload cannot honour, saying which flag to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.series == 0 || self.samples_per_series == 0 {
            return Err("--series and --samples must be at least 1".into());
        }
        if self.senders == 0 || self.batch_size == 0 {
            return Err("--senders and --batch-size must be at least 1".into());
        }
        // Jitter must never reorder two scrapes of one series.
        if self.jitter_ms < 0 {
            return Err("--jitter-ms must not be negative".into());
        }
        if self.interval_ms <= 2 * self.jitter_ms {
            return Err(format!("--interval-ms must be more than twice --jitter-ms ({} ms)", 2 * self.jitter_ms));
        }
        Ok(())
    }

    fn start_ms(&self) -> i64 {
        self.end_ms - self.samples_per_series as i64 * self.interval_ms
    }

    /// When `target` was scraped in `round`: its phase within the interval plus jitter.
    fn timestamp(&self, target: u32, round: usize) -> i64 {
        let jitter_ms = self.jitter_ms;
        let phase = (mix(self.seed, u64::from(target)) % (self.interval_ms - 2 * jitter_ms) as u64) as i64 + jitter_ms;
        let jitter = (mix(self.seed ^ u64::from(target), round as u64) % (2 * jitter_ms + 1) as u64) as i64 - jitter_ms;
        self.start_ms() + round as i64 * self.interval_ms + phase + jitter
    }
}

/// Generates and encodes the whole workload, using all cores; shards are independent.
pub fn build(opts: &WorkloadOptions) -> Workload {
    let mut shard_groups: Vec<Vec<Group>> = vec![Vec::new(); opts.senders];
    for (i, group) in catalog::build(opts.series, opts.seed).into_iter().enumerate() {
        shard_groups[i % opts.senders].push(group);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(opts.senders);
    let mut shards: Vec<Vec<Batch>> = vec![Vec::new(); opts.senders];
    std::thread::scope(|scope| {
        let mut work: Vec<Vec<(usize, Vec<Group>)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, groups) in shard_groups.into_iter().enumerate() {
            work[i % threads].push((i, groups));
        }
        let handles: Vec<_> = work
            .into_iter()
            .map(|mine| {
                scope.spawn(move || {
                    mine.into_iter().map(|(i, groups)| (i, encode_shard(groups, opts))).collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            // A panic in an encoder thread is a bug in this program, not an input error.
            for (i, batches) in handle.join().expect("workload encoder thread panicked") {
                shards[i] = batches;
            }
        }
    });
    let samples = shards.iter().flatten().map(|b| b.samples).sum();
    let body_bytes = shards.iter().flatten().map(|b| b.body.len() as u64).sum();
    Workload { shards, samples, body_bytes, first_ms: opts.start_ms(), last_ms: opts.end_ms }
}

fn encode_shard(mut groups: Vec<Group>, opts: &WorkloadOptions) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut pending: Vec<TimeSeries> = Vec::with_capacity(opts.batch_size);
    let mut values = Vec::new();
    for round in 0..opts.samples_per_series {
        for group in &mut groups {
            let t = opts.timestamp(group.target, round);
            values.clear();
            group.next_values(&mut values);
            for (labels, &v) in group.labels.iter().zip(&values) {
                pending.push(TimeSeries {
                    labels: labels.clone(),
                    samples: vec![Sample { t, v }],
                    exemplars: Vec::new(),
                });
                if pending.len() == opts.batch_size {
                    batches.push(encode(&mut pending));
                }
            }
        }
    }
    if !pending.is_empty() {
        batches.push(encode(&mut pending));
    }
    batches
}

fn encode(pending: &mut Vec<TimeSeries>) -> Batch {
    let request = WriteRequest { series: std::mem::take(pending), metadata: Vec::new() };
    let body = osprey_wire::remote_write::encode_write_request(&request);
    pending.reserve(request.series.len());
    Batch { body: Bytes::from(body), samples: request.series.len() as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_wire::remote_write::decode_write_request;
    use std::collections::HashMap;

    fn opts(series: usize, samples: usize, senders: usize, batch_size: usize) -> WorkloadOptions {
        WorkloadOptions {
            series,
            samples_per_series: samples,
            interval_ms: 15_000,
            jitter_ms: 50,
            senders,
            batch_size,
            seed: 42,
            end_ms: 1_800_000_000_000,
        }
    }

    fn decoded(shard: &[Batch]) -> Vec<TimeSeries> {
        shard.iter().flat_map(|b| decode_write_request(&b.body).expect("valid remote_write body").series).collect()
    }

    #[test]
    fn every_sample_is_encoded_once_in_batches_of_at_most_batch_size() {
        let o = opts(1_000, 5, 3, 700);
        let w = build(&o);
        assert_eq!(w.shards.len(), 3);
        assert_eq!(w.samples, 5_000);
        let mut total = 0;
        for shard in &w.shards {
            for b in shard {
                let n = decode_write_request(&b.body).expect("valid body").series.len() as u64;
                assert_eq!(n, b.samples);
                assert!(n <= 700 && n > 0);
                total += n;
            }
        }
        assert_eq!(total, 5_000);
    }

    #[test]
    fn each_series_arrives_in_time_order_within_the_interval_grid() {
        let o = opts(500, 8, 4, 300);
        let w = build(&o);
        let mut seen: HashMap<String, (usize, Vec<i64>)> = HashMap::new();
        for (shard_index, shard) in w.shards.iter().enumerate() {
            for ts in decoded(shard) {
                let entry = seen.entry(ts.labels.to_string()).or_insert((shard_index, Vec::new()));
                assert_eq!(entry.0, shard_index, "{} is split across senders", ts.labels);
                entry.1.push(ts.samples[0].t);
            }
        }
        assert_eq!(seen.len(), 500);
        for (series, (_, times)) in &seen {
            assert_eq!(times.len(), 8);
            for (round, w) in times.windows(2).enumerate() {
                let gap = w[1] - w[0];
                assert!((15_000 - 100..=15_000 + 100).contains(&gap), "{series}: gap {gap} ms after round {round}");
            }
            assert!(times[0] >= w.first_ms && times[7] <= w.last_ms, "{series}: {times:?} outside the workload range");
        }
    }

    #[test]
    fn jitter_varies_between_scrapes() {
        let o = opts(10, 50, 1, 2_000);
        let offsets: std::collections::BTreeSet<i64> =
            (0..50).map(|r| o.timestamp(0, r) - o.start_ms() - r as i64 * o.interval_ms).collect();
        assert!(offsets.len() > 20, "jitter too regular: {offsets:?}");
    }

    #[test]
    fn the_data_does_not_depend_on_the_number_of_senders() {
        let by_series = |w: &Workload| -> HashMap<String, Vec<(i64, u64)>> {
            let mut m: HashMap<String, Vec<(i64, u64)>> = HashMap::new();
            for shard in &w.shards {
                for ts in decoded(shard) {
                    m.entry(ts.labels.to_string()).or_default().push((ts.samples[0].t, ts.samples[0].v.to_bits()));
                }
            }
            m
        };
        assert_eq!(by_series(&build(&opts(300, 4, 1, 100))), by_series(&build(&opts(300, 4, 5, 100))));
    }

    #[test]
    fn validation_names_the_flag_to_fix() {
        assert!(opts(10, 10, 8, 2000).validate().is_ok());
        let mut o = opts(10, 10, 8, 2000);
        o.interval_ms = 100;
        assert!(o.validate().unwrap_err().contains("--interval-ms"));
        o.jitter_ms = -1;
        assert!(o.validate().unwrap_err().contains("--jitter-ms"));
        assert!(opts(0, 10, 8, 2000).validate().unwrap_err().contains("--series"));
        assert!(opts(10, 10, 0, 2000).validate().unwrap_err().contains("--senders"));
    }
}
