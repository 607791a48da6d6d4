//! The experimental `anchored` and `smoothed` selector modifiers (`rate(x[5m] anchored)`,
//! `x smoothed`), after Prometheus's extended range selectors: windows reach back (and, when
//! smoothed, forward) by the lookback delta so values at the window edges are known or
//! interpolated instead of extrapolated.
//!
//! promql-parser does not know the keywords, so [`rewrite`] removes each one before parsing
//! and marks the selector it follows with a sentinel matcher, which [`take_modifier`] reads
//! back (and removes) when the selector is evaluated.

use osprey_model::{Matcher, Sample};

use crate::error::PromqlError;
use crate::scan::{follows_operand, skip_string, skip_ws};

/// The label of the sentinel matcher carrying the modifier.
const SENTINEL: &str = "__osprey_range_modifier__";

/// A selector's range modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Modifier {
    #[default]
    None,
    Anchored,
    Smoothed,
}

impl Modifier {
    fn name(self) -> &'static str {
        match self {
            Modifier::None => "",
            Modifier::Anchored => "anchored",
            Modifier::Smoothed => "smoothed",
        }
    }

    /// Functions whose results are defined on extended windows (Prometheus's
    /// `AnchoredSafeFunctions` / `SmoothedSafeFunctions`), sorted for the error text.
    fn allowed(self) -> &'static [&'static str] {
        match self {
            Modifier::None => &[],
            Modifier::Anchored => &["changes", "delta", "increase", "rate", "resets"],
            Modifier::Smoothed => &["delta", "increase", "rate"],
        }
    }

    /// Rejects a function the modifier does not apply to, in Prometheus's words.
    pub fn check_function(self, func: &str) -> Result<(), PromqlError> {
        if self == Modifier::None || self.allowed().contains(&func) {
            return Ok(());
        }
        Err(PromqlError::execution(format!(
            "{} modifier can only be used with: {} - not with {func}",
            self.name(),
            self.allowed().join(", ")
        )))
    }
}

/// Splits the sentinel off a selector's matchers.
pub(crate) fn take_modifier(matchers: &mut Vec<Matcher>) -> Modifier {
    let mut m = Modifier::None;
    matchers.retain(|x| {
        if x.name != SENTINEL {
            return true;
        }
        m = if x.value == "smoothed" { Modifier::Smoothed } else { Modifier::Anchored };
        false
    });
    m
}

/// The modifier a parsed selector carries.
pub(crate) fn modifier_of(vs: &promql_parser::parser::VectorSelector) -> Modifier {
    match vs.matchers.matchers.iter().find(|m| m.name == SENTINEL) {
        Some(m) if m.value == "smoothed" => Modifier::Smoothed,
        Some(_) => Modifier::Anchored,
        None => Modifier::None,
    }
}

/// Words that are never metric names in selector position.
const KEYWORDS: [&str; 30] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    "start",
    "end",
    "inf",
    "nan",
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Removes `anchored`/`smoothed` keywords and marks the selectors they follow.
pub(crate) fn rewrite(query: &str) -> String {
    if !query.contains("anchored") && !query.contains("smoothed") {
        return query.to_string();
    }
    let b = query.as_bytes();
    // Start of the last selector seen (its name, or its `{` when it has no name).
    let mut last_selector: Option<usize> = None;
    let mut edits: Vec<(usize, Modifier)> = Vec::new();
    let mut removals: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = skip_string(b, i) + 1;
        } else if c == b'[' {
            i = skip_until(b, i, b']') + 1;
        } else if c == b'{' {
            last_selector = Some(i);
            i = skip_until(b, i, b'}') + 1;
        } else if c.is_ascii_digit() || c == b'.' {
            // Numbers and durations (`5m`, `1e3`) are never selectors.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let lower = query[start..i].to_ascii_lowercase();
            let next = skip_ws(b, i);
            let is_modifier = (lower == "anchored" || lower == "smoothed") && follows_operand(b, start);
            if is_modifier {
                if let Some(sel) = last_selector {
                    let m = if lower == "smoothed" { Modifier::Smoothed } else { Modifier::Anchored };
                    edits.push((sel, m));
                    removals.push((start, i));
                }
            } else if b.get(next) == Some(&b'(') {
                // A function call or a grouping/matching clause: skip label lists.
                if matches!(lower.as_str(), "by" | "without" | "on" | "ignoring" | "group_left" | "group_right") {
                    i = skip_until(b, next, b')') + 1;
                }
            } else if !KEYWORDS.contains(&lower.as_str()) {
                last_selector = Some(start);
                if b.get(next) == Some(&b'{') {
                    i = skip_until(b, next, b'}') + 1;
                }
            }
        } else {
            i += 1;
        }
    }
    apply_edits(query, &edits, &removals)
}

