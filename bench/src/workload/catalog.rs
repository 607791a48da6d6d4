//! The series the workload sends and how their values evolve: node-exporter-like hosts and
//! instrumented HTTP services, alternating until the requested series count is reached.
//!
//! Values are modelled on what the real exporters expose, because every storage engine's
//! compression depends on it: counters count integer units (CPU ticks of 1/100 s, bytes,
//! requests) and grow by plausible increments, gauges drift around a level in the unit the
//! source reports (kB pages, 4 KiB blocks, hundredths for load averages), histograms keep
//! cumulative buckets with `_count` equal to the `+Inf` bucket and a float `_sum`.

use osprey_model::Labels;

/// A small, fast, seedable generator (SplitMix64): the workload must be identical run to
/// run so that peers and repeated runs see the same bytes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Rounds `x >= 0` up or down at random so that the expectation is `x`: a counter with a
    /// mean increment of 0.2 requests per scrape then grows by 0 or 1, never by 0.2.
    fn stochastic_round(&mut self, x: f64) -> u64 {
        let floor = x.floor();
        floor as u64 + u64::from(self.unit() < x - floor)
    }
}

/// A hash of two words, for values that must not depend on generation order (scrape jitter).
pub fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// How integer units are shown: `units * mul / div`. Division by an exact integer gives the
/// same double as parsing the exporter's decimal text ("0.52" = 52 / 100).
#[derive(Clone, Copy, Debug)]
struct Scale {
    mul: f64,
    div: f64,
}

const ONE: Scale = Scale { mul: 1.0, div: 1.0 };
const HUNDREDTHS: Scale = Scale { mul: 1.0, div: 100.0 };
const MILLIS: Scale = Scale { mul: 1.0, div: 1000.0 };
const KIB: Scale = Scale { mul: 1024.0, div: 1.0 };
const BLOCKS: Scale = Scale { mul: 4096.0, div: 1.0 };
const SECTORS: Scale = Scale { mul: 512.0, div: 1.0 };

impl Scale {
    fn apply(self, units: f64) -> f64 {
        units * self.mul / self.div
    }
}

/// Upper bounds of the latency histograms, Prometheus client libraries' defaults.
const LATENCY_BOUNDS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug)]
enum Values {
    /// Grows by a random number of units with mean `mean_step` per scrape.
    Counter {
        units: u64,
        mean_step: f64,
        scale: Scale,
    },
    /// A mean-reverting random walk in whole units, clamped to `[min, max]`.
    Gauge {
        units: f64,
        center: f64,
        step: f64,
        min: f64,
        max: f64,
        scale: Scale,
    },
    Constant(f64),
    /// One series per bound plus `+Inf`, then `_sum` and `_count`.
    Histogram(Histogram),
}

#[derive(Clone, Debug)]
struct Histogram {
    /// Probability of an observation landing in each bucket, `+Inf` last; sums to 1.
    weights: Vec<f64>,
    /// Non-cumulative observation counts per bucket.
    counts: Vec<u64>,
    sum: f64,
    mean_observations: f64,
}

impl Histogram {
    /// Latencies centred on bucket `peak`, falling off geometrically on both sides.
    fn new(peak: usize, mean_observations: f64, rng: &mut Rng) -> Histogram {
        let n = LATENCY_BOUNDS.len() + 1;
        let raw: Vec<f64> = (0..n).map(|i| 0.3f64.powi((i as i32 - peak as i32).abs())).collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        // Start as a process that has been up for a while: a few hours' worth of observations.
        let history = mean_observations * rng.range(200.0, 2000.0);
        let mut h = Histogram { weights, counts: vec![0; n], sum: 0.0, mean_observations };
        h.observe(history, rng);
        h
    }

    fn observe(&mut self, observations: f64, rng: &mut Rng) {
        for i in 0..self.counts.len() {
            let c = rng.stochastic_round(observations * self.weights[i]);
            self.counts[i] += c;
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
            let upper = LATENCY_BOUNDS.get(i).copied().unwrap_or(lower * 2.0);
            self.sum += c as f64 * rng.range(lower, upper);
        }
    }

    fn write(&self, out: &mut Vec<f64>) {
        let mut cumulative = 0u64;
        for c in &self.counts {
            cumulative += c;
            out.push(cumulative as f64);
        }
        out.push(self.sum);
        out.push(cumulative as f64);
    }
}

