//! Compressed chunks of `(timestamp, float)` samples.
//!
//! Layout (byte by byte in `docs/format/chunks.md`): one encoding byte, the sample count as a
//! big-endian `u16`, then a bit stream. Timestamps are delta-of-delta encoded in both encodings;
//! values are either Gorilla XOR floats ([`ChunkEncoding::Xor`], appendable, any float) or
//! delta-of-delta integers ([`ChunkEncoding::IntDod`], chosen when every value is an integer
//! and it comes out smaller: counters and constant gauges cost about 2 bits per sample).

use osprey_model::Sample;

use crate::{BitReader, BitWriter, CodecError};

/// Bytes before the bit stream: the encoding and the big-endian sample count.
pub const CHUNK_HEADER_LEN: usize = 3;
/// The most samples one chunk can hold (the count is a `u16`).
pub const MAX_CHUNK_SAMPLES: usize = u16::MAX as usize;

/// How a chunk's values are encoded; the first byte of every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChunkEncoding {
    Xor = 1,
    IntDod = 2,
}

/// Delta-of-delta buckets for timestamps: (prefix bits, prefix length, payload bits). Sized for
/// scrape jitter: a few milliseconds fit the 8-bit bucket.
const TS_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 8), (0b110, 3, 14), (0b1110, 4, 20)];
/// The same for integer values: steady counters land in the small buckets.
const INT_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 8), (0b110, 3, 16), (0b1110, 4, 32)];

fn fits(v: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&v)
}

fn write_dod(w: &mut BitWriter, dod: i64, buckets: &[(u64, u32, u32); 3]) {
    if dod == 0 {
        w.write_bit(false);
        return;
    }
    for &(prefix, plen, bits) in buckets {
        if fits(dod, bits) {
            w.write_bits(prefix, plen);
            w.write_bits(dod as u64, bits);
            return;
        }
    }
    w.write_bits(0b1111, 4);
    w.write_bits(dod as u64, 64);
}

fn read_dod(r: &mut BitReader<'_>, buckets: &[(u64, u32, u32); 3]) -> Result<i64, CodecError> {
    let mut ones = 0;
    while ones < 4 && r.read_bit()? {
        ones += 1;
    }
    let bits = match ones {
        0 => return Ok(0),
        1..=3 => buckets[ones - 1].2,
        _ => 64,
    };
    let raw = r.read_bits(bits)?;
    // Sign-extend the two's complement payload.
    let shift = 64 - bits;
    Ok(((raw << shift) as i64) >> shift)
}

/// The integer a float holds exactly, if it is one that IntDod can store bit-exactly.
fn as_exact_int(v: f64) -> Option<i64> {
    const LIMIT: f64 = (1u64 << 53) as f64;
    if v.is_finite() && v.trunc() == v && v.abs() <= LIMIT {
        let i = v as i64;
        // Rejects -0.0, whose bits differ from 0.0.
        ((i as f64).to_bits() == v.to_bits()).then_some(i)
    } else {
        None
    }
}

/// Writes timestamps shared by both encodings: first as a zigzag varint, second as a zigzag
/// varint delta, then delta-of-deltas.
#[derive(Debug, Clone, Default)]
struct TimeEncoder {
    t: i64,
    delta: i64,
}

impl TimeEncoder {
    fn write(&mut self, w: &mut BitWriter, index: usize, t: i64) {
        match index {
            0 => w.write_uvarint(crate::zigzag_encode(t)),
            1 => {
                self.delta = t.wrapping_sub(self.t);
                w.write_uvarint(crate::zigzag_encode(self.delta));
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                write_dod(w, delta.wrapping_sub(self.delta), &TS_BUCKETS);
                self.delta = delta;
            }
        }
        self.t = t;
    }

    fn read(&mut self, r: &mut BitReader<'_>, index: usize) -> Result<i64, CodecError> {
        match index {
            0 => self.t = crate::zigzag_decode(r.read_uvarint()?),
            1 => {
                self.delta = crate::zigzag_decode(r.read_uvarint()?);
                self.t = self.t.wrapping_add(self.delta);
            }
            _ => {
                self.delta = self.delta.wrapping_add(read_dod(r, &TS_BUCKETS)?);
                self.t = self.t.wrapping_add(self.delta);
            }
        }
        Ok(self.t)
    }
}

