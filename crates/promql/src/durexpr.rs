//! Duration expressions (`foo[5m+30s]`, `foo[step()*2:1m]`, `foo offset -(1m*2)`), which
//! `promql-parser` does not know: they are evaluated here and replaced by plain duration
//! literals before the query is parsed. `step()` and `range()` are the query's own step and
//! range, so the rewrite needs the evaluation parameters.

use crate::error::PromqlError;
use crate::scan::{follows_operand, is_ident, skip_string, skip_ws};

/// The query's step and range in milliseconds, as `step()` and `range()` give them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationParams {
    pub step_ms: i64,
    pub range_ms: i64,
}

/// Rewrites every non-literal duration inside `[…]` and after `offset` into milliseconds.
/// A query without such expressions comes back unchanged.
pub(crate) fn rewrite(query: &str, params: DurationParams) -> Result<String, PromqlError> {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'[' => {
                let end = match_bracket(b, i).ok_or_else(|| parse_error("unclosed left bracket"))?;
                let inner = &query[i + 1..end];
                let rewritten = rewrite_range(inner, params)?;
                if rewritten != inner {
                    out.push_str(&query[copied..=i]);
                    out.push_str(&rewritten);
                    copied = end;
                }
                i = end;
            }
            b'o' | b'O' if is_keyword(query, i, "offset") && follows_operand(b, i) => {
                let start = skip_ws(b, i + 6);
                // Not a duration after all (e.g. a label or metric named `offset`): leave
                // the text to the parser.
                let Ok((end, value)) = offset_atom(query, start, params) else {
                    i += 6;
                    continue;
                };
                let text = &query[start..end];
                if value == 0 {
                    // promql-parser rejects a zero offset; no offset means the same.
                    out.push_str(&query[copied..i]);
                    copied = end;
                } else if !is_plain_duration(text.trim_start_matches('-')) {
                    out.push_str(&query[copied..start]);
                    out.push_str(&format_ms(value));
                    copied = end;
                }
                i = end.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&query[copied..]);
    Ok(out)
}

fn parse_error(msg: &str) -> PromqlError {
    PromqlError::bad_data(format!("1:1: parse error: {msg}"))
}

fn format_ms(ms: i64) -> String {
    if ms < 0 {
        format!("-{}ms", -ms)
    } else {
        format!("{ms}ms")
    }
}

/// `range` or `range:step` with either part possibly an expression.
fn rewrite_range(inner: &str, params: DurationParams) -> Result<String, PromqlError> {
    let (range, step) = match top_level_colon(inner) {
        Some(c) => (&inner[..c], Some(&inner[c + 1..])),
        None => (inner, None),
    };
    let mut out = rewrite_part(range, params)?;
    if let Some(step) = step {
        out.push(':');
        out.push_str(&rewrite_part(step, params)?);
    }
    Ok(out)
}

fn rewrite_part(part: &str, params: DurationParams) -> Result<String, PromqlError> {
    let t = part.trim();
    if t.is_empty() || is_plain_duration(t) {
        return Ok(part.to_string());
    }
    let mut p = Parser { toks: tokenize(t)?, pos: 0, params };
    let v = p.expr(0)?;
    if p.pos != p.toks.len() {
        return Err(parse_error(&format!("unexpected token in duration expression {t:?}")));
    }
    Ok(format_ms(to_ms(v)?))
}

/// The atom after `offset`: an optionally signed literal, `step()`/`range()`, a
/// `min_of`/`max_of` call or a parenthesised expression (Prometheus binds `offset` tighter
/// than any operator, so `x offset 1m * 2` is `(x offset 1m) * 2`).
fn offset_atom(query: &str, start: usize, params: DurationParams) -> Result<(usize, i64), PromqlError> {
    let rest = &query[start..];
    let toks = tokenize_prefix(rest);
    let mut p = Parser { toks, pos: 0, params };
    let neg = match p.peek() {
        Some(Tok::Op(b'-')) => {
            p.pos += 1;
            true
        }
        Some(Tok::Op(b'+')) => {
            p.pos += 1;
            false
        }
        _ => false,
    };
    let v = p.primary()?;
    let consumed = p.toks[..p.pos].iter().map(Tok::end).max().unwrap_or(0);
    let secs = if neg { -v } else { v };
    Ok((start + consumed, to_ms(secs)?))
}