fn apply_edits(query: &str, edits: &[(usize, Modifier)], removals: &[(usize, usize)]) -> String {
    // Each edit inserts a sentinel matcher into the selector starting at its offset.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let b = query.as_bytes();
    for &(start, m) in edits {
        let matcher = format!("{SENTINEL}=\"{}\"", m.name());
        if b[start] == b'{' {
            let empty = query[start + 1..].trim_start().starts_with('}');
            inserts.push((start + 1, if empty { matcher } else { format!("{matcher}, ") }));
            continue;
        }
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b':') {
            end += 1;
        }
        let next = skip_ws(b, end);
        if b.get(next) == Some(&b'{') {
            let empty = query[next + 1..].trim_start().starts_with('}');
            inserts.push((next + 1, if empty { matcher } else { format!("{matcher}, ") }));
        } else {
            inserts.push((end, format!("{{{matcher}}}")));
        }
    }
    let mut out = String::with_capacity(query.len() + inserts.len() * 40);
    let mut pos = 0;
    let mut points: Vec<(usize, Option<&str>, usize)> =
        inserts.iter().map(|(p, s)| (*p, Some(s.as_str()), *p)).collect();
    points.extend(removals.iter().map(|&(s, e)| (s, None, e)));
    points.sort_by_key(|p| p.0);
    for (at, insert, end) in points {
        out.push_str(&query[pos..at]);
        match insert {
            Some(s) => {
                out.push_str(s);
                pos = at;
            }
            None => pos = end,
        }
    }
    out.push_str(&query[pos..]);
    out
}

/// The index of `close` ending the group opened at `open`, skipping strings.
fn skip_until(b: &[u8], open: usize, close: u8) -> usize {
    let mut i = open + 1;
    while i < b.len() && b[i] != close {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            i = skip_string(b, i);
        }
        i += 1;
    }
    i
}

/// Linear interpolation at `t`; a counter that dropped restarts from zero.
fn interpolate(p1: Sample, p2: Sample, t: i64, is_counter: bool) -> f64 {
    let mut y1 = p1.v;
    let y2 = p2.v;
    if is_counter && y2 < y1 {
        y1 = 0.0;
    }
    y1 + (y2 - y1) * (t - p1.t) as f64 / (p2.t - p1.t) as f64
}

