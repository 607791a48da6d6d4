//! The native-histogram trim operators `</` (keep the observations below a value) and `>/`
//! (above it).
//!
//! promql-parser does not know them. They bind like comparisons, so [`rewrite`] turns them
//! into `<` and `>` before parsing and records which of those operators were trims, by
//! their ordinal in the text. Operators appear in the text in the order of an in-order walk
//! of the parsed tree, so [`trim_nodes`] finds the trim nodes by walking the tree, and
//! [`restore`] puts the operators back into a query printed from the tree.

use std::collections::HashSet;

use promql_parser::parser::{BinaryExpr, Expr};

use crate::scan::skip_string;

/// Which `<` and `>` operators of a query (0-based, in text order) are trims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trims {
    upper: Vec<usize>,
    lower: Vec<usize>,
}

/// Calls `f(byte offset, operator, ordinal among operators of that kind)` for every `<`,
/// `>`, `</` and `>/` outside strings and comments (`<=` and `>=` are skipped).
fn scan_operators(query: &str, mut f: impl FnMut(usize, &str, usize)) {
    let b = query.as_bytes();
    let (mut lt, mut gt) = (0, 0);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c @ (b'<' | b'>') => {
                let next = b.get(i + 1).copied();
                if next == Some(b'=') {
                    i += 1;
                } else {
                    let counter = if c == b'<' { &mut lt } else { &mut gt };
                    let len = if next == Some(b'/') { 2 } else { 1 };
                    f(i, &query[i..i + len], *counter);
                    *counter += 1;
                    i += len - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The query with `</` and `>/` replaced by `<` and `>`, and which operators were trims.
pub(crate) fn rewrite(query: &str) -> (String, Trims) {
    let mut trims = Trims::default();
    let mut cuts = Vec::new();
    scan_operators(query, |at, op, ordinal| match op {
        "</" => {
            trims.upper.push(ordinal);
            cuts.push(at + 1);
        }
        ">/" => {
            trims.lower.push(ordinal);
            cuts.push(at + 1);
        }
        _ => {}
    });
    if cuts.is_empty() {
        return (query.to_string(), trims);
    }
    let mut out = String::with_capacity(query.len());
    let mut from = 0;
    for cut in cuts {
        out.push_str(&query[from..cut]);
        from = cut + 1;
    }
    out.push_str(&query[from..]);
    (out, trims)
}

/// A query printed from a tree parsed from [`rewrite`]'s output, with the trims put back.
pub(crate) fn restore(printed: &str, trims: &Trims) -> String {
    if trims.upper.is_empty() && trims.lower.is_empty() {
        return printed.to_string();
    }
    let mut at = Vec::new();
    scan_operators(printed, |i, op, ordinal| {
        let list = if op == "<" { &trims.upper } else { &trims.lower };
        if op.len() == 1 && list.contains(&ordinal) {
            at.push(i + 1);
        }
    });
    let mut out = String::with_capacity(printed.len() + at.len());
    let mut from = 0;
    for i in at {
        out.push_str(&printed[from..i]);
        out.push('/');
        from = i;
    }
    out.push_str(&printed[from..]);
    out
}

/// Renames the trim operators in the JSON form of a parsed query (`parse_query`'s answer),
/// walking it in the same order as the tree.
pub(crate) fn restore_json(v: &mut serde_json::Value, trims: &Trims) {
    if !(trims.upper.is_empty() && trims.lower.is_empty()) {
        walk_json(v, trims, &mut (0, 0));
    }
}

fn walk_json(v: &mut serde_json::Value, trims: &Trims, counts: &mut (usize, usize)) {
    let Some(obj) = v.as_object_mut() else { return };
    match obj.get("type").and_then(|t| t.as_str()) {
        Some("binaryExpr") => {
            if let Some(lhs) = obj.get_mut("lhs") {
                walk_json(lhs, trims, counts);
            }
            let op = obj.get("op").and_then(|o| o.as_str()).unwrap_or("");
            let (counter, list, trim) = match op {
                "<" => (&mut counts.0, &trims.upper, "</"),
                ">" => (&mut counts.1, &trims.lower, ">/"),
                _ => (&mut 0, &Vec::new(), ""),
            };
            if !trim.is_empty() {
                if list.contains(counter) {
                    obj.insert("op".into(), trim.into());
                }
                *counter += 1;
            }
            if let Some(rhs) = obj.get_mut("rhs") {
                walk_json(rhs, trims, counts);
            }
        }
        Some("aggregation") => {
            for key in ["param", "expr"] {
                if let Some(x) = obj.get_mut(key) {
                    walk_json(x, trims, counts);
                }
            }
        }
        Some("call") => {
            if let Some(args) = obj.get_mut("args").and_then(|a| a.as_array_mut()) {
                args.iter_mut().for_each(|a| walk_json(a, trims, counts));
            }
        }
        _ => {
            if let Some(x) = obj.get_mut("expr") {
                walk_json(x, trims, counts);
            }
        }
    }
}

/// The addresses of the binary nodes of `expr` that are trims.
pub(crate) fn trim_nodes(expr: &Expr, trims: &Trims) -> HashSet<usize> {
    let mut out = HashSet::new();
    if trims.upper.is_empty() && trims.lower.is_empty() {
        return out;
    }
    let mut counts = (0, 0);
    walk(expr, trims, &mut counts, &mut out);
    out
}

fn walk(e: &Expr, trims: &Trims, counts: &mut (usize, usize), out: &mut HashSet<usize>) {
    match e {
        Expr::Binary(b) => {
            walk(&b.lhs, trims, counts, out);
            let op = b.op.to_string();
            let (counter, list) = match op.as_str() {
                "<" => (&mut counts.0, &trims.upper),
                ">" => (&mut counts.1, &trims.lower),
                _ => {
                    walk(&b.rhs, trims, counts, out);
                    return;
                }
            };
            if list.contains(counter) {
                out.insert(b as *const BinaryExpr as usize);
            }
            *counter += 1;
            walk(&b.rhs, trims, counts, out);
        }
        Expr::Paren(p) => walk(&p.expr, trims, counts, out),
        Expr::Unary(u) => walk(&u.expr, trims, counts, out),
        Expr::Subquery(s) => walk(&s.expr, trims, counts, out),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, trims, counts, out);
            }
            walk(&a.expr, trims, counts, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, trims, counts, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_and_restores_trims() {
        let q = r#"a </ 2 < b{x=">/"} >/ c >= d"#;
        let (text, trims) = rewrite(q);
        assert_eq!(text, r#"a < 2 < b{x=">/"} > c >= d"#);
        assert_eq!(restore(&text, &trims), q);
        let (text, trims) = rewrite("h </ 1 < h >/ 2");
        let expr = crate::engine::parse(&text).expect("parses");
        assert_eq!(trim_nodes(&expr, &trims).len(), 2);
        let json = crate::engine::parse_query_json("h </ 1 < h >/ 2").expect("parses");
        assert_eq!(json["op"], ">/");
        assert_eq!(json["lhs"]["op"], "<");
        assert_eq!(json["lhs"]["lhs"]["op"], "</");
    }
}
