//! Compressed chunks of native-histogram samples (chunk encoding 3), in the style of
//! Prometheus's float-histogram chunk.
//!
//! Same header as float chunks (encoding byte, big-endian `u16` sample count), then a bit stream
//! where each sample is: its timestamp (delta-of-delta, as in float chunks), a 2-bit
//! counter-reset hint, one bit saying whether a new bucket layout follows (always set for the
//! first sample), the layout when it changed (schema, zero threshold, bucket indices, custom
//! bounds), then the count, zero count, sum and every bucket count, each XOR-encoded against
//! the same value of the previous sample (a bucket new to the layout starts from 0). A steady
//! histogram whose layout does not change costs its timestamp, 3 bits and the XOR of what
//! moved. Byte by byte in `docs/format/chunks.md`.
//!
//! Every float keeps its bit pattern (the staleness NaN in the sum, `-0.0`, other NaNs), and
//! any input round-trips, even bucket lists that are not sorted.

use osprey_model::{CounterResetHint, FloatHistogram, HistogramSample};

use crate::chunk::{ChunkEncoding, TimeEncoder, XorState};
use crate::{zigzag_decode, zigzag_encode, BitReader, BitWriter, CodecError, CHUNK_HEADER_LEN, MAX_CHUNK_SAMPLES};

/// Which buckets exist and how they are bounded; written only when it changes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Layout {
    schema: i32,
    zero_threshold_bits: u64,
    positive: Vec<i32>,
    negative: Vec<i32>,
    custom_value_bits: Vec<u64>,
}

fn same_indices(indices: &[i32], buckets: &[(i32, f64)]) -> bool {
    indices.len() == buckets.len() && indices.iter().zip(buckets).all(|(i, b)| *i == b.0)
}

fn write_indices(w: &mut BitWriter, indices: &[i32]) {
    w.write_uvarint(indices.len() as u64);
    let mut prev = 0i64;
    for &i in indices {
        w.write_uvarint(zigzag_encode(i64::from(i) - prev));
        prev = i64::from(i);
    }
}

fn read_indices(r: &mut BitReader<'_>) -> Result<Vec<i32>, CodecError> {
    let n = r.read_uvarint()? as usize;
    // Each index takes at least one byte: a larger count is corrupt, and checking first keeps
    // garbage from reserving memory.
    if n > r.remaining_bits() / 8 {
        return Err(CodecError::Corrupt("bucket count exceeds chunk size"));
    }
    let mut out = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(zigzag_decode(r.read_uvarint()?));
        out.push(i32::try_from(prev).map_err(|_| CodecError::Corrupt("bucket index out of range"))?);
    }
    Ok(out)
}

impl Layout {
    fn of(h: &FloatHistogram) -> Layout {
        Layout {
            schema: h.schema,
            zero_threshold_bits: h.zero_threshold.to_bits(),
            positive: h.positive.iter().map(|b| b.0).collect(),
            negative: h.negative.iter().map(|b| b.0).collect(),
            custom_value_bits: h.custom_values.iter().map(|v| v.to_bits()).collect(),
        }
    }

    fn matches(&self, h: &FloatHistogram) -> bool {
        self.schema == h.schema
            && self.zero_threshold_bits == h.zero_threshold.to_bits()
            && same_indices(&self.positive, &h.positive)
            && same_indices(&self.negative, &h.negative)
            && self.custom_value_bits.len() == h.custom_values.len()
            && self.custom_value_bits.iter().zip(&h.custom_values).all(|(a, b)| *a == b.to_bits())
    }

    fn write(&self, w: &mut BitWriter) {
        w.write_uvarint(zigzag_encode(i64::from(self.schema)));
        w.write_bits(self.zero_threshold_bits, 64);
        write_indices(w, &self.positive);
        write_indices(w, &self.negative);
        w.write_uvarint(self.custom_value_bits.len() as u64);
        for &v in &self.custom_value_bits {
            w.write_bits(v, 64);
        }
    }

