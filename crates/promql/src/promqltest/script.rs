//! Parsing of Prometheus's test-script language (`promql/promqltest`): commands, series
//! definitions with value expansion, and eval expectations.

use osprey_model::{CounterResetHint, FloatHistogram, Labels, METRIC_NAME, STALE_NAN};
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::{self, Expr};

/// One value slot of a series definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// No sample at this step.
    Gap,
    Float(f64),
    /// A native histogram sample, and whether its literal stated `counter_reset_hint`
    /// (only then is the hint compared).
    Histogram(Box<FloatHistogram>, bool),
}

#[derive(Debug, Clone)]
pub(crate) struct SeriesDef {
    pub labels: Labels,
    pub items: Vec<Item>,
    /// From a `name{…}@st` line before it: per item, the start timestamp's offset from the
    /// sample's own time (ms), or `None` for no start timestamp.
    pub starts: Option<Vec<Option<i64>>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AnnotationExpect {
    /// `expect warn` (or info) was given at all.
    pub any: bool,
    pub none: bool,
    pub msgs: Vec<String>,
    pub regexes: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub line: usize,
    pub kind: EvalKind,
    pub query: String,
    pub fail: bool,
    pub fail_msg: Option<String>,
    pub fail_regex: Option<String>,
    pub warn: AnnotationExpect,
    pub info: AnnotationExpect,
    pub ordered: bool,
    pub string: Option<String>,
    pub range_vector: Option<(i64, i64, i64)>,
    pub scalar: Option<f64>,
    pub series: Vec<SeriesDef>,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Clear,
    Load {
        step: i64,
        nhcb: bool,
        series: Vec<SeriesDef>,
    },
    Eval(Box<Eval>),
    /// A block the runner could not parse; fails the evals it contains.
    Invalid {
        line: usize,
        message: String,
        evals: usize,
    },
}

/// Splits a script into commands. Errors become [`Command::Invalid`] so the rest still runs.
pub(crate) fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<&str> = text.split('\n').map(str::trim).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() || l.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        // `clear` is a block of its own: a command may follow on the next line.
        let is_clear = l.eq_ignore_ascii_case("clear");
        while !is_clear && i < lines.len() && !lines[i].is_empty() && !lines[i].starts_with('#') {
            i += 1;
        }
        let block = &lines[start..i];
        let cmd = parse_block(start + 1, block).unwrap_or_else(|message| Command::Invalid {
            line: start + 1,
            message,
            evals: usize::from(block[0].to_ascii_lowercase().starts_with("eval")),
        });
        out.push(cmd);
    }
    out
}

fn parse_block(line: usize, block: &[&str]) -> Result<Command, String> {
    let head = block[0];
    let word = head.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if word == "clear" {
        return Ok(Command::Clear);
    }
    if word == "load" || word == "load_with_nhcb" {
        let step_text = head.split_whitespace().nth(1).ok_or("load without step")?;
        let step = parse_duration(step_text)?;
        let mut series = Vec::new();
        // A start-timestamp line waiting for its series line.
        let mut pending: Option<(Labels, Vec<Option<i64>>)> = None;
        for l in &block[1..] {
            let (desc, values) = split_series_line(l);
            if let Some(desc) = desc.strip_suffix("@st") {
                if pending.is_some() {
                    return Err("@st line has no following sample line".into());
                }
                pending = Some((parse_labels(desc)?, parse_start_offsets(values)?));
                continue;
            }
            let (labels, items) = (parse_labels(desc)?, parse_items(values)?);
            let starts = match pending.take() {
                None => None,
                Some((st_labels, _)) if st_labels != labels => {
                    return Err("@st metric does not match the following sample line metric".into())
                }
                Some((_, offsets)) if offsets.len() != items.len() => {
                    return Err(format!("@st line has {} values but sample line has {}", offsets.len(), items.len()))
                }
                Some((_, offsets)) => Some(offsets),
            };
            series.push(SeriesDef { labels, items, starts });
        }
        if pending.is_some() {
            return Err("@st line has no following sample line".into());
        }
        return Ok(Command::Load { step, nhcb: word == "load_with_nhcb", series });
    }
    if word.starts_with("eval") {
        return parse_eval(line, block).map(|e| Command::Eval(Box::new(e)));
    }
    Err(format!("unknown command {word:?}"))
}

