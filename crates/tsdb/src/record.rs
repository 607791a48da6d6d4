//! WAL record encoding (byte layout in `docs/format/wal.md`).
//!
//! A record is framed as `len: u32 LE | crc32: u32 LE | type: u8 | payload`, where `len`
//! counts type and payload and the CRC32 (IEEE) covers them. Payloads of 64 bytes or more are
//! snappy-compressed when that makes them smaller (flag bit `0x80` in the type). Series are
//! logged once with their labels and referenced by number afterwards.

use osprey_codec::{get_uvarint, get_varint, put_uvarint, put_varint, CodecError};
use osprey_model::{
    CounterResetHint, Exemplar, FloatHistogram, HistogramSample, Label, Labels, MetricMetadata, MetricType, Sample,
};

use crate::compact_labels::CompactLabels;

pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// A record larger than this is taken as corruption of its length field.
pub(crate) const MAX_RECORD_LEN: usize = 1 << 30;

const TYPE_SERIES: u8 = 1;
const TYPE_SAMPLES: u8 = 2;
const TYPE_EXEMPLARS: u8 = 3;
const TYPE_METADATA: u8 = 4;
const TYPE_CHUNKS: u8 = 5;
const TYPE_HISTOGRAMS: u8 = 6;
const TYPE_STARTS: u8 = 7;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Series(Vec<(u64, Labels)>),
    Samples(Vec<(u64, Sample)>),
    Exemplars(Vec<(u64, Exemplar)>),
    Metadata(Vec<MetricMetadata>),
    /// Encoded chunks of a series (written by checkpoints), float or histogram chunks as
    /// their encoding byte says.
    Chunks(Vec<(u64, Vec<u8>)>),
    Histograms(Vec<(u64, HistogramSample)>),
    /// Start-timestamp change points `(series, t, start)`, applied in order (see
    /// `StartRuns::set`).
    Starts(Vec<(u64, i64, i64)>),
}

/// Starts a frame in `buf`; [`end_frame`] fills in its length and checksum.
fn begin_frame(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    buf.push(kind);
    start
}

/// Payloads shorter than this are stored as they are: snappy would not pay for itself.
const COMPRESS_FROM: usize = 64;
/// Set in the type byte when the payload is snappy-compressed.
const FLAG_SNAPPY: u8 = 0x80;

thread_local! {
    /// Snappy's encoder carries a hash table; reusing it keeps the append path allocation-light.
    static SNAPPY: std::cell::RefCell<snap::raw::Encoder> = std::cell::RefCell::new(snap::raw::Encoder::new());
}

fn end_frame(buf: &mut Vec<u8>, start: usize) {
    let payload_start = start + FRAME_HEADER_LEN + 1;
    if buf.len() - payload_start >= COMPRESS_FROM {
        let compressed = SNAPPY.with(|e| e.borrow_mut().compress_vec(&buf[payload_start..])).ok();
        if let Some(compressed) = compressed.filter(|c| c.len() < buf.len() - payload_start) {
            buf.truncate(payload_start);
            buf.extend_from_slice(&compressed);
            buf[payload_start - 1] |= FLAG_SNAPPY;
        }
    }
    let body = &buf[start + FRAME_HEADER_LEN..];
    let len = (body.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(body).to_le_bytes();
    buf[start..start + 4].copy_from_slice(&len);
    buf[start + 4..start + 8].copy_from_slice(&crc);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn put_labels(buf: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(buf, labels.len() as u64);
    for l in labels {
        put_str(buf, &l.name);
        put_str(buf, &l.value);
    }
}

pub(crate) fn encode_series<'a>(buf: &mut Vec<u8>, series: impl ExactSizeIterator<Item = (u64, &'a CompactLabels)>) {
    let start = begin_frame(buf, TYPE_SERIES);
    put_uvarint(buf, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(buf, r);
        put_uvarint(buf, labels.len() as u64);
        for (name, value) in labels.iter() {
            put_str(buf, name);
            put_str(buf, value);
        }
    }
    end_frame(buf, start);
}