/// `rate`, `increase` and `delta` over an anchored or smoothed window: the difference of
/// the values at the window edges (taken or interpolated), corrected for counter resets.
pub(crate) fn extended_rate(
    f: &[Sample],
    range_start: i64,
    range_end: i64,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let mut last = f.len().checked_sub(1)?;
    let mut first = f[..last].partition_point(|s| s.t <= range_start).saturating_sub(1);
    if smoothed {
        last = f[..last].partition_point(|s| s.t < range_end);
    }
    if f[last].t <= range_start || (smoothed && f[first].t > range_end) {
        return None;
    }
    let left = if smoothed && f[first].t < range_start {
        interpolate(f[first], f[first + 1], range_start, is_counter)
    } else {
        f[first].v
    };
    let right = if smoothed && last > 0 && f[last].t > range_end {
        interpolate(f[last - 1], f[last], range_end, is_counter)
    } else {
        f[last].v
    };
    let mut result = right - left;
    if is_counter {
        if f[first].t <= range_start {
            first += 1;
        }
        let end = if f[last].t >= range_end { last } else { last + 1 };
        let inner = if first < end { &f[first..end] } else { &[] };
        let mut prev = left;
        for p in inner {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
        if right < prev {
            result += prev;
        }
    }
    if is_rate {
        result /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result)
}

/// For anchored `changes`/`resets`: the samples from the last one at or before the window
/// start (the anchor) on; `None` when no sample lies after the window start.
pub(crate) fn anchored_samples(f: &[Sample], range_start: i64) -> Option<&[Sample]> {
    let after = f.partition_point(|s| s.t <= range_start);
    if after >= f.len() {
        return None;
    }
    Some(&f[after.saturating_sub(1)..])
}

/// A smoothed instant selector at `t`: the sample at `t`, else the interpolation between
/// its neighbours, else the last value before it (`window` holds `(t - lookback, t + lookback]`).
pub(crate) fn smoothed_value(window: &[Sample], t: i64) -> Option<f64> {
    let i = window.partition_point(|s| s.t < t);
    match window.get(i) {
        Some(s) if s.t == t => Some(s.v),
        Some(&next) if i > 0 => Some(interpolate(window[i - 1], next, t, false)),
        None if i > 0 => Some(window[i - 1].v),
        _ => None,
    }
}

/// A range vector with an anchored or smoothed modifier as a query result: the window's
/// samples with edge points at both ends (Prometheus's `extendFloats`).
pub(crate) fn extend_floats(f: &[Sample], mint: i64, maxt: i64, smoothed: bool) -> Vec<Sample> {
    let Some(mut last) = f.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut first = f[..last].partition_point(|s| s.t <= mint).saturating_sub(1);
    if smoothed {
        last = f[..last].partition_point(|s| s.t < maxt);
    }
    if f[last].t <= mint {
        return Vec::new();
    }
    let left =
        if smoothed && f[first].t < mint { interpolate(f[first], f[first + 1], mint, false) } else { f[first].v };
    let right = if smoothed && last > 0 && f[last].t > maxt {
        interpolate(f[last - 1], f[last], maxt, false)
    } else {
        f[last].v
    };
    if f[first].t <= mint {
        first += 1;
    }
    let end = if f[last].t >= maxt { last } else { last + 1 };
    let mut out = vec![Sample::new(mint, left)];
    if first < end {
        out.extend_from_slice(&f[first..end]);
    }
    out.push(Sample::new(maxt, right));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: &str) {
        assert_eq!(rewrite(query), expected, "{query}");
    }

    #[test]
    fn rewrites_modifiers_into_sentinels() {
        check("rate(x[5m])", "rate(x[5m])");
        check("smoothed + anchored", "smoothed + anchored");
        check("rate(x[5m] anchored)", r#"rate(x{__osprey_range_modifier__="anchored"}[5m] )"#);
        check(r#"increase(x{a="b"}[1m] smoothed)"#, r#"increase(x{__osprey_range_modifier__="smoothed", a="b"}[1m] )"#);
        check("x @ 100 smoothed + 0", r#"x{__osprey_range_modifier__="smoothed"} @ 100  + 0"#);
        check(
            "sum by (job) (x offset -100 smoothed)",
            r#"sum by (job) (x{__osprey_range_modifier__="smoothed"} offset -100 )"#,
        );
    }

    #[test]
    fn extended_rate_uses_edge_values() {
        let f: Vec<Sample> = [(0, 1.0), (15_000, 2.0), (30_000, 3.0)].iter().map(|&(t, v)| Sample::new(t, v)).collect();
        // Anchored: from the sample at or before the start to the last in the window.
        assert_eq!(extended_rate(&f[..2], -40_000, 20_000, false, true, false), Some(1.0));
        // Smoothed: interpolated at both edges.
        assert_eq!(extended_rate(&f, 7_500, 22_500, true, true, false), Some(1.0));
    }
}
