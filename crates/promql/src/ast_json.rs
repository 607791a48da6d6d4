//! The parsed query as the JSON tree Prometheus's `/api/v1/parse_query` returns (its
//! `translateAST`), which the UI's query explainer reads.

use std::time::UNIX_EPOCH;

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector};
use serde_json::{json, Value};

use crate::extended::{modifier_of, Modifier};
use crate::functions::format_float;

pub(crate) fn translate(e: &Expr) -> Value {
    match e {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": translate(&a.expr),
                "param": a.param.as_deref().map_or(Value::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let vectors = b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            let matching = if vectors {
                let m = b.modifier.as_ref();
                let (on, labels) = match m.and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                    None => (false, Vec::new()),
                };
                let is_set = matches!(b.op.to_string().as_str(), "and" | "or" | "unless");
                let (card, include) = match m.map(|m| &m.card) {
                    _ if is_set => ("many-to-many", Vec::new()),
                    Some(VectorMatchCardinality::ManyToOne(l)) => ("many-to-one", l.labels.clone()),
                    Some(VectorMatchCardinality::OneToMany(l)) => ("one-to-many", l.labels.clone()),
                    Some(VectorMatchCardinality::ManyToMany) => ("many-to-many", Vec::new()),
                    _ => ("one-to-one", Vec::new()),
                };
                let fill = m.map(|m| &m.fill_values);
                json!({
                    "card": card,
                    "labels": labels,
                    "on": on,
                    "include": include,
                    "fillValues": {
                        "lhs": fill.and_then(|f| f.lhs),
                        "rhs": fill.and_then(|f| f.rhs),
                    },
                })
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": translate(&b.lhs),
                "rhs": translate(&b.rhs),
                "matching": matching,
                "bool": b.return_bool(),
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": c.func.return_type.to_string(),
            },
            "args": c.args.args.iter().map(|a| translate(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(ms) => {
            let mut v = selector(&ms.vs, "matrixSelector");
            v["range"] = json!(ms.range.as_millis() as i64);
            v["rangeExpr"] = Value::Null;
            v
        }
        Expr::Subquery(sq) => {
            let (timestamp, start_or_end) = at_json(&sq.at);
            json!({
                "type": "subquery",
                "expr": translate(&sq.expr),
                "range": sq.range.as_millis() as i64,
                "rangeExpr": Value::Null,
                "offset": offset_ms(&sq.offset),
                "offsetExpr": Value::Null,
                "step": sq.step.map_or(0, |s| s.as_millis() as i64),
                "stepExpr": Value::Null,
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::NumberLiteral(n) => json!({ "type": "numberLiteral", "val": format_float(n.val) }),
        Expr::Paren(p) => json!({ "type": "parenExpr", "expr": translate(&p.expr) }),
        Expr::StringLiteral(s) => json!({ "type": "stringLiteral", "val": s.val }),
        Expr::Unary(u) => json!({ "type": "unaryExpr", "op": "-", "expr": translate(&u.expr) }),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
        Expr::Extension(_) => Value::Null,
    }
}

fn selector(vs: &VectorSelector, kind: &str) -> Value {
    let (timestamp, start_or_end) = at_json(&vs.at);
    let modifier = modifier_of(vs);
    json!({
        "type": kind,
        "name": vs.name.clone().unwrap_or_default(),
        "offset": offset_ms(&vs.offset),
        "offsetExpr": Value::Null,
        "matchers": matchers(&vs.matchers, vs.name.as_deref()),
        "timestamp": timestamp,
        "startOrEnd": start_or_end,
        "anchored": modifier == Modifier::Anchored,
        "smoothed": modifier == Modifier::Smoothed,
    })
}

/// Label matchers as Prometheus lists them: the ones written, then the metric name.
fn matchers(m: &Matchers, name: Option<&str>) -> Value {
    let mut out: Vec<Value> = m
        .matchers
        .iter()
        .filter(|x| !x.name.starts_with("__osprey_"))
        .map(|x| {
            let op = match x.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Re(_) => "=~",
                MatchOp::NotRe(_) => "!~",
            };
            json!({ "name": x.name, "value": x.value, "type": op })
        })
        .collect();
    if let Some(name) = name {
        out.push(json!({ "name": "__name__", "value": name, "type": "=" }));
    }
    Value::Array(out)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    crate::eval::offset_ms(o)
}

/// `timestamp` (ms) and `startOrEnd` of an `@` modifier.
fn at_json(at: &Option<AtModifier>) -> (Value, Value) {
    match at {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            };
            (json!(ms), Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: Value) {
        let expr = crate::engine::parse_instant(query).unwrap();
        assert_eq!(translate(&expr), expected, "{query}");
    }

    #[test]
    fn translates_like_prometheus() {
        check(
            r#"rate(up{job="a"}[5m] anchored)"#,
            json!({
                "type": "call",
                "func": { "name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector" },
                "args": [{
                    "type": "matrixSelector", "name": "up", "range": 300000, "rangeExpr": null,
                    "offset": 0, "offsetExpr": null,
                    "matchers": [
                        { "name": "job", "value": "a", "type": "=" },
                        { "name": "__name__", "value": "up", "type": "=" }
                    ],
                    "timestamp": null, "startOrEnd": null, "anchored": true, "smoothed": false
                }]
            }),
        );
        check(
            "sum by (job) (a) / on (job) b",
            json!({
                "type": "binaryExpr", "op": "/", "bool": false,
                "lhs": {
                    "type": "aggregation", "op": "sum", "param": null, "grouping": ["job"], "without": false,
                    "expr": {
                        "type": "vectorSelector", "name": "a", "offset": 0, "offsetExpr": null,
                        "matchers": [{ "name": "__name__", "value": "a", "type": "=" }],
                        "timestamp": null, "startOrEnd": null, "anchored": false, "smoothed": false
                    }
                },
                "rhs": {
                    "type": "vectorSelector", "name": "b", "offset": 0, "offsetExpr": null,
                    "matchers": [{ "name": "__name__", "value": "b", "type": "=" }],
                    "timestamp": null, "startOrEnd": null, "anchored": false, "smoothed": false
                },
                "matching": {
                    "card": "one-to-one", "labels": ["job"], "on": true, "include": [],
                    "fillValues": { "lhs": null, "rhs": null }
                }
            }),
        );
    }
}