fn parse_eval(line: usize, block: &[&str]) -> Result<Eval, String> {
    let head = block[0];
    let (word, rest) = head.split_once(char::is_whitespace).ok_or("eval without arguments")?;
    let word = word.to_ascii_lowercase();
    let rest = rest.trim_start();
    let mut ev = Eval {
        line,
        kind: EvalKind::Instant { at: 0 },
        query: String::new(),
        fail: word == "eval_fail",
        fail_msg: None,
        fail_regex: None,
        warn: AnnotationExpect { any: word == "eval_warn", ..Default::default() },
        info: AnnotationExpect { any: word == "eval_info", ..Default::default() },
        ordered: word == "eval_ordered",
        string: None,
        range_vector: None,
        scalar: None,
        series: Vec::new(),
    };
    if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim_start().strip_prefix("at").ok_or("instant eval without `at`")?.trim_start();
        let (t, q) = r.split_once(char::is_whitespace).ok_or("instant eval without query")?;
        ev.kind = EvalKind::Instant { at: parse_duration(t)? };
        ev.query = q.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range") {
        let r = r.trim_start().strip_prefix("from").ok_or("range eval without `from`")?.trim_start();
        let (start, r) = r.split_once(" to ").ok_or("range eval without `to`")?;
        let (end, r) = r.trim_start().split_once(" step ").ok_or("range eval without `step`")?;
        let (step, q) = r.trim_start().split_once(char::is_whitespace).ok_or("range eval without query")?;
        ev.kind = EvalKind::Range {
            start: parse_duration(start.trim())?,
            end: parse_duration(end.trim())?,
            step: parse_duration(step)?,
        };
        ev.query = q.trim().to_string();
    } else {
        return Err(format!("invalid eval command {head:?}"));
    }
    for l in &block[1..] {
        if let Some(d) = l.strip_prefix("expect ") {
            parse_directive(&mut ev, d.trim())?;
        } else if let Some(m) = l.strip_prefix("expected_fail_message") {
            ev.fail_msg = Some(m.trim().to_string());
        } else if let Some(m) = l.strip_prefix("expected_fail_regexp") {
            ev.fail_regex = Some(m.trim().to_string());
        } else if let Some(v) = parse_number(l) {
            ev.scalar = Some(v);
        } else {
            let (desc, values) = split_series_line(l);
            ev.series.push(SeriesDef { labels: parse_labels(desc)?, items: parse_items(values)?, starts: None });
        }
    }
    Ok(ev)
}

fn parse_directive(ev: &mut Eval, d: &str) -> Result<(), String> {
    let (kind, rest) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
    let rest = rest.trim();
    let target = match kind {
        "fail" => {
            ev.fail = true;
            if let Some(m) = rest.strip_prefix("msg:") {
                ev.fail_msg = Some(m.trim().to_string());
            } else if let Some(r) = rest.strip_prefix("regex:") {
                ev.fail_regex = Some(r.trim().to_string());
            }
            return Ok(());
        }
        "ordered" => {
            ev.ordered = true;
            return Ok(());
        }
        "no_warn" => {
            ev.warn.none = true;
            return Ok(());
        }
        "no_info" => {
            ev.info.none = true;
            return Ok(());
        }
        "string" => {
            ev.string = Some(unquote(rest)?);
            return Ok(());
        }
        "range" => {
            // `range vector from A to B step S`
            let r = rest.strip_prefix("vector").ok_or("bad `expect range`")?.trim();
            let r = r.strip_prefix("from").ok_or("bad `expect range vector`")?.trim();
            let (a, r) = r.split_once(" to ").ok_or("bad `expect range vector`")?;
            let (b, s) = r.split_once(" step ").ok_or("bad `expect range vector`")?;
            ev.range_vector = Some((parse_duration(a.trim())?, parse_duration(b.trim())?, parse_duration(s.trim())?));
            return Ok(());
        }
        "warn" => &mut ev.warn,
        "info" => &mut ev.info,
        other => return Err(format!("unknown expectation {other:?}")),
    };
    target.any = true;
    if let Some(m) = rest.strip_prefix("msg:") {
        target.msgs.push(m.trim().to_string());
    } else if let Some(r) = rest.strip_prefix("regex:") {
        target.regexes.push(r.trim().to_string());
    }
    Ok(())
}

fn unquote(s: &str) -> Result<String, String> {
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return Ok(s[1..s.len() - 1].to_string());
    }
    match parser::parse(s) {
        Ok(Expr::StringLiteral(l)) => Ok(l.val),
        _ => Err(format!("invalid string literal {s}")),
    }
}