impl Values {
    fn counter(units: f64, mean_step: f64, scale: Scale) -> Values {
        Values::Counter { units: units.max(0.0) as u64, mean_step, scale }
    }

    fn gauge(center: f64, step: f64, scale: Scale) -> Values {
        Values::Gauge { units: center.round(), center, step, min: 0.0, max: f64::MAX, scale }
    }

    fn bounded_gauge(center: f64, step: f64, min: f64, max: f64, scale: Scale) -> Values {
        Values::Gauge { units: center.round().clamp(min, max), center, step, min, max, scale }
    }

    /// Advances one scrape and appends this group's values.
    fn next(&mut self, rng: &mut Rng, out: &mut Vec<f64>) {
        match self {
            Values::Counter { units, mean_step, scale } => {
                let step = *mean_step * rng.range(0.5, 1.5);
                *units += rng.stochastic_round(step);
                out.push(scale.apply(*units as f64));
            }
            Values::Gauge { units, center, step, min, max, scale } => {
                let drift = (*center - *units) * 0.1 + *step * rng.range(-1.0, 1.0);
                *units = (*units + drift).round().clamp(*min, *max);
                out.push(scale.apply(*units));
            }
            Values::Constant(v) => out.push(*v),
            Values::Histogram(h) => {
                h.observe(h.mean_observations * rng.range(0.6, 1.4), rng);
                h.write(out);
            }
        }
    }
}

/// Series whose values are generated together (one series, or all of one histogram), all
/// from one scrape target. Each group has its own random stream, so its values do not depend
/// on how groups are split between senders.
#[derive(Clone, Debug)]
pub struct Group {
    pub target: u32,
    pub labels: Vec<Labels>,
    values: Values,
    rng: Rng,
    scratch: Vec<f64>,
}

impl Group {
    /// Advances one scrape and appends one value per series in `labels`.
    pub fn next_values(&mut self, out: &mut Vec<f64>) {
        self.scratch.clear();
        self.values.next(&mut self.rng, &mut self.scratch);
        // The last group may have been cut short to hit the exact series count.
        out.extend_from_slice(&self.scratch[..self.labels.len()]);
    }
}

/// Builds `series` series' worth of groups, alternating host and service targets.
pub fn build(series: usize, seed: u64) -> Vec<Group> {
    let mut b = Builder { groups: Vec::new(), remaining: series, seed, target: 0, job: "", instance: String::new() };
    let mut host = 0;
    let mut service = 0;
    while b.remaining > 0 {
        let mut rng = Rng::new(mix(seed, u64::from(b.target)));
        if b.target.is_multiple_of(2) {
            b.start_target("node", format!("node-{host:05}:9100"));
            node_exporter(&mut b, &mut rng);
            host += 1;
        } else {
            b.start_target("api", format!("api-{service:05}:8080"));
            http_service(&mut b, &mut rng);
            service += 1;
        }
        b.target += 1;
    }
    b.groups
}

struct Builder {
    groups: Vec<Group>,
    remaining: usize,
    seed: u64,
    target: u32,
    job: &'static str,
    instance: String,
}

impl Builder {
    fn start_target(&mut self, job: &'static str, instance: String) {
        self.job = job;
        self.instance = instance;
    }

    fn labels(&self, name: &str, extra: &[(&str, &str)]) -> Labels {
        let mut pairs = vec![("__name__", name), ("instance", self.instance.as_str()), ("job", self.job)];
        pairs.extend_from_slice(extra);
        Labels::from_pairs(pairs)
    }

    fn series(&mut self, name: &str, extra: &[(&str, &str)], values: Values) {
        let labels = vec![self.labels(name, extra)];
        self.push(labels, values);
    }

    fn histogram(&mut self, name: &str, extra: &[(&str, &str)], values: Values) {
        let bucket = format!("{name}_bucket");
        let mut labels: Vec<Labels> = LATENCY_BOUNDS
            .iter()
            .map(|b| b.to_string())
            .chain(std::iter::once("+Inf".to_string()))
            .map(|le| {
                let mut with_le = extra.to_vec();
                with_le.push(("le", &le));
                self.labels(&bucket, &with_le)
            })
            .collect();
        labels.push(self.labels(&format!("{name}_sum"), extra));
        labels.push(self.labels(&format!("{name}_count"), extra));
        self.push(labels, values);
    }

