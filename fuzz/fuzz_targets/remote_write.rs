//! Remote write bodies: arbitrary bytes as the snappy body, and as the protobuf inside a
//! valid snappy frame, so the fuzzer reaches the protobuf and validation code quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_wire::remote_write::{decode_write_request, encode_write_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_write_request(data) {
        // Whatever decodes must survive a round trip unchanged in shape.
        let again = decode_write_request(&encode_write_request(&request)).expect("re-encoded request must decode");
        assert_eq!(again.series.len(), request.series.len());
    }
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = decode_write_request(&body);
    }
});