pub(crate) fn encode_samples(buf: &mut Vec<u8>, samples: &[(u64, Sample)]) {
    let start = begin_frame(buf, TYPE_SAMPLES);
    put_uvarint(buf, samples.len() as u64);
    let mut prev_t = 0i64;
    for &(r, s) in samples {
        put_uvarint(buf, r);
        put_varint(buf, s.t.wrapping_sub(prev_t));
        buf.extend_from_slice(&s.v.to_bits().to_le_bytes());
        prev_t = s.t;
    }
    end_frame(buf, start);
}

pub(crate) fn encode_histograms(buf: &mut Vec<u8>, samples: &[(u64, &HistogramSample)]) {
    let start = begin_frame(buf, TYPE_HISTOGRAMS);
    put_uvarint(buf, samples.len() as u64);
    let mut prev_t = 0i64;
    for (r, s) in samples {
        put_uvarint(buf, *r);
        put_varint(buf, s.t.wrapping_sub(prev_t));
        put_histogram(buf, &s.h);
        prev_t = s.t;
    }
    end_frame(buf, start);
}

pub(crate) fn encode_starts(buf: &mut Vec<u8>, points: &[(u64, i64, i64)]) {
    let start = begin_frame(buf, TYPE_STARTS);
    put_uvarint(buf, points.len() as u64);
    let (mut prev_t, mut prev_start) = (0i64, 0i64);
    for &(r, t, s) in points {
        put_uvarint(buf, r);
        put_varint(buf, t.wrapping_sub(prev_t));
        put_varint(buf, s.wrapping_sub(prev_start));
        (prev_t, prev_start) = (t, s);
    }
    end_frame(buf, start);
}

const HINTS: [CounterResetHint; 4] = [
    CounterResetHint::Unknown,
    CounterResetHint::CounterReset,
    CounterResetHint::NotCounterReset,
    CounterResetHint::Gauge,
];

fn put_f64(buf: &mut Vec<u8>, v: f64) {
    buf.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn put_buckets(buf: &mut Vec<u8>, buckets: &[(i32, f64)]) {
    put_uvarint(buf, buckets.len() as u64);
    let mut prev = 0i64;
    for &(i, c) in buckets {
        put_varint(buf, i64::from(i) - prev);
        put_f64(buf, c);
        prev = i64::from(i);
    }
}

fn put_histogram(buf: &mut Vec<u8>, h: &FloatHistogram) {
    buf.push(HINTS.iter().position(|&x| x == h.counter_reset_hint).unwrap_or(0) as u8);
    put_varint(buf, i64::from(h.schema));
    for v in [h.zero_threshold, h.zero_count, h.count, h.sum] {
        put_f64(buf, v);
    }
    put_buckets(buf, &h.positive);
    put_buckets(buf, &h.negative);
    put_uvarint(buf, h.custom_values.len() as u64);
    for &v in &h.custom_values {
        put_f64(buf, v);
    }
}

pub(crate) fn encode_exemplars<'a>(buf: &mut Vec<u8>, exemplars: impl ExactSizeIterator<Item = (u64, &'a Exemplar)>) {
    let start = begin_frame(buf, TYPE_EXEMPLARS);
    put_uvarint(buf, exemplars.len() as u64);
    for (r, e) in exemplars {
        put_uvarint(buf, r);
        put_varint(buf, e.t);
        buf.extend_from_slice(&e.v.to_bits().to_le_bytes());
        put_labels(buf, &e.labels);
    }
    end_frame(buf, start);
}

pub(crate) fn encode_metadata<'a>(buf: &mut Vec<u8>, metadata: impl ExactSizeIterator<Item = &'a MetricMetadata>) {
    let start = begin_frame(buf, TYPE_METADATA);
    put_uvarint(buf, metadata.len() as u64);
    for m in metadata {
        put_str(buf, &m.metric_family_name);
        buf.push(metric_type_code(m.metric_type));
        put_str(buf, &m.help);
        put_str(buf, &m.unit);
    }
    end_frame(buf, start);
}

