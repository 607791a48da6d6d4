//! Remote write 2.0 bodies: arbitrary bytes as the snappy body, and as the
//! `io.prometheus.write.v2.Request` inside a valid snappy frame, so the fuzzer reaches the
//! symbol table, histogram and validation code quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_wire::remote_write::{decode_write_request_v2, encode_write_request_v2};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_write_request_v2(data) {
        // Whatever decodes must survive a round trip unchanged in shape.
        let again =
            decode_write_request_v2(&encode_write_request_v2(&request)).expect("re-encoded request must decode");
        assert_eq!(again.series.len(), request.series.len());
        assert_eq!(again.histogram_count(), request.histogram_count());
    }
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = decode_write_request_v2(&body);
    }
});