/// An appendable Gorilla XOR chunk, the form head chunks take while samples arrive. Its bytes
/// are a valid chunk after every append, so readers can decode an open chunk.
#[derive(Debug, Clone)]
pub struct XorAppender {
    w: BitWriter,
    count: usize,
    time: TimeEncoder,
    v: u64,
    leading: u32,
    trailing: u32,
    all_int: bool,
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl XorAppender {
    pub fn new() -> XorAppender {
        let w = BitWriter::from_bytes(vec![ChunkEncoding::Xor as u8, 0, 0]);
        XorAppender {
            w,
            count: 0,
            time: TimeEncoder::default(),
            v: 0,
            leading: u32::MAX,
            trailing: 0,
            all_int: true,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= MAX_CHUNK_SAMPLES
    }

    /// Appends one sample. Timestamps should increase (any order round-trips, but
    /// non-increasing ones cost 68 bits). Callers stop at [`XorAppender::is_full`].
    pub fn append(&mut self, t: i64, v: f64) {
        debug_assert!(!self.is_full());
        let bits = v.to_bits();
        self.all_int &= as_exact_int(v).is_some();
        self.time.write(&mut self.w, self.count, t);
        if self.count == 0 {
            self.w.write_bits(bits, 64);
        } else {
            self.write_xor(bits);
        }
        self.v = bits;
        self.count += 1;
        let count = (self.count as u16).to_be_bytes();
        self.w.bytes_mut()[1..3].copy_from_slice(&count);
    }

    fn write_xor(&mut self, bits: u64) {
        let xor = bits ^ self.v;
        if xor == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if self.leading != u32::MAX && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            self.w
                .write_bits(xor >> self.trailing, 64 - self.leading - self.trailing);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.w.write_bit(true);
            self.w.write_bits(u64::from(leading), 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits do not fit in 6 bits; 0 stands for 64 (0 never occurs).
            self.w.write_bits(u64::from(sig & 63), 6);
            self.w.write_bits(xor >> trailing, sig);
        }
    }

    /// The chunk as it stands (a valid XOR chunk).
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Seals the chunk into its smallest encoding.
    pub fn finish(self) -> Vec<u8> {
        let xor = self.w.into_bytes();
        if !self.all_int || self.count < 2 {
            return xor;
        }
        let mut samples = Vec::with_capacity(self.count);
        if decode_chunk(&xor, &mut samples).is_err() {
            debug_assert!(false, "own chunk failed to decode");
            return xor;
        }
        let int = encode_int(&samples);
        if int.len() < xor.len() {
            int
        } else {
            xor
        }
    }
}

/// Encodes samples (at most [`MAX_CHUNK_SAMPLES`], timestamps increasing) into the smallest of
/// the chunk encodings.
pub fn encode_chunk(samples: &[Sample]) -> Vec<u8> {
    debug_assert!(samples.len() <= MAX_CHUNK_SAMPLES);
    let mut a = XorAppender::new();
    for s in samples.iter().take(MAX_CHUNK_SAMPLES) {
        a.append(s.t, s.v);
    }
    a.finish()
}

fn encode_int(samples: &[Sample]) -> Vec<u8> {
    let mut w = BitWriter::from_bytes(vec![ChunkEncoding::IntDod as u8]);
    w.write_bits(samples.len() as u64, 16);
    let mut time = TimeEncoder::default();
    let (mut prev, mut delta) = (0i64, 0i64);
    for (i, s) in samples.iter().enumerate() {
        time.write(&mut w, i, s.t);
        let v = as_exact_int(s.v).unwrap_or_default();
        match i {
            0 => w.write_uvarint(crate::zigzag_encode(v)),
            1 => {
                delta = v.wrapping_sub(prev);
                w.write_uvarint(crate::zigzag_encode(delta));
            }
            _ => {
                let d = v.wrapping_sub(prev);
                write_dod(&mut w, d.wrapping_sub(delta), &INT_BUCKETS);
                delta = d;
            }
        }
        prev = v;
    }
    w.into_bytes()
}

/// Decodes a chunk, appending its samples to `out` (which the caller may reuse). On error
/// `out` may hold a prefix of the samples.
pub fn decode_chunk(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), CodecError> {
    if bytes.len() < CHUNK_HEADER_LEN {
        return Err(CodecError::UnexpectedEof(bytes.len()));
    }
    let count = u16::from_be_bytes([bytes[1], bytes[2]]) as usize;
    let mut r = BitReader::new(&bytes[CHUNK_HEADER_LEN..]);
    // Each sample takes at least 2 bits, so a huge count over few bytes is corrupt; checking
    // first keeps a corrupt header from reserving memory it will never fill.
    if count > (bytes.len() - CHUNK_HEADER_LEN) * 4 {
        return Err(CodecError::Corrupt("sample count exceeds chunk size"));
    }
    out.reserve(count);
    match bytes[0] {
        x if x == ChunkEncoding::Xor as u8 => decode_xor(&mut r, count, out),
        x if x == ChunkEncoding::IntDod as u8 => decode_int(&mut r, count, out),
        other => Err(CodecError::UnknownEncoding(other)),
    }
}

fn decode_xor(
    r: &mut BitReader<'_>,
    count: usize,
    out: &mut Vec<Sample>,
) -> Result<(), CodecError> {
    let mut time = TimeEncoder::default();
    let (mut v, mut leading, mut trailing) = (0u64, 0u32, 0u32);
    for i in 0..count {
        let t = time.read(r, i)?;
        if i == 0 {
            v = r.read_bits(64)?;
        } else if r.read_bit()? {
            if r.read_bit()? {
                leading = r.read_bits(5)? as u32;
                let sig = match r.read_bits(6)? as u32 {
                    0 => 64,
                    n => n,
                };
                if leading + sig > 64 {
                    return Err(CodecError::Corrupt("xor window wider than 64 bits"));
                }
                trailing = 64 - leading - sig;
            } else if i == 1 {
                return Err(CodecError::Corrupt("xor window reused before being set"));
            }
            let sig = 64 - leading - trailing;
            v ^= r.read_bits(sig)? << trailing;
        }
        out.push(Sample {
            t,
            v: f64::from_bits(v),
        });
    }
    Ok(())
}

fn decode_int(
    r: &mut BitReader<'_>,
    count: usize,
    out: &mut Vec<Sample>,
) -> Result<(), CodecError> {
    let mut time = TimeEncoder::default();
    let (mut v, mut delta) = (0i64, 0i64);
    for i in 0..count {
        let t = time.read(r, i)?;
        match i {
            0 => v = crate::zigzag_decode(r.read_uvarint()?),
            1 => {
                delta = crate::zigzag_decode(r.read_uvarint()?);
                v = v.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(read_dod(r, &INT_BUCKETS)?);
                v = v.wrapping_add(delta);
            }
        }
        out.push(Sample { t, v: v as f64 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::STALE_NAN;
    use proptest::prelude::*;

    fn round_trip(samples: &[Sample]) -> Vec<u8> {
        let bytes = encode_chunk(samples);
        let mut out = Vec::new();
        decode_chunk(&bytes, &mut out).unwrap();
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(samples) {
            assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
        }
        bytes
    }

    #[test]
    fn special_floats_keep_their_bits() {
        let vals = [
            STALE_NAN,
            f64::NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1.5,
        ];
        let samples: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(i as i64 * 15_000, v))
            .collect();
        round_trip(&samples);
    }

    #[test]
    fn regular_counters_take_about_two_bits_per_sample() {
        let samples: Vec<Sample> = (0..120)
            .map(|i| Sample::new(1_700_000_000_000 + i * 15_000, (i * 10) as f64))
            .collect();
        let bytes = round_trip(&samples);
        assert_eq!(bytes[0], ChunkEncoding::IntDod as u8);
        assert!(bytes.len() < 50, "{} bytes", bytes.len());
    }

    #[test]
    fn open_xor_chunk_decodes_after_every_append() {
        let mut a = XorAppender::new();
        for i in 0..10 {
            a.append(i * 1000 + (i % 3), i as f64 * 0.1);
            let mut out = Vec::new();
            decode_chunk(a.bytes(), &mut out).unwrap();
            assert_eq!(out.len() as i64, i + 1);
        }
    }

    #[test]
    fn corrupt_headers_are_errors() {
        assert_eq!(
            decode_chunk(&[1, 0], &mut Vec::new()),
            Err(CodecError::UnexpectedEof(2))
        );
        assert_eq!(
            decode_chunk(&[9, 0, 0], &mut Vec::new()),
            Err(CodecError::UnknownEncoding(9))
        );
        assert!(decode_chunk(&[1, 0xff, 0xff, 0], &mut Vec::new()).is_err());
    }

    fn sample_strategy() -> impl Strategy<Value = Vec<Sample>> {
        let value = prop_oneof![
            any::<f64>(),
            (-1000i64..1000).prop_map(|i| i as f64),
            Just(STALE_NAN),
            any::<u64>().prop_map(f64::from_bits),
        ];
        proptest::collection::vec((0i64..100_000, value), 0..300).prop_map(|steps| {
            let mut t = 1_600_000_000_000i64;
            steps
                .into_iter()
                .map(|(dt, v)| {
                    t += dt;
                    Sample::new(t, v)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn chunks_round_trip(samples in sample_strategy()) {
            round_trip(&samples);
        }

        #[test]
        fn integer_chunks_round_trip(ts in proptest::collection::vec(any::<i64>(), 0..200),
                                     vs in proptest::collection::vec(-(1i64 << 53)..(1i64 << 53), 200)) {
            let samples: Vec<Sample> = ts.iter().zip(&vs).map(|(&t, &v)| Sample::new(t, v as f64)).collect();
            round_trip(&samples);
        }

        #[test]
        fn corrupt_chunks_never_panic(samples in sample_strategy(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = encode_chunk(&samples);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] ^= b;
            }
            let _ = decode_chunk(&bytes, &mut Vec::new());
            let cut = bytes.len() / 2;
            let _ = decode_chunk(&bytes[..cut], &mut Vec::new());
        }
    }
}
