//! The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text, as served on
//! `/metrics` pages and read by the scraper.
//!
//! Semantics follow Prometheus's own parsers (`model/textparse`):
//! - timestamps are integer milliseconds in the Prometheus format and float seconds in
//!   OpenMetrics; both come out as milliseconds;
//! - OpenMetrics `_created` series of counters, histograms, gauge histograms and summaries are
//!   not samples (Prometheus ignores them by default) and are skipped;
//! - `le` values of histograms and `quantile` values of summaries are normalised to Go's float
//!   formatting (`le="1"` becomes `le="1.0"`), as Prometheus 3 does for both formats, so the
//!   same series has the same labels whichever format a target serves;
//! - a label name given twice fails the parse, as it fails a Prometheus scrape.
//!
//! Not supported: the protobuf exposition format, native histograms, and the quoted UTF-8
//! metric-name syntax (`{"my.metric"}`) of the Prometheus 3 text format.

mod float;
mod line;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use osprey_model::{Label, Labels, MetricMetadata, MetricType, Timestamp, METRIC_NAME};

use line::Cursor;

/// The `Accept` header Prometheus sends when scraping: OpenMetrics preferred, the classic text
/// format accepted, anything else as a last resort.
pub const SCRAPE_ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpositionFormat {
    /// `text/plain; version=0.0.4`.
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0` (and the older 0.0.1).
    OpenMetrics,
}

impl ExpositionFormat {
    /// The format a `Content-Type` header names, or `None` for a type that is neither text
    /// format (protobuf, HTML, an empty header). Parameters other than the media type are
    /// ignored, as Prometheus ignores them.
    pub fn from_content_type(content_type: &str) -> Option<ExpositionFormat> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Some(ExpositionFormat::OpenMetrics)
        } else if media_type.eq_ignore_ascii_case("text/plain") {
            Some(ExpositionFormat::PrometheusText)
        } else {
            None
        }
    }

    /// The `Content-Type` to serve a body of this format with.
    pub fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            ExpositionFormat::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One sample line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The series, including `__name__`.
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds, when the exposition gives one.
    pub timestamp: Option<Timestamp>,
    pub exemplar: Option<ParsedExemplar>,
}

/// An OpenMetrics exemplar (`# {trace_id="abc"} 1.0 1.6e9`). Prometheus gives exemplars
/// without a timestamp the scrape's timestamp; that is the scraper's job.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExemplar {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds, when the exemplar gives one.
    pub timestamp: Option<Timestamp>,
}

/// Why an exposition was rejected, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ExpositionError {
    pub line: usize,
    pub problem: Problem,
}

