//! The `Histogram` message, which remote_write 1.0 (`prometheus.Histogram`) and 2.0
//! (`io.prometheus.write.v2.Histogram`) share field for field, decoded and validated into the
//! model's [`FloatHistogram`].
//!
//! Integer histograms (`count_int`, bucket counts as `sint64` deltas) become float counts;
//! float histograms (`count_float`, absolute `double` counts) are taken as they are. Validation
//! is Prometheus's `Histogram.Validate` / `FloatHistogram.Validate`: spans must cover exactly
//! the buckets sent, only the first span may have a negative offset, no bucket count may be
//! negative, an integer histogram's count must equal the sum of its buckets (be at least that
//! when the sum is NaN), and custom-bucket histograms (schema -53) need strictly increasing
//! finite bounds and nothing on the negative side or in the zero bucket. Schemas 9 to 52, which
//! Prometheus reserves for finer exponential resolutions, are reduced to 8, as its appender
//! does.

use osprey_model::{CounterResetHint, FloatHistogram, HistogramSample, CUSTOM_BUCKETS_SCHEMA};

use super::decode::{Reader, SyntaxError, FIXED64, LEN, VARINT};

/// The finest and coarsest exponential schemas Prometheus stores.
const MAX_SCHEMA: i32 = 8;
const MIN_SCHEMA: i32 = -4;
/// Schemas up to this one are reserved for finer resolutions and are reduced to [`MAX_SCHEMA`].
const MAX_RESERVED_SCHEMA: i32 = 52;

/// Why a histogram was refused, in Prometheus's words where it has them.
#[derive(Debug)]
pub(super) enum Invalid {
    Syntax(SyntaxError),
    Semantic(String),
}

impl From<SyntaxError> for Invalid {
    fn from(e: SyntaxError) -> Invalid {
        Invalid::Syntax(e)
    }
}

/// `BucketSpan { sint32 offset = 1; uint32 length = 2 }`.
#[derive(Clone, Copy, Default)]
struct RawSpan {
    offset: i32,
    length: u32,
}

/// The count oneofs: which member was sent decides between an integer and a float histogram.
#[derive(Clone, Copy)]
enum Count {
    Int(u64),
    Float(f64),
}

/// Scratch vectors reused across the histograms of one request.
#[derive(Default)]
pub(super) struct HistogramScratch {
    neg_spans: Vec<RawSpan>,
    pos_spans: Vec<RawSpan>,
    neg_deltas: Vec<i64>,
    pos_deltas: Vec<i64>,
    neg_counts: Vec<f64>,
    pos_counts: Vec<f64>,
    custom_values: Vec<f64>,
    /// Remote-write 2.0's `start_timestamp = 17` of the last histogram read (0: none).
    pub(super) start_timestamp: i64,
}

impl HistogramScratch {
    fn clear(&mut self) {
        self.start_timestamp = 0;
        self.neg_spans.clear();
        self.pos_spans.clear();
        self.neg_deltas.clear();
        self.pos_deltas.clear();
        self.neg_counts.clear();
        self.pos_counts.clear();
        self.custom_values.clear();
    }
}

