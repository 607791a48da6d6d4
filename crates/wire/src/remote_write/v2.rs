//! A hand-written protobuf reader for remote_write 2.0's `io.prometheus.write.v2.Request`
//! (Prometheus's `prompb/io/prometheus/write/v2/types.proto`).
//!
//! Strings come from the request's symbol table: every symbol is checked for UTF-8 once and
//! borrowed, and series and exemplars resolve their `labels_refs` into borrowed pairs that go
//! through the same validation as 1.0 labels before anything is allocated. Per-series metadata
//! becomes the model's per-family metadata (the family being the metric name without the
//! `_bucket`, `_sum` or `_count` suffix of histograms and summaries), one entry per family.
//! Start timestamps (when a counter or histogram began) come from each sample's and
//! histogram's `start_timestamp` (fields 3 and 17 of the current proto) or, for senders of
//! the experimental period, from the series' `created_timestamp = 6` (now reserved), which
//! applies to every sample of the series without its own; 0 means none.

use std::collections::HashSet;

use osprey_model::{MetricMetadata, MetricType, PackedWriteRequest, METRIC_NAME};

use super::decode::{
    exemplar_labels, metric_type, sample, series_histogram, series_labels, Reader, SyntaxError, LEN, VARINT,
};
use super::histogram::HistogramScratch;
use super::WireError;

/// The protobuf message name, as in the `proto=` parameter of the content type.
pub(super) const MESSAGE: &str = "io.prometheus.write.v2.Request";

#[derive(Default)]
struct Scratch<'a> {
    refs: Vec<u32>,
    labels: Vec<(&'a str, &'a str)>,
    histogram: HistogramScratch,
    families: HashSet<String>,
}

/// A failure inside the decoder: syntax errors become [`WireError::Protobuf`] naming this
/// message (`?` on a [`SyntaxError`] alone would name the 1.0 message).
enum Fail {
    Syntax(SyntaxError),
    Wire(WireError),
}

impl From<SyntaxError> for Fail {
    fn from(e: SyntaxError) -> Fail {
        Fail::Syntax(e)
    }
}

impl From<WireError> for Fail {
    fn from(e: WireError) -> Fail {
        Fail::Wire(e)
    }
}

pub(super) fn decode(body: &[u8]) -> Result<PackedWriteRequest, WireError> {
    decode_request(body).map_err(|e| match e {
        Fail::Syntax(e) => e.into_wire(MESSAGE),
        Fail::Wire(e) => e,
    })
}

