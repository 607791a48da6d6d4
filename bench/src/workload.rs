//! The remote_write workload, pre-encoded before anything is timed.
//!
//! Shaped like Prometheus's queue manager: series are split into shards, one per concurrent
//! sender; each shard sends its samples scrape round by scrape round in batches of up to
//! `batch_size` samples, one `TimeSeries` entry per sample, so every series' samples arrive in
//! order even though senders run concurrently. Timestamps follow real scrapes: each target has
//! a fixed phase within the interval plus up to ±`jitter_ms` of jitter per scrape (50 ms by
//! default), shared by all its series.
//!
//! Optionally the workload starts with a longer `history` at a coarser interval (days of
//! data for long range queries without billions of samples); every series' timestamps still
//! increase from the first round to the last.

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
    /// Older rounds at a coarser interval, before the `samples_per_series` regular ones.
    pub history: Option<History>,
}

/// Rounds that precede the regular ones at a coarser interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    pub rounds: usize,
    pub interval_ms: i64,
}

/// One pre-encoded remote_write request body.
#[derive(Clone, Debug)]
pub struct Batch {
    pub body: Bytes,
    pub samples: u64,
    /// The newest timestamp in the batch, so that senders can stay close together in time.
    pub max_t: i64,
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
        if let Some(h) = self.history {
            // A coarser interval keeps the phase within its round, so time never goes back.
            if h.interval_ms < self.interval_ms {
                return Err("the history interval must be at least --interval-ms".into());
            }
        }
        Ok(())
    }

    /// Where the regular rounds start (the history ends).
    fn start_ms(&self) -> i64 {
        self.end_ms - self.samples_per_series as i64 * self.interval_ms
    }

    /// Where the first round starts.
    pub fn first_ms(&self) -> i64 {
        self.start_ms() - self.history.map_or(0, |h| h.rounds as i64 * h.interval_ms)
    }

    /// Scrape rounds per series, history included.
    pub fn rounds(&self) -> usize {
        self.history.map_or(0, |h| h.rounds) + self.samples_per_series
    }

    /// When `target` was scraped in `round`: its phase within the interval plus jitter.
    fn timestamp(&self, target: u32, round: usize) -> i64 {
        let jitter_ms = self.jitter_ms;
        let phase = (mix(self.seed, u64::from(target)) % (self.interval_ms - 2 * jitter_ms) as u64) as i64 + jitter_ms;
        let jitter = (mix(self.seed ^ u64::from(target), round as u64) % (2 * jitter_ms + 1) as u64) as i64 - jitter_ms;
        let round_start = match self.history {
            Some(h) if round < h.rounds => self.start_ms() - (h.rounds - round) as i64 * h.interval_ms,
            history => self.start_ms() + (round - history.map_or(0, |h| h.rounds)) as i64 * self.interval_ms,
        };
        round_start + phase + jitter
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
    Workload { shards, samples, body_bytes, first_ms: opts.first_ms(), last_ms: opts.end_ms }
}

fn encode_shard(mut groups: Vec<Group>, opts: &WorkloadOptions) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut pending: Vec<TimeSeries> = Vec::with_capacity(opts.batch_size);
    let mut values = Vec::new();
    let mut max_t = i64::MIN;
    for round in 0..opts.rounds() {
        for group in &mut groups {
            let t = opts.timestamp(group.target, round);
            max_t = max_t.max(t);
            values.clear();
            group.next_values(&mut values);
            for (labels, &v) in group.labels.iter().zip(&values) {
                pending.push(TimeSeries {
                    labels: labels.clone(),
                    samples: vec![Sample { t, v }],
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                    start_timestamps: Vec::new(),
                });
                if pending.len() == opts.batch_size {
                    batches.push(encode(&mut pending, max_t));
                }
            }
        }
        // A history round is sent on its own: a batch mixing it with the next, an interval
        // later, would reach peers after other senders' samples of that next round and be
        // refused as too old when the interval is an hour or more.
        if round < opts.history.map_or(0, |h| h.rounds) && !pending.is_empty() {
            batches.push(encode(&mut pending, max_t));
        }
    }
    if !pending.is_empty() {
        batches.push(encode(&mut pending, max_t));
    }
    batches
}

fn encode(pending: &mut Vec<TimeSeries>, max_t: i64) -> Batch {
    let request = WriteRequest { series: std::mem::take(pending), metadata: Vec::new() };
    let body = osprey_wire::remote_write::encode_write_request(&request);
    pending.reserve(request.series.len());
    Batch { body: Bytes::from(body), samples: request.series.len() as u64, max_t }
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
            history: None,
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
    fn history_rounds_come_first_at_their_coarser_interval_and_time_only_grows() {
        let mut o = opts(200, 4, 2, 150);
        o.history = Some(History { rounds: 6, interval_ms: 600_000 });
        assert_eq!(o.rounds(), 10);
        let w = build(&o);
        assert_eq!(w.samples, 2_000);
        assert_eq!(w.first_ms, o.end_ms - 4 * 15_000 - 6 * 600_000);
        let mut times: HashMap<String, Vec<i64>> = HashMap::new();
        for shard in &w.shards {
            let mut newest_so_far = i64::MIN;
            for b in shard {
                let series = decode_write_request(&b.body).expect("valid body").series;
                let newest = series.iter().map(|ts| ts.samples[0].t).max().expect("non-empty batch");
                let oldest = series.iter().map(|ts| ts.samples[0].t).min().expect("non-empty batch");
                if oldest < o.end_ms - 4 * 15_000 {
                    assert!(newest - oldest < 15_000, "a batch mixes history rounds: {oldest}..{newest}");
                }
                assert_eq!(b.max_t, newest.max(newest_so_far), "max_t is the newest timestamp sent so far");
                newest_so_far = b.max_t;
                for ts in series {
                    times.entry(ts.labels.to_string()).or_default().push(ts.samples[0].t);
                }
            }
        }
        for (series, t) in &times {
            let gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(gaps[..5].iter().all(|g| (600_000 - 100..=600_000 + 100).contains(g)), "{series}: {gaps:?}");
            assert!(gaps[5] > 0, "{series}: history and recent rounds overlap: {gaps:?}");
            assert!(gaps[6..].iter().all(|g| (15_000 - 100..=15_000 + 100).contains(g)), "{series}: {gaps:?}");
            assert!(t[0] >= w.first_ms && t[9] <= w.last_ms, "{series}: {t:?}");
        }
        o.history = Some(History { rounds: 6, interval_ms: 10_000 });
        assert!(o.validate().unwrap_err().contains("--interval-ms"));
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