pub(crate) fn encode_chunks<'a>(buf: &mut Vec<u8>, chunks: impl ExactSizeIterator<Item = (u64, &'a [u8])>) {
    let start = begin_frame(buf, TYPE_CHUNKS);
    put_uvarint(buf, chunks.len() as u64);
    for (r, c) in chunks {
        put_uvarint(buf, r);
        put_uvarint(buf, c.len() as u64);
        buf.extend_from_slice(c);
    }
    end_frame(buf, start);
}

const METRIC_TYPES: [MetricType; 8] = [
    MetricType::Unknown,
    MetricType::Counter,
    MetricType::Gauge,
    MetricType::Histogram,
    MetricType::GaugeHistogram,
    MetricType::Summary,
    MetricType::Info,
    MetricType::StateSet,
];

fn metric_type_code(t: MetricType) -> u8 {
    METRIC_TYPES.iter().position(|&x| x == t).unwrap_or(0) as u8
}

/// Why a frame could not be read; replay truncates the segment at the frame's start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the frame header or its stated length: a torn write.
    Torn,
    Checksum,
    Length(usize),
    Payload(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Torn => f.write_str("record cut short (torn write)"),
            FrameError::Checksum => f.write_str("record checksum mismatch"),
            FrameError::Length(n) => write!(f, "implausible record length {n}"),
            FrameError::Payload(e) => write!(f, "undecodable record: {e}"),
        }
    }
}

/// Reads the frame at the start of `buf`: the record and the bytes it took.
pub(crate) fn decode_frame(buf: &[u8]) -> Result<(Record, usize), FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Torn);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(FrameError::Length(len));
    }
    let body = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len).ok_or(FrameError::Torn)?;
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Checksum);
    }
    let record = if body[0] & FLAG_SNAPPY != 0 {
        let payload = &body[1..];
        let size = snap::raw::decompress_len(payload).map_err(|e| FrameError::Payload(e.to_string()))?;
        // A snappy element of 3 bytes expands to at most 64: a larger claim is corrupt, and
        // checking it first keeps garbage from allocating gigabytes.
        if size > MAX_RECORD_LEN || size > payload.len().saturating_mul(22) {
            return Err(FrameError::Length(size));
        }
        let mut plain = Vec::with_capacity(size + 1);
        plain.push(body[0] & !FLAG_SNAPPY);
        plain.resize(size + 1, 0);
        snap::raw::Decoder::new()
            .decompress(payload, &mut plain[1..])
            .map_err(|e| FrameError::Payload(e.to_string()))?;
        decode_body(&plain)
    } else {
        decode_body(body)
    }
    .map_err(|e| FrameError::Payload(e.to_string()))?;
    Ok((record, FRAME_HEADER_LEN + len))
}

