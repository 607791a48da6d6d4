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

fn format_pos(query: &str, pos: usize) -> String {
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
