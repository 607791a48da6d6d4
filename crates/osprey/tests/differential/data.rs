//! Seeded metric data, identical for Prometheus and Osprey: counters with resets, gauges
//! (negative values too), classic histograms, a gap, a staleness marker, a series that starts
//! late and one that ends early.
//!
//! Timing rules that keep Prometheus 2.x and 3.x semantics apart (see `exclusions.rs`):
//! - every sample sits 7..=993 ms past a whole second, while every query time, range, offset
//!   and step is a whole number of seconds, so no sample ever lies on a range or lookback
//!   boundary (3.x made those left-open);
//! - counters start high (≥ 10 000) and a counter reset halves the value rather than
//!   zeroing it, so the zero point of `rate()` extrapolation always lies far outside the
//!   range and the order of its zero-point and threshold rules (changed in 2.52) never
//!   matters;
//! - values are integers or multiples of small powers of two, so sums are exact in any order.

use osprey_model::{Labels, Sample, TimeSeries, WriteRequest, STALE_NAN};

use super::prng::Rng;

pub const INTERVAL_MS: i64 = 15_000;
pub const ROUNDS: i64 = 240;

pub const JOBS: [&str; 2] = ["api", "web"];
pub const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
pub const CODES: [&str; 3] = ["200", "404", "500"];
pub const HIST_METHODS: [&str; 2] = ["GET", "POST"];
pub const BUCKETS: [(&str, f64); 8] = [
    ("0.05", 0.05),
    ("0.1", 0.1),
    ("0.25", 0.25),
    ("0.5", 0.5),
    ("1", 1.0),
    ("2.5", 2.5),
    ("5", 5.0),
    ("+Inf", f64::INFINITY),
];
pub const SENSORS: [&str; 2] = ["a", "b"];
pub const QUEUE_METHODS: [&str; 3] = ["GET", "POST", "PUT"];
pub const TARGETS: usize = 6;

/// Target that misses rounds `GAP` without staleness markers (lookback bridges 5 min).
pub const GAP_TARGET: usize = 4;
pub const GAP: std::ops::RangeInclusive<i64> = 100..=119;
/// Target that writes staleness markers at `STALE_ROUND` and comes back at `RETURN_ROUND`.
pub const STALE_TARGET: usize = 5;
pub const STALE_ROUND: i64 = 150;
pub const RETURN_ROUND: i64 = 170;
/// Round at which new `code="503"` series appear, and at which one queue series ends.
pub const LATE_START_ROUND: i64 = 120;
pub const EARLY_END_ROUND: i64 = 200;

pub fn job(target: usize) -> &'static str {
    JOBS[target / 3]
}

pub fn instance(target: usize) -> String {
    format!("host-{target}:9100")
}

/// The data as one write request per 15 s round, to be sent in order.
pub struct Dataset {
    pub rounds: Vec<WriteRequest>,
    pub series: usize,
    pub samples: usize,
}

/// Per-target mutable state of every series the target exposes.
struct Target {
    idx: usize,
    jitter_secs: i64,
    requests: Vec<f64>,
    cpu: f64,
    memory: f64,
    temperature: [f64; 2],
    hist: Vec<Hist>,
    late_requests: f64,
}

struct Hist {
    buckets: [f64; 8],
    sum: f64,
    count: f64,
}

fn series_labels(target: usize, name: &str, extra: &[(&str, &str)]) -> Labels {
    let mut pairs: Vec<(String, String)> = vec![
        ("__name__".into(), name.into()),
        ("job".into(), job(target).into()),
        ("instance".into(), instance(target)),
    ];
    pairs.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    Labels::from_pairs(pairs)
}

impl Target {
    fn new(idx: usize, rng: &mut Rng) -> Target {
        Target {
            idx,
            jitter_secs: [0, 1, 3, 5, 8, 12][idx],
            requests: (0..METHODS.len() * CODES.len()).map(|_| rng.range(10_000, 90_000) as f64).collect(),
            cpu: rng.range(80_000, 160_000) as f64 / 8.0,
            memory: (rng.range(20_000, 60_000) * 4096) as f64,
            temperature: [rng.range(-40, 40) as f64 / 4.0, rng.range(-40, 40) as f64 / 4.0],
            hist: (0..HIST_METHODS.len())
                .map(|_| {
                    let mut h = Hist { buckets: [0.0; 8], sum: 0.0, count: 0.0 };
                    let mut acc = 0.0;
                    for b in h.buckets.iter_mut() {
                        acc += rng.range(200, 2_000) as f64;
                        *b = acc;
                    }
                    h.count = acc;
                    h.sum = (acc * 0.75).round();
                    h
                })
                .collect(),
            late_requests: rng.range(10_000, 20_000) as f64,
        }
    }

