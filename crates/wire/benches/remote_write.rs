//! Remote write decode throughput: snappy + protobuf + validation + conversion to model types,
//! on batches shaped like Prometheus's (2000 samples per request, one sample per series,
//! ten labels per series as node_exporter-style targets have), in 1.0 and 2.0, with float
//! samples and with native histograms (20 populated buckets each, schema 3).
//!
//! Run: cargo bench -p osprey-wire --bench remote_write
//!
//! Throughput is reported per CPU second of this process (from /proc/self/stat, Linux only)
//! as well as per wall-clock second, because on a shared machine wall-clock time mostly
//! measures the neighbours.

use std::hint::black_box;
use std::time::{Duration, Instant};

use osprey_model::{FloatHistogram, HistogramSample, Labels, PackedWriteRequest, Sample, TimeSeries, WriteRequest};
use osprey_wire::remote_write::{
    decode_packed_with_limit, decode_write_request, decode_write_request_v2, encode_write_request,
    encode_write_request_v2, ProtoMessage, WireError, MAX_DECOMPRESSED_BYTES,
};

fn batch(series: usize, samples_per_series: usize) -> WriteRequest {
    let series = (0..series)
        .map(|i| TimeSeries {
            labels: Labels::from_pairs([
                ("__name__", format!("node_cpu_seconds_total_{}", i % 50)),
                ("cpu", (i % 64).to_string()),
                ("mode", ["idle", "user", "system", "iowait"][i % 4].to_string()),
                ("instance", format!("host-{}.example.internal:9100", i % 200)),
                ("job", "node".to_string()),
                ("env", "production".to_string()),
                ("region", "eu-west-1".to_string()),
                ("cluster", "main".to_string()),
                ("team", "platform".to_string()),
                ("pod", format!("node-exporter-{:05}", i)),
            ]),
            samples: (0..samples_per_series)
                .map(|j| Sample::new(1_700_000_000_000 + j as i64 * 15_000, i as f64 * 1.5 + j as f64))
                .collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
            start_timestamps: Vec::new(),
        })
        .collect();
    WriteRequest { series, metadata: Vec::new() }
}

/// The same series, each with one native histogram instead of its float samples.
fn histogram_batch(series: usize) -> WriteRequest {
    let mut request = batch(series, 0);
    for (i, s) in request.series.iter_mut().enumerate() {
        let positive: Vec<(i32, f64)> = (0..20).map(|b| (b * 2 - 10, (i + b as usize) as f64)).collect();
        let count = positive.iter().map(|b| b.1).sum();
        let h = FloatHistogram {
            schema: 3,
            zero_threshold: 1e-128,
            count,
            sum: count * 0.3,
            positive,
            ..Default::default()
        };
        s.histograms.push(HistogramSample { t: 1_700_000_000_000, h });
    }
    request
}

type Decoder<T> = fn(&[u8]) -> Result<T, WireError>;
type Encoder = fn(&WriteRequest) -> Vec<u8>;
const V1: (Encoder, Decoder<WriteRequest>) = (encode_write_request, decode_write_request);
const V2: (Encoder, Decoder<WriteRequest>) = (encode_write_request_v2, decode_write_request_v2);
const PACKED_V1: (Encoder, Decoder<PackedWriteRequest>) =
    (encode_write_request, |body| decode_packed_with_limit(ProtoMessage::V1, body, MAX_DECOMPRESSED_BYTES));
const PACKED_V2: (Encoder, Decoder<PackedWriteRequest>) =
    (encode_write_request_v2, |body| decode_packed_with_limit(ProtoMessage::V2, body, MAX_DECOMPRESSED_BYTES));

/// User plus system CPU time of this process, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn measure<T>(name: &str, (encode, decode): (Encoder, Decoder<T>), request: &WriteRequest) {
    let body = encode(request);
    let samples = (request.sample_count() + request.histogram_count()) as f64;
    let mut iterations = 0u64;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    while start.elapsed() < Duration::from_secs(3) {
        let decoded = decode(black_box(&body)).expect("benchmark body decodes");
        black_box(decoded);
        iterations += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let n = iterations as f64;
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => format!(
            "{:.1} µs CPU/request, {:.2} M samples per CPU-second",
            (b - a) / n * 1e6,
            samples * n / (b - a) / 1e6
        ),
        _ => "CPU time unavailable".to_string(),
    };
    println!(
        "{name}: {} bytes/request; {cpu}; wall {:.1} µs/request, {:.2} M samples/s",
        body.len(),
        wall / n * 1e6,
        samples * n / wall / 1e6,
    );
}

fn main() {
    measure("2000 series x 1 sample", V1, &batch(2000, 1));
    measure("500 series x 4 samples", V1, &batch(500, 4));
    measure("100 series x 100 samples", V1, &batch(100, 100));
    measure("2000 series x 1 native histogram", V1, &histogram_batch(2000));
    measure("2.0: 2000 series x 1 sample", V2, &batch(2000, 1));
    measure("2.0: 2000 series x 1 native histogram", V2, &histogram_batch(2000));
    // What the server decodes: labels packed, not allocated per label.
    measure("packed: 2000 series x 1 sample", PACKED_V1, &batch(2000, 1));
    measure("packed: 500 series x 4 samples", PACKED_V1, &batch(500, 4));
    measure("packed: 100 series x 100 samples", PACKED_V1, &batch(100, 100));
    measure("packed: 2000 series x 1 native histogram", PACKED_V1, &histogram_batch(2000));
    measure("packed 2.0: 2000 series x 1 sample", PACKED_V2, &batch(2000, 1));
    measure("packed 2.0: 2000 series x 1 native histogram", PACKED_V2, &histogram_batch(2000));
}
