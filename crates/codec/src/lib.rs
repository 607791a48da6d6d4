//! Pure encoders and decoders used by Osprey's storage engines: unsigned and zigzag varints, a
//! bit-granular writer/reader, and compressed time series chunks (delta-of-delta timestamps with
//! either Gorilla XOR floats or delta-of-delta integers, whichever is smaller), and
//! native-histogram chunks (the same timestamps, layouts written when they change, every count
//! XOR-encoded against the previous sample).
//!
//! Invariants:
//! - No I/O, no clock, no global state: bytes in, bytes out.
//! - Decoders never panic on any input: corrupt or truncated bytes give a [`CodecError`].
//! - Chunks round-trip float bit patterns exactly (staleness NaNs, `-0.0`, other NaNs), in
//!   samples and in every count and sum of a histogram.
//!
//! Non-goals: block-level compression (zstd/snappy wrappers live with the engine that frames
//! them) and file layouts (documented under `docs/format/`).

mod bits;
mod chunk;
mod error;
mod histogram;
mod varint;

pub use bits::{BitReader, BitWriter};
pub use chunk::{
    decode_chunk, decode_xor_tail, encode_chunk, ChunkEncoding, XorAppender, XorTail, CHUNK_HEADER_LEN,
    MAX_CHUNK_SAMPLES,
};
pub use error::CodecError;
pub use histogram::{decode_histogram_chunk, encode_histogram_chunk, HistogramAppender};
pub use varint::{get_uvarint, get_varint, put_uvarint, put_varint, zigzag_decode, zigzag_encode};
