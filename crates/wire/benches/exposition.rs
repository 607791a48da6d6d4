//! Exposition parse time for a node_exporter-sized page (about 1,500 lines: HELP and TYPE per
//! family, gauges, counters with cpu/mode labels, a histogram) in both formats.
//!
//! Run: cargo bench -p osprey-wire --bench exposition

use std::hint::black_box;
use std::time::{Duration, Instant};

use osprey_wire::exposition::{parse, ExpositionFormat};

fn page(open_metrics: bool) -> String {
    let mut s = String::new();
    for family in 0..120 {
        s.push_str(&format!("# HELP node_family_{family}_total Seconds the CPUs spent in each mode.\n"));
        s.push_str(&format!("# TYPE node_family_{family}_total counter\n"));
        for cpu in 0..10 {
            let mode = ["idle", "user", "system", "iowait"][cpu % 4];
            s.push_str(&format!(
                "node_family_{family}_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {}.{cpu}7e+04\n",
                family * 31 + cpu
            ));
        }
    }
    s.push_str("# HELP node_latency_seconds Latency.\n# TYPE node_latency_seconds histogram\n");
    for le in ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"] {
        s.push_str(&format!("node_latency_seconds_bucket{{le=\"{le}\"}} 17\n"));
    }
    s.push_str("node_latency_seconds_sum 3.5\nnode_latency_seconds_count 17\n");
    if open_metrics {
        s.push_str("# EOF\n");
    }
    s
}

fn measure(name: &str, format: ExpositionFormat) {
    let body = page(format == ExpositionFormat::OpenMetrics);
    let lines = body.lines().count();
    let (mut out, mut meta) = (Vec::new(), Vec::new());
    let mut iterations = 0u64;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        out.clear();
        meta.clear();
        parse(black_box(body.as_bytes()), format, &mut out, &mut meta).expect("benchmark page parses");
        black_box(&out);
        iterations += 1;
    }
    let per_page = start.elapsed().as_secs_f64() / iterations as f64;
    let cpu_per_page = thread_cpu_ns().map(|end| (end - cpu_start.unwrap_or(0)) as f64 / 1e9 / iterations as f64);
    println!(
        "{name}: {lines} lines, {} bytes, {} samples, {:.0} µs/page wall, {} µs/page on CPU, {:.1} M lines/s",
        body.len(),
        out.len(),
        per_page * 1e6,
        cpu_per_page.map_or("?".to_string(), |c| format!("{:.0}", c * 1e6)),
        lines as f64 / per_page / 1e6
    );
}

/// Nanoseconds this thread has run on a CPU (Linux), so the figure means something on a
/// machine shared with other work, where wall time mostly measures waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn main() {
    measure("prometheus text", ExpositionFormat::PrometheusText);
    measure("openmetrics", ExpositionFormat::OpenMetrics);
}