/// Reads the varint-based encodings of WAL records and block sections from `buf` at `pos`,
/// returning errors (never panicking) on corrupt input.
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl Cursor<'_> {
    pub(crate) fn uvarint(&mut self) -> Result<u64, CodecError> {
        get_uvarint(self.buf, &mut self.pos)
    }
    pub(crate) fn varint(&mut self) -> Result<i64, CodecError> {
        get_varint(self.buf, &mut self.pos)
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(CodecError::UnexpectedEof(self.pos))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }
    fn f64(&mut self) -> Result<f64, CodecError> {
        let b = self.bytes(8)?;
        Ok(f64::from_bits(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])))
    }
    fn string(&mut self) -> Result<String, CodecError> {
        let n = self.uvarint()? as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError::Corrupt("string is not UTF-8"))
    }
    /// A count, bounded by the bytes left so corrupt counts cannot reserve huge vectors.
    pub(crate) fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.uvarint()? as usize;
        (n <= self.buf.len().saturating_sub(self.pos))
            .then_some(n)
            .ok_or(CodecError::Corrupt("count exceeds the bytes left"))
    }
    /// A reference into a symbol table of `symbols` entries.
    pub(crate) fn symbol(&mut self, symbols: usize) -> Result<u32, CodecError> {
        let i = self.uvarint()?;
        (i < symbols as u64).then_some(i as u32).ok_or(CodecError::Corrupt("symbol reference out of range"))
    }
    fn buckets(&mut self) -> Result<Vec<(i32, f64)>, CodecError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        let mut idx = 0i64;
        for _ in 0..n {
            idx = idx.wrapping_add(self.varint()?);
            let i = i32::try_from(idx).map_err(|_| CodecError::Corrupt("bucket index out of range"))?;
            out.push((i, self.f64()?));
        }
        Ok(out)
    }
    fn histogram(&mut self) -> Result<FloatHistogram, CodecError> {
        let counter_reset_hint = *HINTS.get(self.u8()? as usize).ok_or(CodecError::Corrupt("unknown reset hint"))?;
        let schema = i32::try_from(self.varint()?).map_err(|_| CodecError::Corrupt("schema out of range"))?;
        let (zero_threshold, zero_count, count, sum) = (self.f64()?, self.f64()?, self.f64()?, self.f64()?);
        let positive = self.buckets()?;
        let negative = self.buckets()?;
        let n = self.count()?;
        let custom_values = (0..n).map(|_| self.f64()).collect::<Result<_, _>>()?;
        Ok(FloatHistogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive,
            negative,
            custom_values,
        })
    }
    fn labels(&mut self) -> Result<Labels, CodecError> {
        let n = self.count()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.string()?;
            let value = self.string()?;
            v.push(Label { name, value });
        }
        Ok(labels_from_vec(v))
    }
}

/// Builds labels from decoded pairs, trusting the order only when it is actually sorted.
pub(crate) fn labels_from_vec(v: Vec<Label>) -> Labels {
    let sorted = v.windows(2).all(|w| w[0].name < w[1].name) && v.iter().all(|l| !l.value.is_empty());
    if sorted {
        Labels::from_sorted(v)
    } else {
        Labels::from_pairs(v.into_iter().map(|l| (l.name, l.value)))
    }
}