fn decode_request(body: &[u8]) -> Result<PackedWriteRequest, Fail> {
    // The symbol table may come after the series that refer to it, so it is read first.
    let mut symbols: Vec<&str> = Vec::new();
    let mut r = Reader::new(body, 0);
    while !r.done() {
        match r.key()? {
            (4, wire) => {
                r.expect(wire, LEN)?;
                symbols.push(r.str()?);
            }
            (5, wire) => {
                r.expect(wire, LEN)?;
                r.len_delimited()?;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    let mut request = PackedWriteRequest::default();
    let mut scratch = Scratch::default();
    let mut r = Reader::new(body, 0);
    while !r.done() {
        match r.key()? {
            (5, _) => {
                let (bytes, base) = r.len_delimited()?;
                if let Some(m) = series(bytes, base, &symbols, &mut scratch, &mut request)? {
                    if scratch.families.insert(m.metric_family_name.clone()) {
                        request.metadata.push(m);
                    }
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(request)
}

/// A repeated `uint32` of symbol references, packed or not.
fn refs(r: &mut Reader<'_>, wire: u8, out: &mut Vec<u32>) -> Result<(), SyntaxError> {
    if wire == LEN {
        let (bytes, base) = r.len_delimited()?;
        let mut p = Reader::new(bytes, base);
        while !p.done() {
            out.push(p.varint()? as u32);
        }
        return Ok(());
    }
    r.expect(wire, VARINT)?;
    out.push(r.varint()? as u32);
    Ok(())
}

fn symbol<'a>(symbols: &[&'a str], r: u32) -> Result<&'a str, WireError> {
    symbols.get(r as usize).copied().ok_or(WireError::SymbolRefOutOfRange { reference: r, symbols: symbols.len() })
}

/// Name/value pairs from `labels_refs`.
fn resolve<'a>(symbols: &[&'a str], refs: &[u32], out: &mut Vec<(&'a str, &'a str)>) -> Result<(), WireError> {
    if !refs.len().is_multiple_of(2) {
        return Err(WireError::OddLabelRefs { count: refs.len() });
    }
    out.clear();
    for pair in refs.chunks_exact(2) {
        out.push((symbol(symbols, pair[0])?, symbol(symbols, pair[1])?));
    }
    Ok(())
}

/// `TimeSeries { labels_refs = 1; samples = 2; histograms = 3; exemplars = 4; metadata = 5;
/// created_timestamp = 6 }`, appended to `out`; returns the series' metadata when it says
/// anything.
fn series<'a>(
    bytes: &[u8],
    base: usize,
    symbols: &[&'a str],
    scratch: &mut Scratch<'a>,
    out: &mut PackedWriteRequest,
) -> Result<Option<MetricMetadata>, Fail> {
    scratch.refs.clear();
    let mut created = 0i64;
    let mut r = Reader::new(bytes, base);
    while !r.done() {
        match r.key()? {
            (1, wire) => refs(&mut r, wire, &mut scratch.refs)?,
            (2..=4, wire) => {
                r.expect(wire, LEN)?;
                r.len_delimited()?;
            }
            (6, VARINT) => created = r.varint()? as i64,
            (_, wire) => r.skip(wire)?,
        }
    }
    // Taken out of the scratch while exemplars reuse its other buffers; put back below.
    let mut labels = std::mem::take(&mut scratch.labels);
    resolve(symbols, &scratch.refs, &mut labels)?;
    series_labels(&mut labels)?;
    let mut series = out.push_series(labels.iter().copied());
    let mut meta = None;
    let mut r = Reader::new(bytes, base);
    while !r.done() {
        match r.key()? {
            (2, _) => {
                let (b, base) = r.len_delimited()?;
                let (s, start) = sample(b, base)?;
                series.push_sample(s);
                series.push_start_timestamp(s.t, if start != 0 { start } else { created });
            }
            (3, _) => {
                let (b, base) = r.len_delimited()?;
                let h = series_histogram(b, base, &labels, &mut scratch.histogram, MESSAGE)?;
                let start = match scratch.histogram.start_timestamp {
                    0 => created,
                    start => start,
                };
                series.push_start_timestamp(h.t, start);
                series.push_histogram(h);
            }
            (4, _) => {
                let (b, base) = r.len_delimited()?;
                series.push_exemplar(exemplar(b, base, symbols, &labels, scratch)?);
            }
            (5, wire) => {
                r.expect(wire, LEN)?;
                let (b, base) = r.len_delimited()?;
                meta = metadata(b, base, symbols, &labels)?;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    scratch.labels = labels;
    Ok(meta)
}

/// `Exemplar { labels_refs = 1; double value = 2; int64 timestamp = 3 }`.
fn exemplar<'a>(
    bytes: &[u8],
    base: usize,
    symbols: &[&'a str],
    series: &[(&str, &str)],
    scratch: &mut Scratch<'a>,
) -> Result<osprey_model::Exemplar, Fail> {
    let mut r = Reader::new(bytes, base);
    let (mut t, mut v) = (0, 0.0);
    scratch.refs.clear();
    while !r.done() {
        match r.key()? {
            (1, wire) => refs(&mut r, wire, &mut scratch.refs)?,
            (2, wire) => {
                r.expect(wire, super::decode::FIXED64)?;
                v = f64::from_bits(r.fixed64()?);
            }
            (3, wire) => {
                r.expect(wire, VARINT)?;
                t = r.varint()? as i64;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    let mut pairs = Vec::with_capacity(scratch.refs.len() / 2);
    resolve(symbols, &scratch.refs, &mut pairs)?;
    Ok(osprey_model::Exemplar { labels: exemplar_labels(pairs, series)?, t, v })
}

/// `Metadata { type = 1; help_ref = 3; unit_ref = 4 }`, as the metadata of the series' family;
/// `None` when it says nothing (unspecified type, no help, no unit).
fn metadata(
    bytes: &[u8],
    base: usize,
    symbols: &[&str],
    series: &[(&str, &str)],
) -> Result<Option<MetricMetadata>, Fail> {
    let mut r = Reader::new(bytes, base);
    let (mut kind, mut help, mut unit) = (0, 0, 0);
    while !r.done() {
        match r.key()? {
            (1, wire) => {
                r.expect(wire, VARINT)?;
                kind = r.varint()? as i32;
            }
            (3, wire) => {
                r.expect(wire, VARINT)?;
                help = r.varint()? as u32;
            }
            (4, wire) => {
                r.expect(wire, VARINT)?;
                unit = r.varint()? as u32;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    let (help, unit) = (symbol(symbols, help)?, symbol(symbols, unit)?);
    let metric_type = metric_type(kind);
    if metric_type == MetricType::Unknown && help.is_empty() && unit.is_empty() {
        return Ok(None);
    }
    let name = series.iter().find(|(n, _)| *n == METRIC_NAME).map_or("", |(_, v)| *v);
    Ok(Some(MetricMetadata {
        metric_family_name: family_name(name, metric_type).to_string(),
        metric_type,
        help: help.to_string(),
        unit: unit.to_string(),
    }))
}

/// The family a series belongs to: histogram and summary series carry a suffix.
pub(super) fn family_name(name: &str, t: MetricType) -> &str {
    let suffixes: &[&str] = match t {
        MetricType::Histogram | MetricType::GaugeHistogram => &["_bucket", "_sum", "_count"],
        MetricType::Summary => &["_sum", "_count"],
        _ => &[],
    };
    suffixes.iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}
