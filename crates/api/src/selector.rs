//! Series selectors in API parameters (`match[]`, the selectors of an exemplar query), turned
//! into the model's matchers.

use osprey_model::{MatchOp, Matcher, METRIC_NAME};
use promql_parser::label::{MatchOp as ParsedOp, Matcher as ParsedMatcher};
use promql_parser::parser::{self, Expr, VectorSelector};

/// Parses a `match[]` value: exactly one vector selector that does not match everything.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    match parser::parse(text)? {
        Expr::VectorSelector(vs) => {
            let matchers = selector_matchers(&vs)?;
            if matchers.iter().all(Matcher::matches_empty) {
                return Err("vector selector must contain at least one non-empty matcher".to_string());
            }
            Ok(matchers)
        }
        _ => Err(format!("1:1: parse error: expected a series selector such as up{{job=\"x\"}}, got {text:?}")),
    }
}

/// The matcher sets of every vector and matrix selector in a query.
pub fn selectors_of(query: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = parser::parse(query)?;
    let mut out = Vec::new();
    collect(&expr, &mut out)?;
    Ok(out)
}

fn collect(expr: &Expr, out: &mut Vec<Vec<Matcher>>) -> Result<(), String> {
    match expr {
        Expr::VectorSelector(vs) => out.push(selector_matchers(vs)?),
        Expr::MatrixSelector(ms) => out.push(selector_matchers(&ms.vs)?),
        Expr::Aggregate(a) => {
            collect(&a.expr, out)?;
            if let Some(p) = &a.param {
                collect(p, out)?;
            }
        }
        Expr::Unary(u) => collect(&u.expr, out)?,
        Expr::Binary(b) => {
            collect(&b.lhs, out)?;
            collect(&b.rhs, out)?;
        }
        Expr::Paren(p) => collect(&p.expr, out)?,
        Expr::Subquery(s) => collect(&s.expr, out)?,
        Expr::Call(c) => {
            for arg in &c.args.args {
                collect(arg, out)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, String> {
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        matchers.push(convert(m)?);
    }
    Ok(matchers)
}

fn convert(m: &ParsedMatcher) -> Result<Matcher, String> {
    let op = match m.op {
        ParsedOp::Equal => MatchOp::Equal,
        ParsedOp::NotEqual => MatchOp::NotEqual,
        ParsedOp::Re(_) => MatchOp::RegexMatch,
        ParsedOp::NotRe(_) => MatchOp::RegexNoMatch,
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_match_params_like_prometheus() {
        let m = parse_selector(r#"up{job=~"n.*"}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].to_string(), r#"__name__="up""#);
        assert!(parse_selector(r#"{job=~".*"}"#).unwrap_err().contains("non-empty matcher"));
        assert!(parse_selector("sum(up)").is_err());
        assert_eq!(selectors_of("rate(a[5m]) / on() b").unwrap().len(), 2);
    }
}