#[inline]
fn zigzag32(n: u64) -> i32 {
    let n = n as u32;
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

#[inline]
fn zigzag64(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// A repeated `sint64`, packed or not.
fn sint64s(r: &mut Reader<'_>, wire: u8, out: &mut Vec<i64>) -> Result<(), SyntaxError> {
    if wire == LEN {
        let (bytes, base) = r.len_delimited()?;
        let mut p = Reader::new(bytes, base);
        while !p.done() {
            out.push(zigzag64(p.varint()?));
        }
        return Ok(());
    }
    r.expect(wire, VARINT)?;
    out.push(zigzag64(r.varint()?));
    Ok(())
}

/// A repeated `double`, packed or not.
fn doubles(r: &mut Reader<'_>, wire: u8, out: &mut Vec<f64>) -> Result<(), SyntaxError> {
    if wire == LEN {
        let (bytes, _) = r.len_delimited()?;
        if !bytes.len().is_multiple_of(8) {
            return Err(r.err("packed doubles are not a multiple of 8 bytes"));
        }
        out.extend(bytes.chunks_exact(8).map(|c| {
            let mut le = [0u8; 8];
            le.copy_from_slice(c);
            f64::from_le_bytes(le)
        }));
        return Ok(());
    }
    r.expect(wire, FIXED64)?;
    out.push(f64::from_bits(r.fixed64()?));
    Ok(())
}

fn span(bytes: &[u8], base: usize) -> Result<RawSpan, SyntaxError> {
    let mut r = Reader::new(bytes, base);
    let mut s = RawSpan::default();
    while !r.done() {
        match r.key()? {
            (1, wire) => {
                r.expect(wire, VARINT)?;
                s.offset = zigzag32(r.varint()?);
            }
            (2, wire) => {
                r.expect(wire, VARINT)?;
                s.length = r.varint()? as u32;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(s)
}

/// Decodes and validates one `Histogram` message.
pub(super) fn histogram(bytes: &[u8], base: usize, scratch: &mut HistogramScratch) -> Result<HistogramSample, Invalid> {
    scratch.clear();
    let mut r = Reader::new(bytes, base);
    let (mut count, mut zero_count) = (Count::Int(0), Count::Int(0));
    let (mut sum, mut zero_threshold) = (0.0, 0.0);
    let (mut schema, mut reset_hint, mut t) = (0i32, 0u64, 0i64);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 | 6 => {
                r.expect(wire, VARINT)?;
                let v = Count::Int(r.varint()?);
                *(if field == 1 { &mut count } else { &mut zero_count }) = v;
            }
            2 | 7 => {
                r.expect(wire, FIXED64)?;
                let v = Count::Float(f64::from_bits(r.fixed64()?));
                *(if field == 2 { &mut count } else { &mut zero_count }) = v;
            }
            3 => {
                r.expect(wire, FIXED64)?;
                sum = f64::from_bits(r.fixed64()?);
            }
            4 => {
                r.expect(wire, VARINT)?;
                schema = zigzag32(r.varint()?);
            }
            5 => {
                r.expect(wire, FIXED64)?;
                zero_threshold = f64::from_bits(r.fixed64()?);
            }
            8 | 11 => {
                r.expect(wire, LEN)?;
                let (b, base) = r.len_delimited()?;
                let s = span(b, base)?;
                if field == 8 { &mut scratch.neg_spans } else { &mut scratch.pos_spans }.push(s);
            }
            9 => sint64s(&mut r, wire, &mut scratch.neg_deltas)?,
            12 => sint64s(&mut r, wire, &mut scratch.pos_deltas)?,
            10 => doubles(&mut r, wire, &mut scratch.neg_counts)?,
            13 => doubles(&mut r, wire, &mut scratch.pos_counts)?,
            14 => {
                r.expect(wire, VARINT)?;
                reset_hint = r.varint()?;
            }
            15 => {
                r.expect(wire, VARINT)?;
                t = r.varint()? as i64;
            }
            16 => doubles(&mut r, wire, &mut scratch.custom_values)?,
            17 if wire == VARINT => scratch.start_timestamp = r.varint()? as i64,
            _ => r.skip(wire)?,
        }
    }
    let h = build(scratch, count, zero_count, sum, schema, zero_threshold, reset_hint).map_err(Invalid::Semantic)?;
    Ok(HistogramSample { t, h })
}

/// The validated histogram, or Prometheus's reason for refusing it.
fn build(
    s: &HistogramScratch,
    count: Count,
    zero_count: Count,
    sum: f64,
    schema: i32,
    zero_threshold: f64,
    reset_hint: u64,
) -> Result<FloatHistogram, String> {
    let custom = schema == CUSTOM_BUCKETS_SCHEMA;
    if !custom && !(MIN_SCHEMA..=MAX_RESERVED_SCHEMA).contains(&schema) {
        return Err(format!(
            "histogram schema {schema} is invalid; valid schemas are {MIN_SCHEMA} to {MAX_SCHEMA} (exponential) and \
             {CUSTOM_BUCKETS_SCHEMA} (custom buckets)"
        ));
    }
    let is_float = matches!(count, Count::Float(_));
    let (neg_n, pos_n) =
        if is_float { (s.neg_counts.len(), s.pos_counts.len()) } else { (s.neg_deltas.len(), s.pos_deltas.len()) };
    if custom {
        check_custom_bounds(&s.custom_values, &s.pos_spans, pos_n)?;
        if !matches!(zero_count, Count::Int(0)) && !matches!(zero_count, Count::Float(z) if z == 0.0) {
            return Err("custom buckets histogram must have a zero count of 0".to_string());
        }
        if zero_threshold != 0.0 {
            return Err("custom buckets histogram must have a zero threshold of 0".to_string());
        }
        if !s.neg_spans.is_empty() || neg_n > 0 {
            return Err("custom buckets histogram must not have negative buckets".to_string());
        }
    } else {
        check_spans(&s.pos_spans, pos_n).map_err(|e| format!("positive side: {e}"))?;
        check_spans(&s.neg_spans, neg_n).map_err(|e| format!("negative side: {e}"))?;
        if !s.custom_values.is_empty() {
            return Err("histogram with an exponential schema must not have custom bucket bounds".to_string());
        }
    }
    let (positive, negative, buckets_total) = if is_float {
        let positive = place(&s.pos_spans, s.pos_counts.iter().copied(), "positive")?;
        let negative = place(&s.neg_spans, s.neg_counts.iter().copied(), "negative")?;
        (positive, negative, None)
    } else {
        let (pos_counts, pos_total) = integrate(&s.pos_deltas).map_err(|e| format!("positive side: {e}"))?;
        let (neg_counts, neg_total) = integrate(&s.neg_deltas).map_err(|e| format!("negative side: {e}"))?;
        let positive = place(&s.pos_spans, pos_counts, "positive")?;
        let negative = place(&s.neg_spans, neg_counts, "negative")?;
        (positive, negative, Some(pos_total.saturating_add(neg_total)))
    };
    let zero = match zero_count {
        Count::Int(z) => z as f64,
        Count::Float(z) => z,
    };
    let total = match count {
        Count::Int(c) => c as f64,
        Count::Float(c) => c,
    };
    if let (Some(buckets), Count::Int(c), Count::Int(z)) = (buckets_total, count, zero_count) {
        let observed = buckets.saturating_add(z);
        if sum.is_nan() && observed > c {
            return Err(format!(
                "{observed} observations found in buckets, but the count field is {c}; the count must be at least \
                 the sum of the bucket counts"
            ));
        }
        if !sum.is_nan() && observed != c {
            return Err(format!(
                "{observed} observations found in buckets, but the count field is {c}; the count must equal the sum \
                 of the bucket counts and the zero bucket"
            ));
        }
    }
    let mut h = FloatHistogram {
        counter_reset_hint: match reset_hint {
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => CounterResetHint::Unknown,
        },
        schema,
        zero_threshold,
        zero_count: zero,
        count: total,
        sum,
        positive,
        negative,
        custom_values: s.custom_values.clone(),
    };
    if schema > MAX_SCHEMA {
        // Not `FloatHistogram::reduce_resolution`: its i32 shift cannot span 52 - 8 bits.
        let by = (schema - MAX_SCHEMA) as u32;
        h.positive = merge_down(&h.positive, by);
        h.negative = merge_down(&h.negative, by);
        h.schema = MAX_SCHEMA;
    }
    Ok(h)
}

/// Buckets at a schema `by` lower: bucket `i` goes to `((i - 1) >> by) + 1`, counts of
/// buckets that meet are added.
fn merge_down(buckets: &[(i32, f64)], by: u32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(idx, c) in buckets {
        // The result lies between idx and 0, so it fits an i32.
        let target = (((i64::from(idx) - 1) >> by) + 1) as i32;
        match out.last_mut() {
            Some(last) if last.0 == target => last.1 += c,
            _ => out.push((target, c)),
        }
    }
    out
}

/// `checkHistogramSpans`: only the first span may start below the previous one's end, and the
/// spans must cover exactly the buckets sent.
fn check_spans(spans: &[RawSpan], buckets: usize) -> Result<(), String> {
    let mut covered = 0u64;
    for (n, s) in spans.iter().enumerate() {
        if n > 0 && s.offset < 0 {
            return Err(format!("span number {} has a negative offset {}", n + 1, s.offset));
        }
        covered += u64::from(s.length);
    }
    if covered != buckets as u64 {
        return Err(format!("spans need {covered} buckets, have {buckets} buckets"));
    }
    Ok(())
}

/// `checkHistogramCustomBounds`: bounds strictly increasing and finite, spans with
/// non-negative offsets covering the buckets sent and no more than the bounds plus `+Inf`.
fn check_custom_bounds(bounds: &[f64], spans: &[RawSpan], buckets: usize) -> Result<(), String> {
    let mut prev = f64::NEG_INFINITY;
    for &b in bounds {
        if b.is_nan() || b <= prev {
            return Err(format!("custom buckets: previous bound is {prev} and current is {b}; bounds must increase"));
        }
        prev = b;
    }
    if prev == f64::INFINITY {
        return Err("custom buckets: the last bound must not be +Inf (the +Inf bucket is implicit)".to_string());
    }
    let (mut covered, mut extent) = (0u64, 0i64);
    for (n, s) in spans.iter().enumerate() {
        if s.offset < 0 {
            return Err(format!("custom buckets: span number {} has a negative offset {}", n + 1, s.offset));
        }
        covered += u64::from(s.length);
        extent += i64::from(s.offset) + i64::from(s.length);
    }
    if covered != buckets as u64 {
        return Err(format!("custom buckets: spans need {covered} buckets, have {buckets} buckets"));
    }
    if extent > bounds.len() as i64 + 1 {
        return Err(format!("custom buckets: spans reach bucket {extent} but there are {} bounds", bounds.len()));
    }
    Ok(())
}

/// Absolute counts from an integer histogram's deltas, and their total; a count below zero is
/// refused.
fn integrate(deltas: &[i64]) -> Result<(impl Iterator<Item = f64> + '_, u64), String> {
    let (mut current, mut total) = (0i64, 0u64);
    for (n, d) in deltas.iter().enumerate() {
        current = current.wrapping_add(*d);
        if current < 0 {
            return Err(format!(
                "bucket number {} has observation count of {current}; counts must not be negative",
                n + 1
            ));
        }
        total = total.saturating_add(current as u64);
    }
    let counts = deltas.iter().scan(0i64, |c, d| {
        *c = c.wrapping_add(*d);
        Some(*c as f64)
    });
    Ok((counts, total))
}

/// Buckets as sorted `(index, count)` pairs from spans (already checked to cover the counts).
fn place(spans: &[RawSpan], counts: impl Iterator<Item = f64>, side: &str) -> Result<Vec<(i32, f64)>, String> {
    let mut out = Vec::with_capacity(spans.iter().map(|s| s.length as usize).sum());
    let mut counts = counts;
    let mut next = 0i64;
    for s in spans {
        next += i64::from(s.offset);
        for _ in 0..s.length {
            let idx = i32::try_from(next).map_err(|_| format!("{side} side: bucket index {next} is out of range"))?;
            let Some(c) = counts.next() else { break };
            if c < 0.0 {
                return Err(format!("{side} side: bucket index {idx} has a negative count {c}"));
            }
            out.push((idx, c));
            next += 1;
        }
    }
    Ok(out)
}