fn to_ms(secs: f64) -> Result<i64, PromqlError> {
    let ms = (secs * 1000.0).round();
    if !ms.is_finite() || ms.abs() > 9.2e18 {
        return Err(parse_error("duration out of range"));
    }
    Ok(ms as i64)
}

fn is_keyword(q: &str, i: usize, kw: &str) -> bool {
    let b = q.as_bytes();
    q.len() >= i + kw.len()
        && q[i..i + kw.len()].eq_ignore_ascii_case(kw)
        && (i == 0 || !is_ident(b[i - 1]))
        && b.get(i + kw.len()).is_none_or(|c| !is_ident(*c))
}

/// `5m`, `1h30m`, `10s53ms` (what promql-parser accepts as a duration).
fn is_plain_duration(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    let mut units = 0;
    while i < b.len() {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let u = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if s == u || u == i || !matches!(&t[u..i], "ms" | "s" | "m" | "h" | "d" | "w" | "y") {
            return false;
        }
        units += 1;
    }
    units > 0
}

fn match_bracket(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'[' | b'(' => depth += 1,
            b')' => depth -= 1,
            b']' if depth == 0 => return Some(i),
            b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn top_level_colon(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b':' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A number or duration in seconds, with the byte offset just past it.
    Num(f64, usize),
    Op(u8),
    Ident(String, usize),
    /// Punctuation `(`, `)`, `,` with the byte offset just past it.
    Punct(u8, usize),
}

impl Tok {
    fn end(&self) -> usize {
        match self {
            Tok::Num(_, e) | Tok::Ident(_, e) | Tok::Punct(_, e) => *e,
            Tok::Op(_) => 0,
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Tok>, PromqlError> {
    let toks = tokenize_prefix(s);
    let consumed = toks.iter().map(Tok::end).max().unwrap_or(0);
    let trailing = s[consumed..].trim();
    if !trailing.is_empty() && !toks.last().is_some_and(|t| matches!(t, Tok::Op(_))) {
        return Err(parse_error(&format!("unexpected character in duration expression: {trailing:?}")));
    }
    Ok(toks)
}

/// Tokens from the start of `s` up to the first character that cannot be part of a
/// duration expression.
fn tokenize_prefix(s: &str) -> Vec<Tok> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip_ws(b, i);
        let Some(&c) = b.get(i) else { break };
        match c {
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' => {
                out.push(Tok::Op(c));
                i += 1;
            }
            b'(' | b')' | b',' => {
                out.push(Tok::Punct(c, i + 1));
                i += 1;
            }
            c if c.is_ascii_digit() || c == b'.' => {
                let s0 = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                let text = &s[s0..i];
                let v = if is_plain_duration(text) {
                    duration_secs(text)
                } else {
                    match text.parse::<f64>() {
                        Ok(v) => v,
                        Err(_) => break,
                    }
                };
                out.push(Tok::Num(v, i));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let s0 = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(s[s0..i].to_ascii_lowercase(), i));
            }
            _ => break,
        }
    }
    out
}