fn decode_body(body: &[u8]) -> Result<Record, CodecError> {
    let mut c = Cursor { buf: body, pos: 1 };
    let n = c.count()?;
    let record = match body[0] {
        TYPE_SERIES => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let r = c.uvarint()?;
                v.push((r, c.labels()?));
            }
            Record::Series(v)
        }
        TYPE_SAMPLES => {
            let mut v = Vec::with_capacity(n);
            let mut t = 0i64;
            for _ in 0..n {
                let r = c.uvarint()?;
                t = t.wrapping_add(c.varint()?);
                v.push((r, Sample { t, v: c.f64()? }));
            }
            Record::Samples(v)
        }
        TYPE_HISTOGRAMS => {
            let mut v = Vec::with_capacity(n);
            let mut t = 0i64;
            for _ in 0..n {
                let r = c.uvarint()?;
                t = t.wrapping_add(c.varint()?);
                v.push((r, HistogramSample { t, h: c.histogram()? }));
            }
            Record::Histograms(v)
        }
        TYPE_STARTS => {
            let mut v = Vec::with_capacity(n);
            let (mut t, mut start) = (0i64, 0i64);
            for _ in 0..n {
                let r = c.uvarint()?;
                t = t.wrapping_add(c.varint()?);
                start = start.wrapping_add(c.varint()?);
                v.push((r, t, start));
            }
            Record::Starts(v)
        }
        TYPE_EXEMPLARS => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let r = c.uvarint()?;
                let t = c.varint()?;
                let val = c.f64()?;
                v.push((r, Exemplar { labels: c.labels()?, t, v: val }));
            }
            Record::Exemplars(v)
        }
        TYPE_METADATA => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let metric_family_name = c.string()?;
                let metric_type = METRIC_TYPES.get(c.u8()? as usize).copied().unwrap_or_default();
                let help = c.string()?;
                let unit = c.string()?;
                v.push(MetricMetadata { metric_family_name, metric_type, help, unit });
            }
            Record::Metadata(v)
        }
        TYPE_CHUNKS => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let r = c.uvarint()?;
                let len = c.uvarint()? as usize;
                v.push((r, c.bytes(len)?.to_vec()));
            }
            Record::Chunks(v)
        }
        _ => return Err(CodecError::Corrupt("unknown record type")),
    };
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::STALE_NAN;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn garbage_frames_never_panic(mut body in proptest::collection::vec(any::<u8>(), 1..200)) {
            // A frame with a valid checksum around arbitrary bytes reaches the payload decoder.
            body[0] = (body[0] % 8) | (body[0] & FLAG_SNAPPY);
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            frame.extend_from_slice(&body);
            let _ = decode_frame(&frame);
            let _ = decode_frame(&body);
        }
    }

    #[test]
    fn records_round_trip_through_frames() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let ex = Exemplar { labels: Labels::from_pairs([("trace_id", "abc")]), t: 5, v: 1.0 };
        let meta = MetricMetadata {
            metric_family_name: "up".into(),
            metric_type: MetricType::Gauge,
            help: "h".into(),
            unit: String::new(),
        };
        let mut buf = Vec::new();
        encode_series(&mut buf, [(7u64, &CompactLabels::new(&labels))].into_iter());
        encode_samples(&mut buf, &[(7, Sample::new(1000, 1.5)), (7, Sample::new(900, STALE_NAN))]);
        encode_exemplars(&mut buf, [(7u64, &ex)].into_iter());
        encode_metadata(&mut buf, [&meta].into_iter());
        encode_chunks(&mut buf, [(7u64, &[1u8, 0, 0][..])].into_iter());
        let many: Vec<(u64, Sample)> = (0..100).map(|i| (7, Sample::new(i * 15_000, 1.0))).collect();
        encode_samples(&mut buf, &many);
        let hist = HistogramSample {
            t: 2000,
            h: FloatHistogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: osprey_model::CUSTOM_BUCKETS_SCHEMA,
                count: 3.0,
                sum: STALE_NAN,
                positive: vec![(0, 1.0), (2, 2.0)],
                negative: vec![(-3, 0.5)],
                custom_values: vec![0.5, 1.0],
                ..Default::default()
            },
        };
        encode_histograms(&mut buf, &[(7, &hist), (8, &hist)]);
        let starts = vec![(7, 1000, 400), (8, 2000, 0), (7, 3000, 2500)];
        encode_starts(&mut buf, &starts);
        let mut records = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let (r, n) = decode_frame(&buf[pos..]).unwrap();
            records.push(r);
            pos += n;
        }
        assert_eq!(records[0], Record::Series(vec![(7, labels)]));
        match &records[1] {
            Record::Samples(s) => {
                assert_eq!(s[0], (7, Sample::new(1000, 1.5)));
                assert_eq!(s[1].1.v.to_bits(), STALE_NAN.to_bits());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(records[2], Record::Exemplars(vec![(7, ex)]));
        assert_eq!(records[3], Record::Metadata(vec![meta]));
        assert_eq!(records[4], Record::Chunks(vec![(7, vec![1, 0, 0])]));
        assert_eq!(records[5], Record::Samples(many), "compressed record");
        match &records[6] {
            Record::Histograms(h) => {
                assert_eq!(h.len(), 2);
                assert_eq!((h[1].0, h[1].1.t), (8, 2000));
                assert!(crate::series::same_histogram(&h[1].1.h, &hist.h));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(records[7], Record::Starts(starts));
        assert_eq!(decode_frame(&buf[..buf.len() - 1]).map(|r| r.1).ok(), Some(decode_frame(&buf).unwrap().1));
        let mut corrupt = buf.clone();
        corrupt[10] ^= 0xff;
        assert_eq!(decode_frame(&corrupt).unwrap_err(), FrameError::Checksum);
        assert_eq!(decode_frame(&buf[..12]).unwrap_err(), FrameError::Torn);
    }
}