/// What is wrong with a line. Quoted tokens are cut to a readable length.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("the body is not valid UTF-8")]
    InvalidUtf8,
    #[error("expected a metric name, got {0:?}")]
    ExpectedMetricName(String),
    #[error("expected a label name, got {0:?}")]
    ExpectedLabelName(String),
    #[error("expected '=' after label name {0:?}")]
    ExpectedEquals(String),
    #[error("expected a double-quoted value for label {0:?}")]
    ExpectedLabelValue(String),
    #[error("label value of {0:?} is missing its closing quote")]
    UnterminatedLabelValue(String),
    #[error("expected ',' or '}}' after a label, got {0:?}")]
    ExpectedCommaOrBrace(String),
    #[error("label name {0:?} appears twice in one series; each label may be given once")]
    DuplicateLabel(String),
    #[error("expected value after metric, got {0:?}")]
    ExpectedValue(String),
    #[error("expected a timestamp ({unit}) after the value, got {got:?}")]
    ExpectedTimestamp { unit: &'static str, got: String },
    #[error("unexpected {0:?} after the sample; a sample line is: name{{labels}} value [timestamp]")]
    TrailingData(String),
    #[error("exemplars are only allowed in OpenMetrics; serve the page as application/openmetrics-text")]
    ExemplarInTextFormat,
    #[error("expected '{{' opening the exemplar's labels, got {0:?}")]
    ExpectedExemplarLabels(String),
    #[error("expected the exemplar's value, got {0:?}")]
    ExpectedExemplarValue(String),
    #[error("malformed {0} line: expected '# {0} <metric name> ...'")]
    MalformedMetadata(&'static str),
    #[error("unknown metric type {0:?}; known are counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown, untyped")]
    UnknownType(String),
    #[error("OpenMetrics allows only '# HELP', '# TYPE', '# UNIT' and '# EOF' comments, got {0:?}")]
    UnknownComment(String),
    #[error("content after '# EOF'; the end marker must be the last line")]
    DataAfterEof,
    #[error("an OpenMetrics body must end with '# EOF'")]
    MissingEof,
}

/// Parses `body` in `format`, appending its samples to `out` and one entry per metric family
/// that has a `# TYPE`, `# HELP` or `# UNIT` line to `meta` (entries already in `meta` are
/// left alone, even for the same family).
///
/// Fails on the first malformed line; `out` and `meta` then hold what came before it, which a
/// scraper discards (Prometheus fails the whole scrape).
pub fn parse(
    body: &[u8],
    format: ExpositionFormat,
    out: &mut Vec<ParsedSample>,
    meta: &mut Vec<MetricMetadata>,
) -> Result<(), ExpositionError> {
    let text = std::str::from_utf8(body).map_err(|e| ExpositionError {
        line: 1 + body[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
        problem: Problem::InvalidUtf8,
    })?;
    let mut parser = Parser { format, current: None, family_index: HashMap::new(), meta, out };
    let mut lines = text.split('\n').enumerate().peekable();
    let mut line_count = 0;
    while let Some((index, raw)) = lines.next() {
        line_count = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match parser.line(line) {
            Ok(LineKind::Other) => {}
            Ok(LineKind::Eof) => {
                // Only the empty piece after a final newline may follow the end marker.
                return match lines.next() {
                    Some((_, "")) if lines.peek().is_none() => Ok(()),
                    Some((i, _)) => Err(ExpositionError { line: i + 1, problem: Problem::DataAfterEof }),
                    None => Ok(()),
                };
            }
            Err(problem) => return Err(ExpositionError { line: index + 1, problem }),
        }
    }
    if format == ExpositionFormat::OpenMetrics {
        return Err(ExpositionError { line: line_count, problem: Problem::MissingEof });
    }
    Ok(())
}

enum LineKind {
    Eof,
    Other,
}

/// Whether a sample named `sample_name` belongs to the family `family` (`foo_bucket` to `foo`).
fn in_family(sample_name: &str, family: &str) -> bool {
    sample_name.strip_prefix(family).is_some_and(|suffix| {
        matches!(suffix, "" | "_total" | "_created" | "_bucket" | "_count" | "_sum" | "_gcount" | "_gsum" | "_info")
    })
}

struct Parser<'a> {
    format: ExpositionFormat,
    /// The `meta` entry of the family named by the latest metadata line, which decides how
    /// its samples are read (which `_created` lines to skip, which labels to normalise).
    current: Option<usize>,
    /// Where each family this parse added sits in `meta`.
    family_index: HashMap<String, usize>,
    meta: &'a mut Vec<MetricMetadata>,
    out: &'a mut Vec<ParsedSample>,
}

impl Parser<'_> {
    fn line(&mut self, line: &str) -> Result<LineKind, Problem> {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            return Ok(LineKind::Other);
        }
        match trimmed.strip_prefix('#') {
            Some(comment) => self.comment(comment),
            None => {
                self.sample(trimmed)?;
                Ok(LineKind::Other)
            }
        }
    }

    fn comment(&mut self, comment: &str) -> Result<LineKind, Problem> {
        let open_metrics = self.format == ExpositionFormat::OpenMetrics;
        let rest = comment.trim_start_matches([' ', '\t']);
        let (keyword, rest) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        match keyword {
            "EOF" if open_metrics && rest.trim().is_empty() => Ok(LineKind::Eof),
            "HELP" => {
                let (name, help) = metadata_name(rest, "HELP")?;
                let help = unescape_help(help, open_metrics);
                self.family_meta(name).help = help;
                Ok(LineKind::Other)
            }
            "TYPE" => {
                let (name, type_name) = metadata_name(rest, "TYPE")?;
                let metric_type = parse_type(type_name.trim())?;
                self.family_meta(name).metric_type = metric_type;
                Ok(LineKind::Other)
            }
            "UNIT" if open_metrics => {
                let (name, unit) = metadata_name(rest, "UNIT")?;
                self.family_meta(name).unit = unit.trim().to_string();
                Ok(LineKind::Other)
            }
            _ if open_metrics => Err(Problem::UnknownComment(clip(&format!("#{comment}")))),
            // Any other comment is allowed in the Prometheus format.
            _ => Ok(LineKind::Other),
        }
    }

    /// The metadata entry of family `name`, created when new; switches the current family.
    fn family_meta(&mut self, name: &str) -> &mut MetricMetadata {
        // HELP, TYPE and UNIT of one family come together: skip the lookup for the 2nd and 3rd.
        let same = self.current.filter(|&i| self.meta[i].metric_family_name == name);
        let index = match same.or_else(|| self.family_index.get(name).copied()) {
            Some(i) => i,
            None => {
                self.meta.push(MetricMetadata { metric_family_name: name.to_string(), ..Default::default() });
                self.family_index.insert(name.to_string(), self.meta.len() - 1);
                self.meta.len() - 1
            }
        };
        self.current = Some(index);
        &mut self.meta[index]
    }

    /// The type of the current family if the sample belongs to it, else unknown.
    fn type_of(&self, sample_name: &str) -> MetricType {
        match self.current.map(|i| &self.meta[i]) {
            Some(m) if in_family(sample_name, &m.metric_family_name) => m.metric_type,
            _ => MetricType::Unknown,
        }
    }

    fn sample(&mut self, line: &str) -> Result<(), Problem> {
        let mut cur = Cursor::new(line);
        let name = cur.metric_name();
        if name.is_empty() {
            return Err(Problem::ExpectedMetricName(clip(cur.token())));
        }
        let metric_type = self.type_of(name);
        let skip_created = name.ends_with("_created")
            && self.format == ExpositionFormat::OpenMetrics
            && matches!(
                metric_type,
                MetricType::Counter | MetricType::Histogram | MetricType::GaugeHistogram | MetricType::Summary
            );
        if skip_created {
            return Ok(());
        }
        let mut labels = Vec::with_capacity(8);
        labels.push(Label::new(METRIC_NAME, name));
        let blank_after_name = cur.skip_blanks();
        if cur.eat('{') {
            cur.labels(&mut labels)?;
            cur.skip_blanks();
        } else if !blank_after_name {
            return Err(Problem::ExpectedValue(clip(cur.token())));
        }
        normalize_bucket_label(metric_type, &mut labels);
        let labels = into_labels(labels)?;

        let value_token = cur.token();
        let value = float::parse(value_token).ok_or_else(|| Problem::ExpectedValue(clip(value_token)))?;
        cur.skip_blanks();

        let mut timestamp = None;
        if !cur.at_end() && !cur.at('#') {
            timestamp = Some(self.timestamp(&mut cur)?);
            cur.skip_blanks();
        }
        let mut exemplar = None;
        if cur.at('#') {
            if self.format != ExpositionFormat::OpenMetrics {
                return Err(Problem::ExemplarInTextFormat);
            }
            exemplar = Some(self.exemplar(&mut cur)?);
        }
        if !cur.at_end() {
            return Err(Problem::TrailingData(clip(cur.rest())));
        }
        self.out.push(ParsedSample { labels, value, timestamp, exemplar });
        Ok(())
    }

    /// A sample or exemplar timestamp, converted to milliseconds.
    fn timestamp(&self, cur: &mut Cursor<'_>) -> Result<Timestamp, Problem> {
        let token = cur.token();
        let parsed = match self.format {
            ExpositionFormat::PrometheusText => token.parse::<i64>().ok(),
            ExpositionFormat::OpenMetrics => float::parse(token)
                .filter(|s| s.is_finite())
                // Truncating, as Prometheus does (`int64(ts * 1000)`).
                .map(|seconds| (seconds * 1000.0) as i64),
        };
        parsed.ok_or_else(|| {
            let unit = match self.format {
                ExpositionFormat::PrometheusText => "integer milliseconds",
                ExpositionFormat::OpenMetrics => "seconds",
            };
            Problem::ExpectedTimestamp { unit, got: clip(token) }
        })
    }

    fn exemplar(&self, cur: &mut Cursor<'_>) -> Result<ParsedExemplar, Problem> {
        cur.eat('#');
        cur.skip_blanks();
        if !cur.eat('{') {
            return Err(Problem::ExpectedExemplarLabels(clip(cur.token())));
        }
        let mut labels = Vec::with_capacity(2);
        cur.labels(&mut labels)?;
        let labels = into_labels(labels)?;
        cur.skip_blanks();
        let token = cur.token();
        let value = float::parse(token).ok_or_else(|| Problem::ExpectedExemplarValue(clip(token)))?;
        cur.skip_blanks();
        let timestamp = if cur.at_end() { None } else { Some(self.timestamp(cur)?) };
        cur.skip_blanks();
        Ok(ParsedExemplar { labels, value, timestamp })
    }
}