fn duration_secs(t: &str) -> f64 {
    let b = t.as_bytes();
    let (mut i, mut total) = (0, 0.0);
    while i < b.len() {
        let s = i;
        while b[i].is_ascii_digit() {
            i += 1;
        }
        let n: f64 = t[s..i].parse().unwrap_or(0.0);
        let u = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        total += n * match &t[u..i] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604_800.0,
            _ => 31_536_000.0,
        };
    }
    total
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    params: DurationParams,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn expect_punct(&mut self, c: u8) -> Result<(), PromqlError> {
        match self.peek() {
            Some(Tok::Punct(p, _)) if *p == c => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(parse_error(&format!("expected {:?} in duration expression", c as char))),
        }
    }

    /// Precedence climbing: `+ -` < `* / %` < `^` (right-associative); unary signs bind
    /// like `*`, so `-2^2` is `-(2^2)`.
    fn expr(&mut self, min_prec: u8) -> Result<f64, PromqlError> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Op(op)) = self.peek().cloned() {
            let prec = match op {
                b'+' | b'-' => 1,
                b'*' | b'/' | b'%' => 2,
                _ => 3,
            };
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(if op == b'^' { prec } else { prec + 1 })?;
            lhs = match op {
                b'+' => lhs + rhs,
                b'-' => lhs - rhs,
                b'*' => lhs * rhs,
                b'/' if rhs == 0.0 => return Err(parse_error("division by zero")),
                b'/' => lhs / rhs,
                b'%' if rhs == 0.0 => return Err(parse_error("modulo by zero")),
                b'%' => lhs % rhs,
                _ => lhs.powf(rhs),
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<f64, PromqlError> {
        match self.peek() {
            Some(Tok::Op(b'-')) => {
                self.pos += 1;
                Ok(-self.expr(2)?)
            }
            Some(Tok::Op(b'+')) => {
                self.pos += 1;
                self.expr(2)
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<f64, PromqlError> {
        let tok = self.peek().cloned().ok_or_else(|| parse_error("unexpected end of duration expression"))?;
        self.pos += 1;
        match tok {
            Tok::Num(v, _) => Ok(v),
            Tok::Punct(b'(', _) => {
                let v = self.expr(0)?;
                self.expect_punct(b')')?;
                Ok(v)
            }
            Tok::Ident(name, _) => match name.as_str() {
                "step" | "range" => {
                    self.expect_punct(b'(')?;
                    self.expect_punct(b')')?;
                    let ms = if name == "step" { self.params.step_ms } else { self.params.range_ms };
                    Ok(ms as f64 / 1000.0)
                }
                "min_of" | "max_of" => {
                    self.expect_punct(b'(')?;
                    let a = self.expr(0)?;
                    self.expect_punct(b',')?;
                    let b = self.expr(0)?;
                    self.expect_punct(b')')?;
                    Ok(if name == "min_of" { a.min(b) } else { a.max(b) })
                }
                other => Err(parse_error(&format!("unexpected {other:?} in duration expression"))),
            },
            other => Err(parse_error(&format!("unexpected {other:?} in duration expression"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: &str) {
        let params = DurationParams { step_ms: 5_000, range_ms: 10_000 };
        assert_eq!(rewrite(query, params).unwrap(), expected, "{query}");
    }

    #[test]
    fn rewrites_duration_expressions() {
        check("rate(x[5m])", "rate(x[5m])");
        check("changes(x[26m+4m])", "changes(x[1800000ms])");
        check("changes(x[2m*(10+5)])", "changes(x[1800000ms])");
        check("sum_over_time(x[29s+1s:5s+5s])", "sum_over_time(x[30000ms:10000ms])");
        check("x[step()+1ms]", "x[5001ms]");
        check("x offset 100 + 2", "x offset 100000ms + 2");
        check("x offset -2 ^ 2", "x offset -2000ms ^ 2");
        check("x offset (-2 ^ 2)", "x offset -4000ms");
        check("x offset -min_of(step(), 1s)+8000", "x offset -1000ms+8000");
        check(r#"x{a=~"[0-9]+"}[1h/2]"#, r#"x{a=~"[0-9]+"}[1800000ms]"#);
        check("x offset 5m", "x offset 5m");
        check("x offset (step()*0) + 1", "x  + 1");
        check("sum by (offset) (x)", "sum by (offset) (x)");
        check("offset + 1", "offset + 1");
    }
}