    fn push(&mut self, mut labels: Vec<Labels>, values: Values) {
        if self.remaining == 0 {
            return;
        }
        labels.truncate(self.remaining);
        self.remaining -= labels.len();
        let rng = Rng::new(mix(self.seed ^ 0x5EED, self.groups.len() as u64));
        self.groups.push(Group { target: self.target, labels, values, rng, scratch: Vec::new() });
    }
}

/// A Linux host as node_exporter shows it: about 70 to 120 series depending on its CPUs.
fn node_exporter(b: &mut Builder, rng: &mut Rng) {
    const CPU_MODES: [(&str, f64); 8] = [
        ("idle", 0.72),
        ("user", 0.16),
        ("system", 0.06),
        ("iowait", 0.02),
        ("irq", 0.004),
        ("softirq", 0.012),
        ("steal", 0.003),
        ("nice", 0.001),
    ];
    let cpus = [2, 4, 8][(rng.next_u64() % 3) as usize];
    let uptime = rng.range(86_400.0, 90.0 * 86_400.0);
    let busy = rng.range(0.3, 1.7);
    for cpu in 0..cpus {
        let cpu = cpu.to_string();
        for (mode, share) in CPU_MODES {
            let share = if mode == "idle" { share } else { share * busy };
            // Ticks of 1/100 s, as /proc/stat counts them.
            let values = Values::counter(uptime * share * 100.0, 15.0 * share * 100.0, HUNDREDTHS);
            b.series("node_cpu_seconds_total", &[("cpu", &cpu), ("mode", mode)], values);
        }
    }

    // /proc/meminfo reports kB.
    let total_kib = [4.0, 8.0, 16.0, 32.0, 64.0][(rng.next_u64() % 5) as usize] * 1024.0 * 1024.0;
    b.series("node_memory_MemTotal_bytes", &[], Values::Constant(total_kib * 1024.0));
    for (name, share, wobble) in [
        ("node_memory_MemFree_bytes", 0.25, 0.004),
        ("node_memory_MemAvailable_bytes", 0.55, 0.004),
        ("node_memory_Buffers_bytes", 0.02, 0.0002),
        ("node_memory_Cached_bytes", 0.30, 0.001),
        ("node_memory_Active_bytes", 0.40, 0.002),
        ("node_memory_Inactive_bytes", 0.20, 0.001),
        ("node_memory_Dirty_bytes", 0.0005, 0.0003),
    ] {
        let center = total_kib * share * rng.range(0.8, 1.2);
        b.series(name, &[], Values::bounded_gauge(center, total_kib * wobble, 0.0, total_kib, KIB));
    }
    b.series("node_memory_SwapTotal_bytes", &[], Values::Constant(2.0 * 1024.0 * 1024.0 * 1024.0));
    b.series("node_memory_SwapFree_bytes", &[], Values::gauge(1_900_000.0, 64.0, KIB));

    for (mountpoint, device, fstype, gib) in [
        ("/", "/dev/vda1", "ext4", 80.0),
        ("/boot", "/dev/vda15", "vfat", 0.5),
        ("/var/lib/docker", "/dev/vdb", "xfs", 200.0),
    ] {
        let labels = [("device", device), ("fstype", fstype), ("mountpoint", mountpoint)];
        let blocks = gib * 262_144.0;
        let free = blocks * rng.range(0.2, 0.8);
        let churn = if mountpoint == "/boot" { 0.0 } else { blocks * 0.0002 };
        b.series("node_filesystem_size_bytes", &labels, Values::Constant(blocks * 4096.0));
        b.series("node_filesystem_free_bytes", &labels, Values::bounded_gauge(free, churn, 0.0, blocks, BLOCKS));
        let avail = free - blocks * 0.05;
        b.series("node_filesystem_avail_bytes", &labels, Values::bounded_gauge(avail, churn, 0.0, blocks, BLOCKS));
        let inodes = (gib * 65_536.0).round();
        b.series("node_filesystem_files", &labels, Values::Constant(inodes));
        let files_churn = if mountpoint == "/boot" { 0.0 } else { 20.0 };
        b.series("node_filesystem_files_free", &labels, Values::gauge(inodes * 0.9, files_churn, ONE));
    }

    for (device, bytes_per_second) in [("eth0", rng.range(1e5, 5e6)), ("eth1", rng.range(1e3, 1e5)), ("lo", 2e4)] {
        for direction in ["receive", "transmit"] {
            let rate = bytes_per_second * rng.range(0.3, 1.0);
            let labels = [("device", device)];
            let name = |what: &str| format!("node_network_{direction}_{what}_total");
            b.series(&name("bytes"), &labels, Values::counter(rate * uptime, rate * 15.0, ONE));
            b.series(&name("packets"), &labels, Values::counter(rate * uptime / 800.0, rate * 15.0 / 800.0, ONE));
            b.series(&name("errs"), &labels, Values::counter(uptime / 1e5, 0.001, ONE));
            b.series(&name("drop"), &labels, Values::counter(uptime / 1e4, 0.01, ONE));
        }
    }

    for (device, iops) in [("vda", rng.range(5.0, 50.0)), ("vdb", rng.range(1.0, 200.0))] {
        let labels = [("device", device)];
        b.series("node_disk_reads_completed_total", &labels, Values::counter(iops * uptime, iops * 15.0, ONE));
        b.series("node_disk_writes_completed_total", &labels, Values::counter(iops * uptime * 2.0, iops * 30.0, ONE));
        b.series("node_disk_read_bytes_total", &labels, Values::counter(iops * uptime * 16.0, iops * 240.0, SECTORS));
        b.series(
            "node_disk_written_bytes_total",
            &labels,
            Values::counter(iops * uptime * 24.0, iops * 720.0, SECTORS),
        );
        b.series("node_disk_io_time_seconds_total", &labels, Values::counter(iops * uptime, iops * 15.0, MILLIS));
    }

    // /proc/loadavg has two decimals.
    let load = cpus as f64 * busy * 30.0;
    for (name, step) in [("node_load1", 20.0), ("node_load5", 8.0), ("node_load15", 3.0)] {
        b.series(name, &[], Values::gauge(load, step, HUNDREDTHS));
    }
    let activity = busy * cpus as f64;
    b.series(
        "node_context_switches_total",
        &[],
        Values::counter(uptime * 2_000.0 * activity, 30_000.0 * activity, ONE),
    );
    b.series("node_intr_total", &[], Values::counter(uptime * 1_500.0 * activity, 22_500.0 * activity, ONE));
    b.series("node_forks_total", &[], Values::counter(uptime * 3.0 * activity, 45.0 * activity, ONE));
    b.series("node_procs_running", &[], Values::bounded_gauge(activity, 1.5, 1.0, 64.0, ONE));
    b.series("node_procs_blocked", &[], Values::bounded_gauge(0.0, 0.6, 0.0, 16.0, ONE));
    // Only has to look like a Unix time: it is constant for a host.
    let now_s = 1.78e9;
    b.series("node_boot_time_seconds", &[], Values::Constant((now_s - uptime).round()));
}