/// Splits `name{a="b c"} 1 2` into the descriptor and the values, respecting quotes.
pub(crate) fn split_series_line(l: &str) -> (&str, &str) {
    let mut depth = 0;
    let mut in_quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in l.char_indices() {
        if let Some(q) = in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_quote = Some(c),
            '{' => depth += 1,
            '}' => depth -= 1,
            c if c.is_whitespace() && depth == 0 => return (&l[..i], l[i..].trim()),
            _ => {}
        }
    }
    (l, "")
}

/// A series descriptor (`name{a="b"}`, `{__name__="x"}`, `{}`) as a label set.
pub(crate) fn parse_labels(desc: &str) -> Result<Labels, String> {
    if desc.replace(char::is_whitespace, "") == "{}" {
        return Ok(Labels::empty());
    }
    let expr = parser::parse(desc).map_err(|e| format!("invalid series {desc:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("invalid series {desc:?}"));
    };
    let mut pairs = Vec::new();
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.to_string(), n));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, ParserMatchOp::Equal) {
            return Err(format!("series {desc:?} may only use `=` matchers"));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Splits a values string into items, keeping `{{…}}` histogram literals whole.
fn tokenize_values(values: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = values.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut depth = 0;
        while i < b.len() {
            if b[i..].starts_with(b"{{") {
                depth += 1;
                i += 2;
                continue;
            }
            if b[i..].starts_with(b"}}") {
                depth -= 1;
                i += 2;
                continue;
            }
            if depth == 0 && b[i].is_ascii_whitespace() {
                break;
            }
            i += 1;
        }
        out.push(&values[start..i]);
    }
    out
}

pub(crate) fn parse_items(values: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    for tok in tokenize_values(values) {
        expand_item(tok, &mut out)?;
    }
    Ok(out)
}

fn expand_item(tok: &str, out: &mut Vec<Item>) -> Result<(), String> {
    if tok.starts_with("{{") {
        return expand_histograms(tok, out);
    }
    if tok == "_" {
        out.push(Item::Gap);
        return Ok(());
    }
    if tok == "stale" {
        out.push(Item::Float(STALE_NAN));
        return Ok(());
    }
    if let Some(v) = parse_number(tok) {
        out.push(Item::Float(v));
        return Ok(());
    }
    // `<base>x<N>` where base is `_`, `stale`, `a`, `a+b` or `a-b`.
    let (base, n) = tok.rsplit_once('x').ok_or_else(|| format!("invalid value {tok:?}"))?;
    let n: usize = n.parse().map_err(|_| format!("invalid value {tok:?}"))?;
    match base {
        "_" => out.extend(std::iter::repeat_n(Item::Gap, n + 1)),
        "stale" => out.extend(std::iter::repeat_n(Item::Float(STALE_NAN), n + 1)),
        _ => {
            let (a, delta) = split_step(base).ok_or_else(|| format!("invalid value {tok:?}"))?;
            let mut v = a;
            for _ in 0..=n {
                out.push(Item::Float(v));
                v += delta;
            }
        }
    }
    Ok(())
}

/// `{{A}}`, `{{A}}xN`, `{{A}}+{{B}}xN` or `{{A}}-{{B}}xN`.
fn expand_histograms(tok: &str, out: &mut Vec<Item>) -> Result<(), String> {
    let bad = || format!("invalid histogram item {tok:?}");
    let end = tok.find("}}").ok_or_else(bad)?;
    let (base, base_hint) = parse_histogram(&tok[2..end])?;
    let rest = &tok[end + 2..];
    if rest.is_empty() {
        out.push(Item::Histogram(Box::new(base), base_hint));
        return Ok(());
    }
    let times = |n: &str| n.parse::<usize>().map_err(|_| bad());
    if let Some(n) = rest.strip_prefix('x') {
        for _ in 0..=times(n)? {
            out.push(Item::Histogram(Box::new(base.clone()), base_hint));
        }
        return Ok(());
    }
    let negate = rest.starts_with('-');
    let inc_text = rest[1..].strip_prefix("{{").ok_or_else(bad)?;
    let inc_end = inc_text.find("}}").ok_or_else(bad)?;
    let (inc, inc_hint) = parse_histogram(&inc_text[..inc_end])?;
    let n = times(inc_text[inc_end + 2..].strip_prefix('x').ok_or_else(bad)?)?;
    let mut cur = base;
    out.push(Item::Histogram(Box::new(cur.clone()), inc_hint));
    for _ in 0..n {
        let res = if negate { cur.sub(&inc) } else { cur.add(&inc) };
        res.map_err(|e| format!("{tok}: {e}"))?;
        out.push(Item::Histogram(Box::new(cur.clone()), inc_hint));
    }
    Ok(())
}

