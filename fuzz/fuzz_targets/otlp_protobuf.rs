//! OTLP/protobuf metrics: decode, then translate whatever decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_wire::otlp::{decode_metrics_protobuf, metrics_to_write_request_partial, OtlpOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_metrics_protobuf(data) {
        let _ = metrics_to_write_request_partial(&request, &OtlpOptions::default());
    }
});
