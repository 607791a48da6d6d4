//! Compressed chunks of `(timestamp, float)` samples.
//!
//! Layout (byte by byte in `docs/format/chunks.md`): one encoding byte, the sample count as a
//! big-endian `u16`, then a bit stream. Timestamps are delta-of-delta encoded in both encodings;
//! values are either Gorilla XOR floats ([`ChunkEncoding::Xor`], appendable, any float) or
//! scaled decimals ([`ChunkEncoding::IntDod`]: every value is `m / 10^k` for integers `m` and
//! `k <= 9`, stored as deltas or delta-of-deltas of `m` with a bit width chosen per chunk),
//! whichever is smaller. Sealing picks; constant series and steady counters cost about 2 bits
//! per sample, two-decimal gauges far less than their XOR form.

use osprey_model::{is_stale_nan, Sample, STALE_NAN};

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
    /// Native histograms, see [`crate::HistogramAppender`]; [`decode_chunk`] refuses it.
    FloatHistogram = 3,
}

/// Delta-of-delta buckets for timestamps: (prefix bits, prefix length, payload bits). Sized for
/// scrape jitter: a few milliseconds fit the 8-bit bucket.
const TS_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 8), (0b110, 3, 14), (0b1110, 4, 20)];

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
    let bits = match r.read_ones(4)? {
        0 => return Ok(0),
        ones @ 1..=3 => buckets[ones as usize - 1].2,
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
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimeEncoder {
    t: i64,
    delta: i64,
}

impl TimeEncoder {
    pub(crate) fn write(&mut self, w: &mut BitWriter, index: usize, t: i64) {
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

    pub(crate) fn read(&mut self, r: &mut BitReader<'_>, index: usize) -> Result<i64, CodecError> {
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

/// One Gorilla XOR value stream: the previous value's bits and the window of meaningful bits
/// last written (`leading == u32::MAX` until one is). Float chunks use one stream, histogram
/// chunks one per count, sum and bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XorState {
    pub(crate) v: u64,
    leading: u32,
    trailing: u32,
}

impl Default for XorState {
    fn default() -> Self {
        XorState { v: 0, leading: u32::MAX, trailing: 0 }
    }
}

impl XorState {
    /// Writes `bits` XORed with the previous value: `0` when equal; else `1`, then `0` and the
    /// meaningful bits inside the previous window, or `1`, a new window and its bits.
    pub(crate) fn write(&mut self, w: &mut BitWriter, bits: u64) {
        let xor = bits ^ self.v;
        self.v = bits;
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if self.leading != u32::MAX && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            w.write_bits(xor >> self.trailing, 64 - self.leading - self.trailing);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            w.write_bit(true);
            w.write_bits(u64::from(leading), 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits do not fit in 6 bits; 0 stands for 64 (0 never occurs).
            w.write_bits(u64::from(sig & 63), 6);
            w.write_bits(xor >> trailing, sig);
        }
    }

    /// Reads what [`XorState::write`] wrote and returns the value's bits.
    pub(crate) fn read(&mut self, r: &mut BitReader<'_>) -> Result<u64, CodecError> {
        // Control bits: `0` repeats the value, `10` reuses the window, `11` sets a new one.
        let control = r.read_ones(2)?;
        if control == 0 {
            return Ok(self.v);
        }
        if control == 2 {
            let leading = r.read_bits(5)? as u32;
            let sig = match r.read_bits(6)? as u32 {
                0 => 64,
                n => n,
            };
            if leading + sig > 64 {
                return Err(CodecError::Corrupt("xor window wider than 64 bits"));
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
        } else if self.leading == u32::MAX {
            return Err(CodecError::Corrupt("xor window reused before being set"));
        }
        let sig = 64 - self.leading - self.trailing;
        self.v ^= r.read_bits(sig)? << self.trailing;
        Ok(self.v)
    }
}

/// Samples between an open chunk's resume points.
const RESUME_EVERY: usize = 32;

/// A decoder's state right after one sample of an XOR chunk: decoding can go on from there
/// without the samples before. Packed into 32 bytes, with room for `Option`'s tag, because
/// every open chunk in the head holds one.
#[derive(Debug, Clone, Copy)]
struct ResumePoint {
    t: i64,
    delta: i64,
    v: u64,
    /// The bit after the sample.
    bit: u32,
    /// The sample's index in the chunk (never 0: the first resume point is at
    /// [`RESUME_EVERY`]).
    index: std::num::NonZeroU16,
    /// The XOR window; `u8::MAX` while none was written.
    leading: u8,
    trailing: u8,
}

impl ResumePoint {
    fn new(index: usize, bit: usize, time: TimeEncoder, xor: XorState) -> Option<ResumePoint> {
        let leading = if xor.leading == u32::MAX { u8::MAX } else { xor.leading as u8 };
        Some(ResumePoint {
            t: time.t,
            delta: time.delta,
            v: xor.v,
            bit: u32::try_from(bit).ok()?,
            index: std::num::NonZeroU16::new(u16::try_from(index).ok()?)?,
            leading,
            trailing: xor.trailing as u8,
        })
    }

    fn time(&self) -> TimeEncoder {
        TimeEncoder { t: self.t, delta: self.delta }
    }

    fn xor(&self) -> XorState {
        let leading = if self.leading == u8::MAX { u32::MAX } else { u32::from(self.leading) };
        XorState { v: self.v, leading, trailing: u32::from(self.trailing) }
    }
}

/// An appendable Gorilla XOR chunk, the form head chunks take while samples arrive. Its bytes
/// are a valid chunk after every append, so readers can decode an open chunk.
///
/// It remembers where decoding can resume at its newest multiple of [`RESUME_EVERY`]
/// samples, so that a read of only its newest samples (an instant query's window, most of a
/// query over recent data) decodes at most that many before them rather than the whole
/// chunk ([`XorAppender::tail_since`]); 32 bytes per open chunk.
#[derive(Debug, Clone)]
pub struct XorAppender {
    w: BitWriter,
    count: usize,
    time: TimeEncoder,
    xor: XorState,
    /// Whether every value is finite, so a decimal encoding may apply.
    all_finite: bool,
    resume: Option<ResumePoint>,
}

/// The newest samples of an open XOR chunk, from a resume point on, copied out of it (see
/// [`XorAppender::tail_since`]; [`decode_xor_tail`] reads them).
#[derive(Debug, Clone)]
pub struct XorTail {
    /// The chunk's bytes from the one holding the resume point's bit on.
    bytes: Vec<u8>,
    /// The resume point, its bit counted from the start of `bytes`.
    from: ResumePoint,
    /// Samples after the resume point's.
    after: usize,
}

impl XorTail {
    /// The time of its first sample (the resume point's).
    pub fn min_t(&self) -> i64 {
        self.from.t
    }
}

/// The samples of `tail`, in order, appended to `out`.
pub fn decode_xor_tail(tail: &XorTail, out: &mut Vec<Sample>) -> Result<(), CodecError> {
    let mut r = BitReader::new(&tail.bytes);
    r.skip(tail.from.bit as usize)?;
    let (mut time, mut xor) = (tail.from.time(), tail.from.xor());
    out.reserve(tail.after + 1);
    out.push(Sample { t: time.t, v: f64::from_bits(xor.v) });
    for _ in 0..tail.after {
        // Past the second sample, every timestamp is a delta of deltas.
        let t = time.read(&mut r, RESUME_EVERY)?;
        let v = xor.read(&mut r)?;
        out.push(Sample { t, v: f64::from_bits(v) });
    }
    Ok(())
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl XorAppender {
    pub fn new() -> XorAppender {
        // Start past the smallest sizes: growing by doubling from a few bytes showed up as
        // allocator time on the ingest path; 64 bytes keeps idle series cheap.
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(&[ChunkEncoding::Xor as u8, 0, 0]);
        let w = BitWriter::from_bytes(header);
        XorAppender {
            w,
            count: 0,
            time: TimeEncoder::default(),
            xor: XorState::default(),
            all_finite: true,
            resume: None,
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
        self.all_finite &= v.is_finite() || is_stale_nan(v);
        self.time.write(&mut self.w, self.count, t);
        if self.count == 0 {
            self.w.write_bits(bits, 64);
            self.xor.v = bits;
        } else {
            self.xor.write(&mut self.w, bits);
        }
        if self.count.is_multiple_of(RESUME_EVERY) && self.count > 0 {
            self.resume = ResumePoint::new(self.count, self.w.bit_len(), self.time, self.xor);
        }
        self.count += 1;
        let count = (self.count as u16).to_be_bytes();
        self.w.bytes_mut()[1..3].copy_from_slice(&count);
    }

    /// The samples from its newest resume point on, if that point's sample is at or before
    /// `t`: all of its samples at or after `t`, decodable without the ones before.
    pub fn tail_since(&self, t: i64) -> Option<XorTail> {
        let from = self.resume.filter(|r| r.t <= t)?;
        let byte = from.bit as usize / 8;
        let bytes = self.w.bytes().get(byte..)?.to_vec();
        let after = self.count - usize::from(from.index.get()) - 1;
        Some(XorTail { bytes, from: ResumePoint { bit: from.bit % 8, ..from }, after })
    }

    /// The chunk as it stands (a valid XOR chunk).
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Seals the chunk into its smallest encoding.
    pub fn finish(self) -> Vec<u8> {
        let xor = self.w.into_bytes();
        if !self.all_finite || self.count < 2 {
            return xor;
        }
        let mut samples = Vec::with_capacity(self.count);
        if decode_chunk(&xor, &mut samples).is_err() {
            debug_assert!(false, "own chunk failed to decode");
            return xor;
        }
        match encode_int(&samples) {
            Some(int) if int.len() < xor.len() => int,
            _ => xor,
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

const FLAG_DOD: u8 = 0x10;
const FLAG_STALE: u8 = 0x20;

/// Powers of ten a decimal chunk may scale by: values with up to this many decimals.
const MAX_SCALE: u32 = 9;

/// The smallest decimal scale `k` such that every value is exactly `m / 10^k` for an integer
/// `|m| <= 2^53` (so that decoding `m as f64 / 10^k` gives back the same bits).
fn decimal_scale(samples: &[Sample]) -> Option<u32> {
    (0..=MAX_SCALE).find(|&k| samples.iter().all(|s| to_scaled(s.v, k).is_some()))
}

fn pow10(k: u32) -> f64 {
    10f64.powi(k as i32)
}

fn to_scaled(v: f64, k: u32) -> Option<i64> {
    if k == 0 {
        return as_exact_int(v);
    }
    let m = (v * pow10(k)).round();
    if !m.is_finite() || m.abs() > (1u64 << 53) as f64 {
        return None;
    }
    let m = m as i64;
    (from_scaled(m, k).to_bits() == v.to_bits()).then_some(m)
}

fn from_scaled(m: i64, k: u32) -> f64 {
    if k == 0 {
        m as f64
    } else {
        m as f64 / pow10(k)
    }
}

/// Bits needed to hold `x` in two's complement.
fn signed_bits(x: i64) -> u32 {
    let magnitude = if x < 0 { !x } else { x };
    65 - magnitude.leading_zeros()
}

/// The payload width (1..=31) that codes `xs` in the fewest bits with [`write_adaptive`].
/// Works from a histogram of needed widths, so the cost is one pass over `xs`.
fn best_width(xs: &[i64]) -> (u32, u64) {
    let mut zeros = 0u64;
    let mut needed = [0u64; 65];
    for &x in xs {
        if x == 0 {
            zeros += 1;
        } else {
            needed[signed_bits(x) as usize] += 1;
        }
    }
    let cost = |w: u32| {
        let mut bits = zeros;
        for (n, &count) in needed.iter().enumerate().filter(|(_, &c)| c > 0) {
            let n = n as u32;
            let each = if n <= w {
                2 + w
            } else if 2 * w < 64 && n <= 2 * w {
                3 + 2 * w
            } else {
                3 + 64
            };
            bits += count * u64::from(each);
        }
        bits
    };
    (1..=31u32).map(|w| (w, cost(w))).min_by_key(|&(_, c)| c).unwrap_or((1, 0))
}

/// `0` for zero, `10` + w bits, `110` + 2w bits, `111` + 64 bits; payloads two's complement.
fn write_adaptive(w: &mut BitWriter, x: i64, width: u32) {
    if x == 0 {
        w.write_bit(false);
    } else if fits(x, width) {
        w.write_bits(0b10, 2);
        w.write_bits(x as u64, width);
    } else if 2 * width < 64 && fits(x, 2 * width) {
        debug_assert!(signed_bits(x) <= 2 * width);
        w.write_bits(0b110, 3);
        w.write_bits(x as u64, 2 * width);
    } else {
        w.write_bits(0b111, 3);
        w.write_bits(x as u64, 64);
    }
}

fn read_adaptive(r: &mut BitReader<'_>, width: u32) -> Result<i64, CodecError> {
    let bits = match r.read_ones(3)? {
        0 => return Ok(0),
        1 => width,
        2 => 2 * width,
        _ => 64,
    };
    let raw = r.read_bits(bits)?;
    let shift = 64 - bits;
    Ok(((raw << shift) as i64) >> shift)
}

fn deltas(xs: &[i64]) -> Vec<i64> {
    xs.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect()
}

/// Decimal chunk: values as scaled integers, each value and timestamp coded with the
/// adaptive code at the width that suits this chunk best. Staleness markers are listed by
/// position and skipped in the value sequence, so a series' last chunk stays compact.
fn encode_int(samples: &[Sample]) -> Option<Vec<u8>> {
    let stale: Vec<usize> = (0..samples.len()).filter(|&i| is_stale_nan(samples[i].v)).collect();
    let values: Vec<Sample> = samples.iter().filter(|s| !is_stale_nan(s.v)).copied().collect();
    let scale = decimal_scale(&values)?;
    let ms: Vec<i64> = values.iter().map(|s| to_scaled(s.v, scale).unwrap_or_default()).collect();
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    let t_dods = deltas(&deltas(&ts));
    let v_deltas = deltas(&ms);
    let v_dods = deltas(&v_deltas);
    let (t_width, _) = best_width(&t_dods);
    let (delta_width, delta_cost) = best_width(&v_deltas);
    let (dod_width, dod_cost) = best_width(&v_dods);
    let use_dod = dod_cost + 8 < delta_cost;
    let v_width = if use_dod { dod_width } else { delta_width };

    let mut w = BitWriter::from_bytes(vec![ChunkEncoding::IntDod as u8]);
    w.write_bits(samples.len() as u64, 16);
    let flags = scale as u8 | if use_dod { FLAG_DOD } else { 0 } | if stale.is_empty() { 0 } else { FLAG_STALE };
    w.write_byte(flags);
    w.write_byte(t_width as u8);
    w.write_byte(v_width as u8);
    if !stale.is_empty() {
        w.write_uvarint(stale.len() as u64);
        let mut prev = 0;
        for &i in &stale {
            w.write_uvarint((i - prev) as u64);
            prev = i;
        }
    }
    if let Some(&t0) = ts.first() {
        w.write_uvarint(crate::zigzag_encode(t0));
    }
    if ts.len() > 1 {
        w.write_uvarint(crate::zigzag_encode(ts[1].wrapping_sub(ts[0])));
    }
    for &d in &t_dods {
        write_adaptive(&mut w, d, t_width);
    }
    if let Some(&m0) = ms.first() {
        w.write_uvarint(crate::zigzag_encode(m0));
    }
    if use_dod {
        w.write_uvarint(crate::zigzag_encode(v_deltas[0]));
        for &d in &v_dods {
            write_adaptive(&mut w, d, v_width);
        }
    } else {
        for &d in &v_deltas {
            write_adaptive(&mut w, d, v_width);
        }
    }
    Some(w.into_bytes())
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

fn decode_xor(r: &mut BitReader<'_>, count: usize, out: &mut Vec<Sample>) -> Result<(), CodecError> {
    let mut time = TimeEncoder::default();
    let mut xor = XorState::default();
    for i in 0..count {
        let t = time.read(r, i)?;
        let v = if i == 0 {
            xor.v = r.read_bits(64)?;
            xor.v
        } else {
            xor.read(r)?
        };
        out.push(Sample { t, v: f64::from_bits(v) });
    }
    Ok(())
}

fn decode_int(r: &mut BitReader<'_>, count: usize, out: &mut Vec<Sample>) -> Result<(), CodecError> {
    let flags = r.read_byte()?;
    let scale = u32::from(flags & 0x0f);
    let (t_width, v_width) = (u32::from(r.read_byte()?), u32::from(r.read_byte()?));
    let known = 0x0f | FLAG_DOD | FLAG_STALE;
    if scale > MAX_SCALE || flags & !known != 0 || !(1..=31).contains(&t_width) || !(1..=31).contains(&v_width) {
        return Err(CodecError::Corrupt("bad decimal chunk header"));
    }
    let mut stale = vec![false; count];
    if flags & FLAG_STALE != 0 {
        let n = r.read_uvarint()?;
        let mut i = 0u64;
        for _ in 0..n.min(count as u64 + 1) {
            i = i.saturating_add(r.read_uvarint()?);
            *stale.get_mut(i as usize).ok_or(CodecError::Corrupt("staleness marker index beyond count"))? = true;
        }
    }
    let start = out.len();
    let mut t = 0i64;
    let mut delta = 0i64;
    for i in 0..count {
        match i {
            0 => t = crate::zigzag_decode(r.read_uvarint()?),
            1 => {
                delta = crate::zigzag_decode(r.read_uvarint()?);
                t = t.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(read_adaptive(r, t_width)?);
                t = t.wrapping_add(delta);
            }
        }
        out.push(Sample { t, v: STALE_NAN });
    }
    let (mut m, mut delta, mut seen) = (0i64, 0i64, 0usize);
    for (i, s) in out[start..].iter_mut().enumerate() {
        if stale[i] {
            continue;
        }
        match (flags & FLAG_DOD != 0, seen) {
            (_, 0) => m = crate::zigzag_decode(r.read_uvarint()?),
            (true, 1) => {
                delta = crate::zigzag_decode(r.read_uvarint()?);
                m = m.wrapping_add(delta);
            }
            (true, _) => {
                delta = delta.wrapping_add(read_adaptive(r, v_width)?);
                m = m.wrapping_add(delta);
            }
            (false, _) => m = m.wrapping_add(read_adaptive(r, v_width)?),
        }
        seen += 1;
        s.v = from_scaled(m, scale);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a chunk with bytes flipped at `flips` (positions taken modulo its length), and
    /// then its first half: corrupt or truncated input must give errors, never panics.
    pub(crate) fn decode_corrupted(mut bytes: Vec<u8>, flips: &[(usize, u8)], decode: impl Fn(&[u8])) {
        for &(i, b) in flips {
            let n = bytes.len();
            bytes[i % n] ^= b;
        }
        decode(&bytes);
        decode(&bytes[..bytes.len() / 2]);
    }

    use proptest::prelude::*;

    fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
        samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
    }

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
        let vals = [STALE_NAN, f64::NAN, -0.0, 0.0, f64::INFINITY, f64::MIN_POSITIVE, 1.5];
        let samples: Vec<Sample> = vals.iter().enumerate().map(|(i, &v)| Sample::new(i as i64 * 15_000, v)).collect();
        round_trip(&samples);
    }

    #[test]
    fn regular_counters_take_about_two_bits_per_sample() {
        let samples: Vec<Sample> =
            (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, (i * 10) as f64)).collect();
        let bytes = round_trip(&samples);
        assert_eq!(bytes[0], ChunkEncoding::IntDod as u8);
        assert!(bytes.len() < 50, "{} bytes", bytes.len());
    }

    #[test]
    fn two_decimal_gauges_beat_xor() {
        let samples: Vec<Sample> = (0..120)
            .map(|i| Sample::new(i * 15_000 + (i * 7919) % 50, (2000 + (i * 37) % 500) as f64 / 100.0))
            .collect();
        let mut xor = XorAppender::new();
        for s in &samples {
            xor.append(s.t, s.v);
        }
        let bytes = round_trip(&samples);
        assert_eq!(bytes[0], ChunkEncoding::IntDod as u8);
        assert!(bytes.len() * 2 < xor.bytes().len(), "{} vs {}", bytes.len(), xor.bytes().len());
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
        assert_eq!(decode_chunk(&[1, 0], &mut Vec::new()), Err(CodecError::UnexpectedEof(2)));
        assert_eq!(decode_chunk(&[9, 0, 0], &mut Vec::new()), Err(CodecError::UnknownEncoding(9)));
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
        fn decimal_chunks_round_trip(ms in proptest::collection::vec(-1_000_000i64..1_000_000, 2..240), scale in 0u32..4) {
            let samples: Vec<Sample> = ms.iter().enumerate()
                .map(|(i, &m)| Sample::new(i as i64 * 15_000 + m % 7, m as f64 / 10f64.powi(scale as i32)))
                .collect();
            round_trip(&samples);
        }

        #[test]
        fn decimal_chunks_with_staleness_markers_round_trip(ms in proptest::collection::vec((-1000i64..1000, any::<bool>()), 2..240)) {
            let samples: Vec<Sample> = ms.iter().enumerate()
                .map(|(i, &(m, stale))| Sample::new(i as i64 * 1000, if stale { STALE_NAN } else { m as f64 / 10.0 }))
                .collect();
            round_trip(&samples);
        }

        /// At every length of an open chunk and for any time, the tail from its resume point
        /// decodes to the chunk's samples from that point on, covering every sample at or
        /// after the time.
        #[test]
        fn open_chunk_tails_decode_as_the_chunk_does(samples in sample_strategy(), pick in any::<proptest::sample::Index>()) {
            let mut a = XorAppender::new();
            for (n, s) in samples.iter().enumerate() {
                a.append(s.t, s.v);
                let t = samples[pick.index(n + 1)].t;
                let Some(tail) = a.tail_since(t) else {
                    prop_assert!(n < RESUME_EVERY || samples[(n / RESUME_EVERY) * RESUME_EVERY].t > t);
                    continue;
                };
                let mut all = Vec::new();
                decode_chunk(a.bytes(), &mut all).unwrap();
                let mut got = Vec::new();
                decode_xor_tail(&tail, &mut got).unwrap();
                let from = (n / RESUME_EVERY) * RESUME_EVERY;
                prop_assert_eq!(bits(&got), bits(&all[from..]));
                prop_assert!(tail.min_t() <= t);
            }
        }

        #[test]
        fn corrupt_chunks_never_panic(samples in sample_strategy(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            decode_corrupted(encode_chunk(&samples), &flips, |b| drop(decode_chunk(b, &mut Vec::new())));
        }
    }
}
