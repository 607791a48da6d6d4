//! Byte-level scanning of query text, shared by the rewrites that run before parsing
//! (duration expressions, `anchored`/`smoothed`, `info()` selectors) and by the annotation
//! positions (the parser keeps none). Offsets are byte offsets; the scanned syntax is ASCII.

/// Whether the text before `i` ends an operand (a selector, a range, a call), so a keyword
/// at `i` is a modifier rather than a name.
pub(crate) fn follows_operand(b: &[u8], i: usize) -> bool {
    let mut j = i;
    while j > 0 && b[j - 1].is_ascii_whitespace() {
        j -= 1;
    }
    j > 0 && (is_ident(b[j - 1]) || matches!(b[j - 1], b']' | b'}' | b')'))
}

/// `(line:col)` of a call or aggregation named `name` (its first occurrence), as
/// annotation texts show it. The parser keeps no positions, so the query text is scanned.
pub(crate) fn call_pos(query: &str, name: &str) -> String {
    format_pos(query, find_call(query, name).unwrap_or(0))
}

/// `(line:col)` of argument `idx` of the first call or aggregation named `name`; for an
/// aggregation, argument 0 is its parameter.
pub(crate) fn arg_pos(query: &str, name: &str, idx: usize) -> String {
    let pos = find_call(query, name).and_then(|start| find_arg(query, start + name.len(), idx)).unwrap_or(0);
    format_pos(query, pos)
}

pub(crate) fn format_pos(query: &str, pos: usize) -> String {
    let before = &query[..pos];
    let line = before.matches('\n').count() + 1;
    let col = pos - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("({line}:{col})")
}

pub(crate) fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Byte offset of `name` used as a call: an identifier followed by `(` or a grouping clause.
pub(crate) fn find_call(query: &str, name: &str) -> Option<usize> {
    let b = query.as_bytes();
    query.match_indices(name).map(|(i, _)| i).find(|&i| {
        let end = i + name.len();
        let bounded = (i == 0 || !is_ident(b[i - 1])) && (end == b.len() || !is_ident(b[end]));
        let rest = query[end..].trim_start();
        bounded && (rest.starts_with('(') || rest.starts_with("by") || rest.starts_with("without"))
    })
}

/// Start of argument `idx` in the argument list that follows byte `from` (skipping a
/// `by (…)`/`without (…)` clause written before the arguments).
pub(crate) fn find_arg(query: &str, from: usize, idx: usize) -> Option<usize> {
    let b = query.as_bytes();
    let mut i = skip_ws(b, from);
    for kw in ["by", "without"] {
        if query[i..].starts_with(kw) && !b.get(i + kw.len()).is_some_and(|c| is_ident(*c)) {
            i = skip_ws(b, i + kw.len());
            i = skip_group(b, i)?;
            i = skip_ws(b, i);
        }
    }
    if b.get(i) != Some(&b'(') {
        return None;
    }
    i += 1;
    let mut arg = 0;
    let mut depth = 0;
    let mut start = skip_ws(b, i);
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => break,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                if arg == idx {
                    return Some(start);
                }
                arg += 1;
                start = skip_ws(b, i + 1);
            }
            _ => {}
        }
        i += 1;
    }
    (arg == idx).then_some(start)
}

pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// From an opening `(`, the index just past its matching `)`.
fn skip_group(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'(') {
        return None;
    }
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// From an opening quote, the index of the closing one.
pub(crate) fn skip_string(b: &[u8], mut i: usize) -> usize {
    let q = b[i];
    i += 1;
    while i < b.len() && b[i] != q {
        if b[i] == b'\\' && q != b'`' {
            i += 1;
        }
        i += 1;
    }
    i
}

/// Decodes `\xHH` escapes in quoted strings the way Go does (as bytes, so `"\xc3\xa9"` is
/// `é`), where promql-parser would read each escape as one character (`Ã©`). Byte sequences
/// that are not UTF-8 become U+FFFD, which the label-name checks reject as Prometheus
/// rejects invalid UTF-8.
pub(crate) fn decode_byte_escapes(query: &str) -> std::borrow::Cow<'_, str> {
    if !query.contains("\\x") {
        return std::borrow::Cow::Borrowed(query);
    }
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut copied = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            None => {
                if b[i] == b'"' || b[i] == b'\'' {
                    quote = Some(b[i]);
                } else if b[i] == b'`' {
                    i = skip_string(b, i);
                }
                i += 1;
            }
            Some(q) if b[i] == q => {
                quote = None;
                i += 1;
            }
            Some(_) if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') => {
                let start = i;
                let mut bytes = Vec::new();
                while b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'x') {
                    let Some(v) = query.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok()) else { break };
                    bytes.push(v);
                    i += 4;
                }
                if bytes.is_empty() {
                    i += 2;
                    continue;
                }
                out.push_str(&query[copied..start]);
                for c in String::from_utf8_lossy(&bytes).chars() {
                    if c.is_ascii() {
                        out.push_str(&format!("\\x{:02x}", c as u8));
                    } else {
                        out.push(c);
                    }
                }
                copied = i;
            }
            Some(_) if b[i] == b'\\' => i += 2,
            Some(_) => i += 1,
        }
    }
    out.push_str(&query[copied..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_escapes_like_go() {
        assert_eq!(decode_byte_escapes(r#"x{a="\xc3\xa9"}"#), r#"x{a="é"}"#);
        assert_eq!(decode_byte_escapes(r#"f("\xff")"#), "f(\"\u{fffd}\")");
        assert_eq!(decode_byte_escapes(r#"f("\x41\"", `\xff`)"#), r#"f("\x41\"", `\xff`)"#);
        assert_eq!(decode_byte_escapes("sum(x)"), "sum(x)");
    }

    #[test]
    fn finds_argument_positions() {
        assert_eq!(arg_pos("histogram_quantile(0.5, rate(x[5m]))", "histogram_quantile", 1), "(1:25)");
        assert_eq!(arg_pos("quantile without(a)(NaN, x)", "quantile", 0), "(1:21)");
        assert_eq!(call_pos("sum(sort(x))", "sort"), "(1:5)");
    }
}