    fn read(r: &mut BitReader<'_>) -> Result<Layout, CodecError> {
        let schema = i32::try_from(zigzag_decode(r.read_uvarint()?))
            .map_err(|_| CodecError::Corrupt("histogram schema out of range"))?;
        let zero_threshold_bits = r.read_bits(64)?;
        let positive = read_indices(r)?;
        let negative = read_indices(r)?;
        let n = r.read_uvarint()? as usize;
        if n > r.remaining_bits() / 64 {
            return Err(CodecError::Corrupt("custom bucket count exceeds chunk size"));
        }
        let custom_value_bits = (0..n).map(|_| r.read_bits(64)).collect::<Result<_, _>>()?;
        Ok(Layout { schema, zero_threshold_bits, positive, negative, custom_value_bits })
    }
}

/// The XOR stream of each bucket of `new`, carried over from the bucket with the same index
/// in `old` (a forward scan: bucket lists are sorted, and encoder and decoder scan alike for
/// lists that are not).
fn carry_over(old_indices: &[i32], old: &[XorState], new_indices: &[i32]) -> Vec<XorState> {
    let mut j = 0;
    new_indices
        .iter()
        .map(|&i| {
            while j < old_indices.len() && old_indices[j] < i {
                j += 1;
            }
            match (old_indices.get(j), old.get(j)) {
                (Some(&o), Some(state)) if o == i => *state,
                _ => XorState::default(),
            }
        })
        .collect()
}

/// One XOR stream per value of the histogram.
#[derive(Debug, Clone, Default)]
struct Streams {
    count: XorState,
    zero_count: XorState,
    sum: XorState,
    positive: Vec<XorState>,
    negative: Vec<XorState>,
}

impl Streams {
    fn relayout(&mut self, old: Option<&Layout>, new: &Layout) {
        let (pos, neg) = old.map_or((&[][..], &[][..]), |l| (&l.positive[..], &l.negative[..]));
        self.positive = carry_over(pos, &self.positive, &new.positive);
        self.negative = carry_over(neg, &self.negative, &new.negative);
    }
}

fn hint_code(hint: CounterResetHint) -> u64 {
    match hint {
        CounterResetHint::Unknown => 0,
        CounterResetHint::CounterReset => 1,
        CounterResetHint::NotCounterReset => 2,
        CounterResetHint::Gauge => 3,
    }
}

fn hint_of(code: u64) -> CounterResetHint {
    match code {
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    }
}

/// An appendable histogram chunk, the form head chunks take while samples arrive. Its bytes
/// are a valid chunk after every append, so readers can decode an open chunk.
#[derive(Debug, Clone)]
pub struct HistogramAppender {
    w: BitWriter,
    count: usize,
    time: TimeEncoder,
    layout: Option<Layout>,
    streams: Streams,
}

impl Default for HistogramAppender {
    fn default() -> Self {
        HistogramAppender::new()
    }
}

