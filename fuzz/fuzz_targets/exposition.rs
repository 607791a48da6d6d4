//! Exposition text: arbitrary bytes through both formats. The parser must return, never
//! panic, and every sample it accepts must carry a metric name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_wire::exposition::{parse, ExpositionFormat};

fuzz_target!(|data: &[u8]| {
    for format in [
        ExpositionFormat::PrometheusText,
        ExpositionFormat::OpenMetrics,
    ] {
        let (mut samples, mut metadata) = (Vec::new(), Vec::new());
        if parse(data, format, &mut samples, &mut metadata).is_ok() {
            assert!(samples.iter().all(|s| s.labels.metric_name().is_some()));
        }
    }
});