/// Splits `NAME rest` after a metadata keyword.
fn metadata_name<'a>(rest: &'a str, keyword: &'static str) -> Result<(&'a str, &'a str), Problem> {
    let rest = rest.trim_start_matches([' ', '\t']);
    let mut cur = Cursor::new(rest);
    let name = cur.metric_name();
    let tail = cur.rest();
    let ends_at_blank = tail.is_empty() || tail.starts_with([' ', '\t']);
    if name.is_empty() || !ends_at_blank {
        return Err(Problem::MalformedMetadata(keyword));
    }
    Ok((name, tail.get(1..).unwrap_or("")))
}

fn parse_type(name: &str) -> Result<MetricType, Problem> {
    Ok(match name {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "gaugehistogram" => MetricType::GaugeHistogram,
        "summary" => MetricType::Summary,
        "info" => MetricType::Info,
        "stateset" => MetricType::StateSet,
        "unknown" | "untyped" => MetricType::Unknown,
        other => return Err(Problem::UnknownType(clip(other))),
    })
}

/// HELP text escapes: `\\` and `\n` in both formats, `\"` too in OpenMetrics.
fn unescape_help(help: &str, open_metrics: bool) -> String {
    if !help.contains('\\') {
        return help.to_string();
    }
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if open_metrics => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Rewrites `le` (histograms) and `quantile` (summaries) to Go's float formatting.
fn normalize_bucket_label(metric_type: MetricType, labels: &mut [Label]) {
    let name = match metric_type {
        MetricType::Histogram | MetricType::GaugeHistogram => "le",
        MetricType::Summary => "quantile",
        _ => return,
    };
    if let Some(label) = labels.iter_mut().find(|l| l.name == name) {
        if let Some(v) = float::parse(&label.value) {
            label.value = float::format_open_metrics(v);
        }
    }
}

/// Sorts, rejects repeated names, drops empty values.
fn into_labels(mut labels: Vec<Label>) -> Result<Labels, Problem> {
    labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(Problem::DuplicateLabel(w[0].name.clone()));
    }
    labels.retain(|l| !l.value.is_empty());
    Ok(Labels::from_sorted(labels))
}

/// A token cut to at most 40 characters for an error message.
fn clip(token: &str) -> String {
    match token.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &token[..i]),
        None => token.to_string(),
    }
}
