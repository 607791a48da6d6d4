//! A hand-written protobuf reader for remote_write 2.0's `io.prometheus.write.v2.Request`
//! (Prometheus's `prompb/io/prometheus/write/v2/types.proto`).
//!
//! Strings come from the request's symbol table: every symbol is checked for UTF-8 once and
//! borrowed, and series and exemplars resolve their `labels_refs` into borrowed pairs that go
//! through the same validation as 1.0 labels before anything is allocated. Per-series metadata
//! becomes the model's per-family metadata (the family being the metric name without the
//! `_bucket`, `_sum` or `_count` suffix of histograms and summaries), one entry per family.
//! `created_timestamp` is read past: Osprey does not store created timestamps yet.

use std::collections::HashSet;

use osprey_model::{Labels, MetricMetadata, MetricType, TimeSeries, WriteRequest};

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

pub(super) fn decode(body: &[u8]) -> Result<WriteRequest, WireError> {
    decode_request(body).map_err(|e| match e {
        Fail::Syntax(e) => e.into_wire(MESSAGE),
        Fail::Wire(e) => e,
    })
}

fn decode_request(body: &[u8]) -> Result<WriteRequest, Fail> {
    // The symbol table may come after the series that refer to it, so it is read first.
    let mut symbols: Vec<&str> = Vec::new();
    let mut n_series = 0;
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
                n_series += 1;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    let mut request = WriteRequest { series: Vec::with_capacity(n_series), metadata: Vec::new() };
    let mut scratch = Scratch::default();
    let mut r = Reader::new(body, 0);
    while !r.done() {
        match r.key()? {
            (5, _) => {
                let (bytes, base) = r.len_delimited()?;
                let (series, metadata) = series(bytes, base, &symbols, &mut scratch)?;
                if let Some(m) = metadata {
                    if scratch.families.insert(m.metric_family_name.clone()) {
                        request.metadata.push(m);
                    }
                }
                request.series.push(series);
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
/// created_timestamp = 6 }`, and the series' metadata when it says anything.
fn series<'a>(
    bytes: &[u8],
    base: usize,
    symbols: &[&'a str],
    scratch: &mut Scratch<'a>,
) -> Result<(TimeSeries, Option<MetricMetadata>), Fail> {
    let (mut n_samples, mut n_histograms, mut n_exemplars) = (0, 0, 0);
    scratch.refs.clear();
    let mut r = Reader::new(bytes, base);
    while !r.done() {
        match r.key()? {
            (1, wire) => refs(&mut r, wire, &mut scratch.refs)?,
            (field @ 2..=4, wire) => {
                r.expect(wire, LEN)?;
                r.len_delimited()?;
                match field {
                    2 => n_samples += 1,
                    3 => n_histograms += 1,
                    _ => n_exemplars += 1,
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    resolve(symbols, &scratch.refs, &mut scratch.labels)?;
    let labels = series_labels(&mut scratch.labels)?;
    let mut out = TimeSeries {
        labels,
        samples: Vec::with_capacity(n_samples),
        exemplars: Vec::with_capacity(n_exemplars),
        histograms: Vec::with_capacity(n_histograms),
    };
    let mut meta = None;
    let mut r = Reader::new(bytes, base);
    while !r.done() {
        match r.key()? {
            (2, _) => {
                let (b, base) = r.len_delimited()?;
                out.samples.push(sample(b, base)?);
            }
            (3, _) => {
                let (b, base) = r.len_delimited()?;
                out.histograms.push(series_histogram(b, base, &out.labels, &mut scratch.histogram, MESSAGE)?);
            }
            (4, _) => {
                let (b, base) = r.len_delimited()?;
                out.exemplars.push(exemplar(b, base, symbols, &out.labels, scratch)?);
            }
            (5, wire) => {
                r.expect(wire, LEN)?;
                let (b, base) = r.len_delimited()?;
                meta = metadata(b, base, symbols, &out.labels)?;
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((out, meta))
}

/// `Exemplar { labels_refs = 1; double value = 2; int64 timestamp = 3 }`.
fn exemplar<'a>(
    bytes: &[u8],
    base: usize,
    symbols: &[&'a str],
    series: &Labels,
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
fn metadata(bytes: &[u8], base: usize, symbols: &[&str], series: &Labels) -> Result<Option<MetricMetadata>, Fail> {
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
    let name = series.metric_name().unwrap_or_default();
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