    /// Advances every series by one round and appends one sample per series at `t`.
    fn emit(&mut self, round: i64, t: i64, rng: &mut Rng, out: &mut Vec<TimeSeries>) {
        let stale = self.idx == STALE_TARGET && round == STALE_ROUND;
        let idx = self.idx;
        let labels = |name: &str, extra: &[(&str, &str)]| series_labels(idx, name, extra);
        let mut push = |labels: Labels, v: f64| {
            out.push(TimeSeries {
                labels,
                samples: vec![Sample::new(t, if stale { STALE_NAN } else { v })],
                exemplars: vec![],
                histograms: vec![],
                start_timestamps: Vec::new(),
            });
        };
        let may_reset = self.idx != GAP_TARGET && self.idx != STALE_TARGET;
        for (i, v) in self.requests.iter_mut().enumerate() {
            let (method, code) = (METHODS[i / CODES.len()], CODES[i % CODES.len()]);
            if may_reset && rng.chance(1.0 / 150.0) {
                // A reset that leaves the counter large: see the module doc.
                *v = (*v / 2.0).floor();
            } else {
                let scale = if code == "200" { 40 } else { 6 };
                *v += rng.range(0, scale) as f64;
            }
            push(labels("http_requests_total", &[("method", method), ("code", code)]), *v);
        }
        if self.idx == 1 && round >= LATE_START_ROUND {
            self.late_requests += rng.range(1, 9) as f64;
            push(labels("http_requests_total", &[("method", "GET"), ("code", "503")]), self.late_requests);
        }
        self.cpu += rng.range(0, 16) as f64 / 8.0;
        push(labels("process_cpu_seconds_total", &[]), self.cpu);
        self.memory = (self.memory + (rng.range(-200, 220) * 4096) as f64).max(4096.0);
        push(labels("memory_usage_bytes", &[]), self.memory);
        for (s, v) in self.temperature.iter_mut().enumerate() {
            *v = (*v + rng.range(-6, 6) as f64 / 4.0).clamp(-30.0, 30.0);
            push(labels("temperature_celsius", &[("sensor", SENSORS[s])]), *v);
        }
        for method in QUEUE_METHODS {
            let ended = self.idx == 0 && method == "PUT" && round >= EARLY_END_ROUND;
            if !ended && (stale || !rng.chance(0.1)) {
                push(labels("queue_depth", &[("method", method)]), rng.range(0, 50) as f64);
            }
        }
        let up = if rng.chance(0.05) { 0.0 } else { 1.0 };
        push(labels("up", &[]), up);
        let version = format!("1.{}.0", self.idx % 3);
        push(labels("build_info", &[("version", &version)]), 1.0);
        let hist_reset = self.idx == 2 && round == 180;
        for (hm, h) in self.hist.iter_mut().enumerate() {
            if hist_reset {
                // Halving keeps the buckets cumulative and the counts large.
                h.buckets.iter_mut().for_each(|b| *b = (*b / 2.0).floor());
                h.count = h.buckets[BUCKETS.len() - 1];
                h.sum = (h.sum / 2.0).floor();
            }
            for _ in 0..rng.range(0, 12) {
                // Observations are multiples of 1/1024 s, so `_sum` stays exact.
                let v = (rng.unit() * rng.unit() * 6.0 * 1024.0).round() / 1024.0;
                let first = BUCKETS.iter().position(|(_, le)| v <= *le).unwrap_or(BUCKETS.len() - 1);
                for b in &mut h.buckets[first..] {
                    *b += 1.0;
                }
                h.sum += v;
                h.count += 1.0;
            }
            let method = HIST_METHODS[hm];
            for (b, (le, _)) in BUCKETS.iter().enumerate() {
                push(labels("request_duration_seconds_bucket", &[("method", method), ("le", le)]), h.buckets[b]);
            }
            push(labels("request_duration_seconds_sum", &[("method", method)]), h.sum);
            push(labels("request_duration_seconds_count", &[("method", method)]), h.count);
        }
    }
}

/// Generates `ROUNDS` rounds from `start_ms` (a whole minute).
pub fn generate(seed: u64, start_ms: i64) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut targets: Vec<Target> = (0..TARGETS).map(|i| Target::new(i, &mut rng)).collect();
    let mut rounds = Vec::with_capacity(ROUNDS as usize);
    let mut names = std::collections::HashSet::new();
    let mut samples = 0;
    for round in 0..ROUNDS {
        let mut series = Vec::new();
        for target in targets.iter_mut() {
            let gap = target.idx == GAP_TARGET && GAP.contains(&round);
            let gone = target.idx == STALE_TARGET && round > STALE_ROUND && round < RETURN_ROUND;
            // Sample times: a whole number of seconds of jitter plus 7..=993 ms, never on a
            // whole second.
            let t = start_ms + round * INTERVAL_MS + rng.range(0, target.jitter_secs) * 1000 + rng.range(7, 993);
            if gap || gone {
                continue;
            }
            target.emit(round, t, &mut rng, &mut series);
        }
        samples += series.len();
        for s in &series {
            names.insert(s.labels.clone());
        }
        rounds.push(WriteRequest { series, metadata: vec![] });
    }
    Dataset { rounds, series: names.len(), samples }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_deterministic_off_whole_seconds_and_histograms_are_cumulative() {
        let fingerprint = |d: &Dataset| -> Vec<(String, i64, u64)> {
            let samples = d.rounds.iter().flat_map(|r| &r.series);
            samples.map(|s| (format!("{:?}", s.labels), s.samples[0].t, s.samples[0].v.to_bits())).collect()
        };
        let a = generate(1, 1_800_000_000_000);
        assert!(fingerprint(&a) == fingerprint(&generate(1, 1_800_000_000_000)));
        assert!((200..=500).contains(&a.series), "{} series", a.series);
        for r in &a.rounds {
            for s in &r.series {
                let ms = s.samples[0].t.rem_euclid(1000);
                assert!((7..=993).contains(&ms));
            }
            let buckets: Vec<f64> = r
                .series
                .iter()
                .filter(|s| s.labels.get("__name__") == Some("request_duration_seconds_bucket"))
                .map(|s| s.samples[0].v)
                .collect();
            for w in buckets.chunks(BUCKETS.len()) {
                assert!(w.windows(2).all(|p| p[0] <= p[1]) || w.iter().all(|v| v.is_nan()));
            }
        }
    }
}