impl HistogramAppender {
    pub fn new() -> HistogramAppender {
        let mut header = Vec::with_capacity(128);
        header.extend_from_slice(&[ChunkEncoding::FloatHistogram as u8, 0, 0]);
        HistogramAppender {
            w: BitWriter::from_bytes(header),
            count: 0,
            time: TimeEncoder::default(),
            layout: None,
            streams: Streams::default(),
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

    /// Appends one sample. Timestamps should increase (any order round-trips). Callers stop
    /// at [`HistogramAppender::is_full`].
    pub fn append(&mut self, t: i64, h: &FloatHistogram) {
        debug_assert!(!self.is_full());
        self.time.write(&mut self.w, self.count, t);
        self.w.write_bits(hint_code(h.counter_reset_hint), 2);
        let changed = self.layout.as_ref().is_none_or(|l| !l.matches(h));
        self.w.write_bit(changed);
        if changed {
            let layout = Layout::of(h);
            layout.write(&mut self.w);
            self.streams.relayout(self.layout.as_ref(), &layout);
            self.layout = Some(layout);
        }
        let s = &mut self.streams;
        s.count.write(&mut self.w, h.count.to_bits());
        s.zero_count.write(&mut self.w, h.zero_count.to_bits());
        s.sum.write(&mut self.w, h.sum.to_bits());
        for (stream, b) in s.positive.iter_mut().zip(&h.positive) {
            stream.write(&mut self.w, b.1.to_bits());
        }
        for (stream, b) in s.negative.iter_mut().zip(&h.negative) {
            stream.write(&mut self.w, b.1.to_bits());
        }
        self.count += 1;
        let count = (self.count as u16).to_be_bytes();
        self.w.bytes_mut()[1..3].copy_from_slice(&count);
    }

    /// The chunk as it stands.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    pub fn finish(self) -> Vec<u8> {
        self.w.into_bytes()
    }
}

/// Encodes samples (at most [`MAX_CHUNK_SAMPLES`], timestamps increasing) as one chunk.
pub fn encode_histogram_chunk(samples: &[HistogramSample]) -> Vec<u8> {
    debug_assert!(samples.len() <= MAX_CHUNK_SAMPLES);
    let mut a = HistogramAppender::new();
    for s in samples.iter().take(MAX_CHUNK_SAMPLES) {
        a.append(s.t, &s.h);
    }
    a.finish()
}

fn read_buckets(
    r: &mut BitReader<'_>,
    indices: &[i32],
    streams: &mut [XorState],
) -> Result<Vec<(i32, f64)>, CodecError> {
    indices.iter().zip(streams).map(|(&i, s)| Ok((i, f64::from_bits(s.read(r)?)))).collect()
}

/// Decodes a histogram chunk, appending its samples to `out`. On error `out` may hold a prefix
/// of the samples.
pub fn decode_histogram_chunk(bytes: &[u8], out: &mut Vec<HistogramSample>) -> Result<(), CodecError> {
    if bytes.len() < CHUNK_HEADER_LEN {
        return Err(CodecError::UnexpectedEof(bytes.len()));
    }
    if bytes[0] != ChunkEncoding::FloatHistogram as u8 {
        return Err(CodecError::UnknownEncoding(bytes[0]));
    }
    let count = u16::from_be_bytes([bytes[1], bytes[2]]) as usize;
    // Each sample takes at least 7 bits.
    if count > (bytes.len() - CHUNK_HEADER_LEN) * 8 / 7 {
        return Err(CodecError::Corrupt("sample count exceeds chunk size"));
    }
    out.reserve(count);
    let mut r = BitReader::new(&bytes[CHUNK_HEADER_LEN..]);
    let mut time = TimeEncoder::default();
    let mut layout: Option<Layout> = None;
    let mut streams = Streams::default();
    for i in 0..count {
        let t = time.read(&mut r, i)?;
        let counter_reset_hint = hint_of(r.read_bits(2)?);
        if r.read_bit()? {
            let new = Layout::read(&mut r)?;
            streams.relayout(layout.as_ref(), &new);
            layout = Some(new);
        }
        let l = layout.as_ref().ok_or(CodecError::Corrupt("first histogram of a chunk has no layout"))?;
        let count = f64::from_bits(streams.count.read(&mut r)?);
        let zero_count = f64::from_bits(streams.zero_count.read(&mut r)?);
        let sum = f64::from_bits(streams.sum.read(&mut r)?);
        let positive = read_buckets(&mut r, &l.positive, &mut streams.positive)?;
        let negative = read_buckets(&mut r, &l.negative, &mut streams.negative)?;
        let h = FloatHistogram {
            counter_reset_hint,
            schema: l.schema,
            zero_threshold: f64::from_bits(l.zero_threshold_bits),
            zero_count,
            count,
            sum,
            positive,
            negative,
            custom_values: l.custom_value_bits.iter().map(|&b| f64::from_bits(b)).collect(),
        };
        out.push(HistogramSample { t, h });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::{CUSTOM_BUCKETS_SCHEMA, STALE_NAN};
    use proptest::prelude::*;

    /// Everything a histogram holds, floats as bits, so NaNs compare exactly.
    type Bits = (CounterResetHint, i32, u64, u64, u64, u64, Vec<(i32, u64)>, Vec<(i32, u64)>, Vec<u64>);

    fn bits(h: &FloatHistogram) -> Bits {
        let buckets = |b: &[(i32, f64)]| b.iter().map(|&(i, c)| (i, c.to_bits())).collect();
        (
            h.counter_reset_hint,
            h.schema,
            h.zero_threshold.to_bits(),
            h.zero_count.to_bits(),
            h.count.to_bits(),
            h.sum.to_bits(),
            buckets(&h.positive),
            buckets(&h.negative),
            h.custom_values.iter().map(|v| v.to_bits()).collect(),
        )
    }

    fn round_trip(samples: &[HistogramSample]) -> Vec<u8> {
        let bytes = encode_histogram_chunk(samples);
        let mut out = Vec::new();
        decode_histogram_chunk(&bytes, &mut out).unwrap();
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(samples) {
            assert_eq!((a.t, bits(&a.h)), (b.t, bits(&b.h)));
        }
        bytes
    }

    fn exponential(i: i64) -> FloatHistogram {
        let c = i as f64;
        FloatHistogram {
            schema: 3,
            zero_threshold: 1e-128,
            zero_count: c,
            count: 10.0 * c,
            sum: 12.5 * c,
            positive: vec![(-2, c), (-1, 2.0 * c), (3, 3.0 * c), (4, c)],
            negative: vec![(1, 2.0 * c), (2, c)],
            ..Default::default()
        }
    }

    #[test]
    fn steady_histograms_are_compact() {
        let samples: Vec<HistogramSample> =
            (0..120).map(|i| HistogramSample { t: 1_700_000_000_000 + i * 15_000, h: exponential(i) }).collect();
        let bytes = round_trip(&samples);
        // 9 values per sample, every one changing: measured 1419 bytes (11.8 per sample).
        assert!(bytes.len() < 120 * 13, "{} bytes", bytes.len());
    }

    #[test]
    fn layout_changes_schema_changes_and_custom_buckets_round_trip() {
        let mut samples = Vec::new();
        for i in 0..10 {
            let mut h = exponential(i);
            if i >= 5 {
                h.schema = 1;
                h.positive.push((9, 1.0));
                h.counter_reset_hint = CounterResetHint::NotCounterReset;
            }
            samples.push(HistogramSample { t: i * 1000, h });
        }
        let custom = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 3.5,
            positive: vec![(0, 1.0), (1, 2.0), (3, 3.0)],
            custom_values: vec![0.1, 0.5, 1.0],
            counter_reset_hint: CounterResetHint::CounterReset,
            ..Default::default()
        };
        samples.push(HistogramSample { t: 20_000, h: custom.clone() });
        let stale = FloatHistogram { sum: STALE_NAN, ..custom };
        samples.push(HistogramSample { t: 21_000, h: stale });
        samples.push(HistogramSample {
            t: 22_000,
            h: FloatHistogram { counter_reset_hint: CounterResetHint::Gauge, ..Default::default() },
        });
        round_trip(&samples);
    }

    #[test]
    fn open_chunks_decode_after_every_append_and_corrupt_headers_are_errors() {
        let mut a = HistogramAppender::new();
        for i in 0..5 {
            a.append(i * 1000, &exponential(i));
            let mut out = Vec::new();
            decode_histogram_chunk(a.bytes(), &mut out).unwrap();
            assert_eq!(out.len() as i64, i + 1);
        }
        assert_eq!(decode_histogram_chunk(&[3, 0], &mut Vec::new()), Err(CodecError::UnexpectedEof(2)));
        assert_eq!(decode_histogram_chunk(&[1, 0, 0], &mut Vec::new()), Err(CodecError::UnknownEncoding(1)));
        assert!(decode_histogram_chunk(&[3, 0xff, 0xff, 0], &mut Vec::new()).is_err());
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u32..1000).prop_map(f64::from),
            any::<f64>(),
            Just(STALE_NAN),
            any::<u64>().prop_map(f64::from_bits),
        ]
    }

    fn buckets() -> impl Strategy<Value = Vec<(i32, f64)>> {
        proptest::collection::vec((any::<i32>(), float()), 0..12).prop_map(|mut v| {
            v.sort_by_key(|b| b.0);
            v
        })
    }

    fn hint() -> impl Strategy<Value = CounterResetHint> {
        prop_oneof![
            Just(CounterResetHint::Unknown),
            Just(CounterResetHint::CounterReset),
            Just(CounterResetHint::NotCounterReset),
            Just(CounterResetHint::Gauge),
        ]
    }

    fn histogram() -> impl Strategy<Value = FloatHistogram> {
        (
            hint(),
            prop_oneof![-4i32..=8, Just(CUSTOM_BUCKETS_SCHEMA), any::<i32>()],
            prop_oneof![Just(0.0), Just(1e-128), float()],
            (float(), float(), float()),
            buckets(),
            buckets(),
            proptest::collection::vec(float(), 0..5),
        )
            .prop_map(
                |(
                    counter_reset_hint,
                    schema,
                    zero_threshold,
                    (zero_count, count, sum),
                    positive,
                    negative,
                    custom_values,
                )| {
                    FloatHistogram {
                        counter_reset_hint,
                        schema,
                        zero_threshold,
                        zero_count,
                        count,
                        sum,
                        positive,
                        negative,
                        custom_values,
                    }
                },
            )
    }

    /// Sequences that mostly keep the previous layout with new counts (the common case), and
    /// sometimes switch to an unrelated histogram.
    fn sequence() -> impl Strategy<Value = Vec<HistogramSample>> {
        proptest::collection::vec((0i64..100_000, histogram(), any::<bool>(), float()), 0..60).prop_map(|steps| {
            let mut t = 1_600_000_000_000i64;
            let mut out: Vec<HistogramSample> = Vec::new();
            for (dt, h, keep_layout, bump) in steps {
                t += dt;
                let h = match out.last() {
                    Some(prev) if keep_layout => {
                        let mut h2 = prev.h.clone();
                        h2.count = h.count;
                        h2.sum = h.sum;
                        for b in h2.positive.iter_mut().chain(h2.negative.iter_mut()) {
                            b.1 += bump;
                        }
                        h2
                    }
                    _ => h,
                };
                out.push(HistogramSample { t, h });
            }
            out
        })
    }

    proptest! {
        #[test]
        fn histogram_chunks_round_trip(samples in sequence()) {
            round_trip(&samples);
        }

        #[test]
        fn unsorted_buckets_round_trip(hs in proptest::collection::vec(
            (proptest::collection::vec((any::<i32>(), float()), 0..8), any::<i32>()), 1..20)) {
            let samples: Vec<HistogramSample> = hs.into_iter().enumerate().map(|(i, (positive, schema))| {
                HistogramSample { t: i as i64, h: FloatHistogram { schema, positive, ..Default::default() } }
            }).collect();
            round_trip(&samples);
        }

        #[test]
        fn corrupt_histogram_chunks_never_panic(samples in sequence(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            crate::chunk::tests::decode_corrupted(encode_histogram_chunk(&samples), &flips, |b| {
                drop(decode_histogram_chunk(b, &mut Vec::new()))
            });
        }
    }
}
