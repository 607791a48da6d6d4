//! Rough evaluation timings on synthetic data: `cargo run --release --example bench_eval`.
use std::time::{Duration, Instant};

use osprey_model::{Labels, Sample, TenantId};
use osprey_promql::memstore::MemStore;
use osprey_promql::{Engine, EngineOptions, QueryContext};

fn main() {
    let store = MemStore::new();
    // 2000 series, 15s scrape interval, 2 hours.
    for i in 0..2000 {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job{}", i % 10)),
            ("instance", format!("i{i}")),
        ]);
        store.set(labels, (0..480).map(|k| Sample::new(k * 15_000, (k * (i % 7 + 1)) as f64)).collect());
    }
    let engine = Engine::new(EngineOptions::default());
    let tenant = TenantId::default_tenant();
    for q in [
        "http_requests_total",
        "rate(http_requests_total[5m])",
        "sum by (job) (rate(http_requests_total[5m]))",
        "http_requests_total / on(instance) http_requests_total",
        "topk(5, rate(http_requests_total[5m]))",
        "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    ] {
        let ctx = QueryContext::new(Duration::from_secs(120));
        let t = Instant::now();
        let out = engine.range_query(&store, &tenant, q, 3_600_000, 7_200_000, 15_000, &ctx).expect("query");
        println!("{:>8.1?} {q} ({} samples)", t.elapsed(), out.stats.total_samples);
    }
}