/// An instrumented HTTP service: request counters by handler, method and code, a latency
/// histogram per handler and method, and process gauges. About 170 series.
fn http_service(b: &mut Builder, rng: &mut Rng) {
    // (handler, method, requests per second, bucket where latencies peak)
    const ROUTES: [(&str, &str, f64, usize); 8] = [
        ("/api/v1/users", "GET", 20.0, 2),
        ("/api/v1/users", "POST", 2.0, 3),
        ("/api/v1/orders", "GET", 10.0, 3),
        ("/api/v1/orders", "POST", 1.0, 4),
        ("/api/v1/items", "GET", 30.0, 2),
        ("/api/v1/login", "POST", 3.0, 4),
        ("/health", "GET", 0.2, 0),
        ("/metrics", "GET", 0.067, 1),
    ];
    const CODES: [(&str, f64); 4] = [("200", 0.95), ("400", 0.025), ("404", 0.015), ("500", 0.01)];
    let traffic = rng.range(0.2, 3.0);
    let uptime = rng.range(3_600.0, 14.0 * 86_400.0);
    for (handler, method, rps, peak) in ROUTES {
        let rps = rps * traffic;
        for (code, share) in CODES {
            let per_scrape = rps * share * 15.0;
            let labels = [("code", code), ("handler", handler), ("method", method)];
            b.series("http_requests_total", &labels, Values::counter(per_scrape / 15.0 * uptime, per_scrape, ONE));
        }
        let histogram = Values::Histogram(Histogram::new(peak, rps * 15.0, rng));
        b.histogram("http_request_duration_seconds", &[("handler", handler), ("method", method)], histogram);
    }
    b.series("process_cpu_seconds_total", &[], Values::counter(uptime * traffic * 5.0, traffic * 75.0, HUNDREDTHS));
    let rss_pages = rng.range(30_000.0, 200_000.0);
    b.series("process_resident_memory_bytes", &[], Values::gauge(rss_pages, rss_pages * 0.01, BLOCKS));
    b.series("process_open_fds", &[], Values::bounded_gauge(40.0 + 20.0 * traffic, 4.0, 8.0, 1024.0, ONE));
    b.series("go_goroutines", &[], Values::bounded_gauge(60.0 + 40.0 * traffic, 10.0, 10.0, 10_000.0, ONE));
    let heap = rng.range(2e7, 2e8);
    b.series("go_memstats_heap_alloc_bytes", &[], Values::gauge(heap, heap * 0.2, ONE));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values_of(group: &mut Group, scrapes: usize) -> Vec<Vec<f64>> {
        (0..scrapes)
            .map(|_| {
                let mut out = Vec::new();
                group.next_values(&mut out);
                out
            })
            .collect()
    }

    #[test]
    fn builds_exactly_the_requested_series_count() {
        for n in [1, 13, 100, 1_000, 10_007] {
            let groups = build(n, 7);
            assert_eq!(groups.iter().map(|g| g.labels.len()).sum::<usize>(), n, "series count {n}");
        }
    }

    #[test]
    fn series_are_unique_and_both_target_kinds_appear() {
        let groups = build(5_000, 3);
        let mut all: Vec<&Labels> = groups.iter().flat_map(|g| &g.labels).collect();
        let jobs: std::collections::BTreeSet<&str> = all.iter().filter_map(|l| l.get("job")).collect();
        assert_eq!(jobs.into_iter().collect::<Vec<_>>(), ["api", "node"]);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5_000);
    }

    #[test]
    fn counters_never_decrease_and_usually_grow() {
        let mut groups = build(2_000, 11);
        let mut grew = 0;
        let mut counters = 0;
        for g in groups.iter_mut().filter(|g| g.labels[0].metric_name().is_some_and(|n| n.ends_with("_total"))) {
            let scrapes = values_of(g, 30);
            assert!(scrapes.windows(2).all(|w| w[1][0] >= w[0][0]), "{} decreased", g.labels[0]);
            counters += 1;
            grew += usize::from(scrapes[29][0] > scrapes[0][0]);
        }
        assert!(counters > 500, "only {counters} counters");
        // A few error counters legitimately stay flat for 30 scrapes.
        assert!(grew * 10 > counters * 8, "{grew} of {counters} counters grew");
    }

    #[test]
    fn histograms_are_cumulative_with_count_equal_to_inf_bucket() {
        let mut groups = build(2_000, 5);
        let mut seen = 0;
        for g in groups.iter_mut().filter(|g| g.labels.len() == LATENCY_BOUNDS.len() + 3) {
            assert_eq!(g.labels[11].get("le"), Some("+Inf"));
            assert_eq!(g.labels[0].get("le"), Some("0.005"));
            assert_eq!(g.labels[13].metric_name(), Some("http_request_duration_seconds_count"));
            let scrapes = values_of(g, 10);
            for v in &scrapes {
                assert!(v[..12].windows(2).all(|w| w[1] >= w[0]), "buckets not cumulative: {v:?}");
                assert_eq!(v[11], v[13], "_count must equal the +Inf bucket");
                assert!(v[12] > 0.0);
            }
            assert!(scrapes[9][12] >= scrapes[0][12], "_sum decreased");
            seen += 1;
        }
        assert!(seen > 10, "only {seen} histograms");
    }

    #[test]
    fn values_look_like_exporter_output() {
        let mut groups = build(200, 1);
        for g in &mut groups {
            let name = g.labels[0].metric_name().unwrap_or_default().to_string();
            let v = values_of(g, 3)[2][0];
            if name == "node_cpu_seconds_total" {
                assert_eq!(v, (v * 100.0).round() / 100.0, "{name} has more than two decimals: {v}");
            }
            if name.starts_with("node_memory_") {
                assert_eq!(v % 1024.0, 0.0, "{name} is not in kB: {v}");
            }
            assert!(v.is_finite() && v >= 0.0, "{name} = {v}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let run = |seed| -> Vec<f64> {
            let mut out = Vec::new();
            for g in &mut build(500, seed) {
                g.next_values(&mut out);
            }
            out
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