/// The inside of a `{{…}}` literal: `key:value` pairs, values numbers or `[…]` lists.
fn parse_histogram(text: &str) -> Result<(FloatHistogram, bool), String> {
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let (mut buckets, mut n_buckets, mut offset, mut n_offset) = (Vec::new(), Vec::new(), 0i32, 0i32);
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':').ok_or_else(|| format!("invalid histogram {text:?}"))?;
        let after = after.trim_start();
        let (value, next) = if let Some(list) = after.strip_prefix('[') {
            let close = list.find(']').ok_or_else(|| format!("unclosed list in histogram {text:?}"))?;
            (&list[..close], &list[close + 1..])
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        rest = next.trim_start();
        let num = |v: &str| parse_number(v).ok_or_else(|| format!("invalid number {v:?} in histogram {text:?}"));
        let list = |v: &str| v.split_whitespace().map(num).collect::<Result<Vec<f64>, String>>();
        match key.trim() {
            "schema" => h.schema = num(value)? as i32,
            "sum" => h.sum = num(value)?,
            "count" => h.count = num(value)?,
            "z_bucket" => h.zero_count = num(value)?,
            "z_bucket_w" => h.zero_threshold = num(value)?,
            "offset" => offset = num(value)? as i32,
            "n_offset" => n_offset = num(value)? as i32,
            "buckets" => buckets = list(value)?,
            "n_buckets" => n_buckets = list(value)?,
            "custom_values" => h.custom_values = list(value)?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("invalid counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram key {other:?}")),
        }
    }
    h.positive = buckets.into_iter().enumerate().map(|(i, c)| (offset + i as i32, c)).collect();
    h.negative = n_buckets.into_iter().enumerate().map(|(i, c)| (n_offset + i as i32, c)).collect();
    Ok((h, hint_set))
}

/// The items of a start-timestamp line: `_`, `_xN` (N gaps), `<dur>`, `<dur>xN` (N+1
/// equal), `<dur>+<dur>xN` / `<dur>-<dur>xN` (N+1 stepping), where `<dur>` is a signed
/// duration offset from the sample's own time (`-1m`, `+30s`, `-0ms`, `0`).
fn parse_start_offsets(values: &str) -> Result<Vec<Option<i64>>, String> {
    let mut out = Vec::new();
    for item in values.split_whitespace() {
        let bad = |why: &str| format!("invalid @st item {item:?}: {why}");
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            match n.parse::<usize>() {
                Ok(n) if n > 0 => out.extend(std::iter::repeat_n(None, n)),
                _ => return Err(bad("invalid repeat count")),
            }
            continue;
        }
        let (base, rest) = duration_prefix(item).map_err(|e| bad(&e))?;
        let repeat = |n: &str| n.parse::<usize>().map_err(|_| bad("invalid repeat count"));
        let (step, n) = if rest.is_empty() {
            (0, 0)
        } else if let Some(n) = rest.strip_prefix('x') {
            (0, repeat(n)?)
        } else if let Some(sign) = rest.chars().next().filter(|c| matches!(c, '+' | '-')) {
            let (step, rest) = duration_prefix(&rest[1..]).map_err(|e| bad(&e))?;
            let n = rest.strip_prefix('x').ok_or_else(|| bad("expected `x<count>` after the step"))?;
            (if sign == '-' { -step } else { step }, repeat(n)?)
        } else {
            return Err(bad("unexpected text after the duration"));
        };
        out.extend((0..=n as i64).map(|i| Some(base + i * step)));
    }
    Ok(out)
}

/// A signed duration at the start of `s` (digits and one unit, as upstream's `@st` items:
/// `x` is never part of a unit) in milliseconds, and the text after it.
fn duration_prefix(s: &str) -> Result<(i64, &str), String> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("expected digits in duration {s:?}"));
    }
    let unit = body[digits..].bytes().take_while(|c| c.is_ascii_alphabetic() && *c != b'x').count();
    let (dur, rest) = body.split_at(digits + unit);
    Ok((sign * parse_duration(dur)?, rest))
}

/// `a`, `a+b` or `a-b` as (a, ±b).
fn split_step(base: &str) -> Option<(f64, f64)> {
    if let Some(v) = parse_number(base) {
        return Some((v, 0.0));
    }
    let bytes = base.as_bytes();
    for i in (1..bytes.len()).rev() {
        let c = bytes[i];
        if (c == b'+' || c == b'-') && !matches!(bytes[i - 1], b'e' | b'E' | b'+' | b'-') {
            let a = parse_number(&base[..i])?;
            let b = parse_number(&base[i + 1..])?;
            return Some((a, if c == b'+' { b } else { -b }));
        }
    }
    None
}

/// A PromQL number: decimal, hex, `Inf`/`NaN` (any case, signed), or a duration in seconds.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let v = if body.eq_ignore_ascii_case("inf") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        // Upstream's series lexer reads `0x59` as "0 repeated 59 times", so only a hex
        // literal with a letter digit is a number here.
        if h.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        u64::from_str_radix(h, 16).ok()? as f64
    } else if body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) {
        body.parse::<f64>().ok()?
    } else {
        parse_duration(body).ok()? as f64 / 1000.0
    };
    Some(if neg { -v } else { v })
}

/// A Prometheus duration (`1h30m`, `10s53ms`, `0`) in milliseconds; a leading `-` negates.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(rest) = s.strip_prefix('-') {
        return parse_duration(rest).map(|v| -v);
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let b = s.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return Err("empty duration".into());
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = s[start..i].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[unit_start..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(format!("invalid duration {s:?}")),
        };
        total += n * unit;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(values: &str) -> Vec<Option<f64>> {
        parse_items(values)
            .unwrap()
            .into_iter()
            .map(|i| match i {
                Item::Float(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn expands_values() {
        assert_eq!(
            floats("0+10x2 _ 1e3 -2-1x1"),
            vec![Some(0.0), Some(10.0), Some(20.0), None, Some(1000.0), Some(-2.0), Some(-3.0)]
        );
        assert_eq!(floats("0x1f 1m 0x1"), vec![Some(31.0), Some(60.0), Some(0.0), Some(0.0)]);
        assert_eq!(floats("_x2 3x1"), vec![None, None, None, Some(3.0), Some(3.0)]);
        assert_eq!(parse_items("1 {{schema:0 sum:1}}x2").unwrap().len(), 4);
        let items = parse_items("{{schema:1 count:2 buckets:[1 1] offset:-1}}+{{count:1 buckets:[1]}}x2").unwrap();
        let Item::Histogram(h, _) = &items[2] else { panic!("not a histogram: {items:?}") };
        assert_eq!((h.schema, h.count, h.positive.clone()), (0, 4.0, vec![(0, 4.0)]));
    }

    #[test]
    fn parses_durations_and_lines() {
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("10s53ms").unwrap(), 10_053);
        assert_eq!(split_series_line(r#"a{b="c d"} 1 2"#), (r#"a{b="c d"}"#, "1 2"));
        assert_eq!(parse_labels(r#"a{b="c"}"#).unwrap().to_string(), r#"{__name__="a", b="c"}"#);
    }

    #[test]
    fn parses_start_timestamp_offsets() {
        let s = |v: i64| Some(v);
        assert_eq!(parse_start_offsets("_ _x2 -1m").unwrap(), vec![None, None, None, s(-60_000)]);
        assert_eq!(parse_start_offsets("-59999msx2").unwrap(), vec![s(-59_999); 3]);
        assert_eq!(parse_start_offsets("-30s-1mx2").unwrap(), vec![s(-30_000), s(-90_000), s(-150_000)]);
        assert_eq!(parse_start_offsets("0-1mx1 1ms+1sx1").unwrap(), vec![s(0), s(-60_000), s(1), s(1001)]);
        assert_eq!(parse_start_offsets("+1m -0ms 0").unwrap(), vec![s(60_000), s(0), s(0)]);
        assert!(parse_start_offsets("_x0").is_err());
        assert!(parse_start_offsets("1m*2").is_err());
        assert!(parse_start_offsets("-1m-1m").is_err());
    }

    #[test]
    fn start_timestamp_lines_attach_to_the_next_series() {
        let cmds = parse_script("load 1m\n  a{j=\"1\"}@st _ -1m\n  a{j=\"1\"} 1 2\n  b 1\n");
        let Some(Command::Load { series, .. }) = cmds.first() else { panic!("not a load: {cmds:?}") };
        assert_eq!(series[0].starts, Some(vec![None, Some(-60_000)]));
        assert_eq!(series[1].starts, None);
        for (bad, why) in [
            ("load 1m\n a@st 0\n b 1", "does not match"),
            ("load 1m\n a@st 0 0\n a 1", "2 values but sample line has 1"),
            ("load 1m\n a@st 0", "no following sample line"),
            ("load 1m\n a@st 0\n a@st 0\n a 1", "no following sample line"),
        ] {
            let cmds = parse_script(bad);
            assert!(
                matches!(cmds.first(), Some(Command::Invalid { message, .. }) if message.contains(why)),
                "{bad:?}: {cmds:?}"
            );
        }
    }
}
