//! The experimental `info(v, {selector})` function: enriches each series with the data
//! labels of the info series (`target_info` by default) that share its identifying labels
//! (`instance`, `job`), following Prometheus's `promql/info.go`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use osprey_model::{Labels, MatchOp, Matcher, METRIC_NAME};
use promql_parser::parser::{Expr, SubqueryExpr, VectorSelector};

use crate::error::PromqlError;
use crate::eval::{by_step, convert_matchers, offset_ms, Collector, Evaluator, StepSeries, Val};
use crate::scan::{find_arg, find_call};

const TARGET_INFO: &str = "target_info";

/// A matcher added to `info()`'s label-selector argument before parsing: Prometheus accepts
/// a selector there whose matchers all match the empty string (`{data=~".*"}`), but
/// promql-parser rejects such a selector. The evaluator drops the matcher again.
const SELECTOR_SENTINEL: &str = "__osprey_info_selector__";

/// Adds [`SELECTOR_SENTINEL`] to the label selector of every `info(…, {…})` call.
pub(crate) fn rewrite_selectors(query: &str) -> String {
    let mut out = query.to_string();
    let mut from = 0;
    while let Some(rel) = find_call(&out[from..], "info") {
        let call = from + rel;
        from = call + 4;
        let Some(arg) = find_arg(&out, call + 4, 1) else {
            continue;
        };
        if out.as_bytes().get(arg) != Some(&b'{') {
            continue;
        }
        let empty = out[arg + 1..].trim_start().starts_with('}');
        let sep = if empty { "" } else { ", " };
        out.insert_str(arg + 1, &format!("{SELECTOR_SENTINEL}=\"1\"{sep}"));
    }
    out
}
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

pub(crate) fn eval_info(ev: &mut Evaluator, args: &[&Expr]) -> Result<Val, PromqlError> {
    let (at, offset) = info_time_and_offset(ev, args[0]);
    let base = ev.eval_vector(args[0])?;
    // Data-label matchers by label name; `__name__` matchers choose the info metrics.
    let mut data_matchers: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
    let mut name_matchers = Vec::new();
    match args.get(1) {
        Some(Expr::VectorSelector(vs)) => {
            for m in convert_matchers(vs)?.into_iter().filter(|m| m.name != SELECTOR_SENTINEL) {
                if m.name == METRIC_NAME {
                    name_matchers.push(m.clone());
                }
                data_matchers.entry(m.name.clone()).or_default().push(m);
            }
        }
        Some(_) => return Err(PromqlError::bad_data("expected label selector as the second argument of info()")),
        None => name_matchers.push(Matcher::equal(METRIC_NAME, TARGET_INFO)),
    }
    let effective = effective_name_matchers(name_matchers.clone())?;
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let name = s.labels.get(METRIC_NAME).unwrap_or("");
            effective.iter().all(|m| m.matches(name))
        })
        .collect();
    let info = fetch_info_series(ev, &base, &ignored, &data_matchers, name_matchers, at, offset)?;
    data_matchers.remove(METRIC_NAME);
    combine(ev, &base, &info, &ignored, &data_matchers)
}

/// The `@` time and offset the info series are read with: those of the first vector
/// selector in the expression; a selector without `@` inside subqueries adds their offsets
/// and takes the innermost subquery `@`, as Prometheus does.
fn info_time_and_offset(ev: &Evaluator, e: &Expr) -> (Option<i64>, i64) {
    let mut path = Vec::new();
    let Some(vs) = first_selector(e, &mut path) else {
        return (None, 0);
    };
    let mut at = ev.at_ms(&vs.at);
    let mut offset = offset_ms(&vs.offset);
    for sq in path.iter().rev() {
        if at.is_some() {
            break;
        }
        offset += offset_ms(&sq.offset);
        at = ev.at_ms(&sq.at);
    }
    (at, offset)
}

fn first_selector<'e>(e: &'e Expr, path: &mut Vec<&'e SubqueryExpr>) -> Option<&'e VectorSelector> {
    match e {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        Expr::Paren(p) => first_selector(&p.expr, path),
        Expr::Unary(u) => first_selector(&u.expr, path),
        Expr::Subquery(s) => {
            path.push(s);
            let found = first_selector(&s.expr, path);
            if found.is_none() {
                path.pop();
            }
            found
        }
        Expr::Aggregate(a) => first_selector(&a.expr, path),
        Expr::Binary(b) => first_selector(&b.lhs, path).or_else(|| first_selector(&b.rhs, path)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| first_selector(a, path)),
        _ => None,
    }
}

/// Without an equality or regex `__name__` matcher, only `*_info` metrics qualify.
fn effective_name_matchers(matchers: Vec<Matcher>) -> Result<Vec<Matcher>, PromqlError> {
    if matchers.iter().any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch)) {
        return Ok(matchers);
    }
    if matchers.is_empty() {
        return Ok(vec![Matcher::equal(METRIC_NAME, TARGET_INFO)]);
    }
    let mut out = vec![regex_matcher(METRIC_NAME, ".+_info")?];
    out.extend(matchers);
    Ok(out)
}

fn regex_matcher(name: &str, re: &str) -> Result<Matcher, PromqlError> {
    Matcher::new(MatchOp::RegexMatch, name, re).map_err(|e| PromqlError::internal(e.to_string()))
}

/// Info series sharing an identifying label value with some base series. Each point's value
/// is the timestamp of the info sample it came from, so newer info samples win.
fn fetch_info_series(
    ev: &mut Evaluator,
    base: &[StepSeries],
    ignored: &[bool],
    data_matchers: &BTreeMap<String, Vec<Matcher>>,
    name_matchers: Vec<Matcher>,
    at: Option<i64>,
    offset: i64,
) -> Result<Vec<StepSeries>, PromqlError> {
    let mut id_values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (s, _) in base.iter().zip(ignored).filter(|(_, ig)| !**ig) {
        for l in IDENTIFYING_LABELS {
            if let Some(v) = s.labels.get(l) {
                id_values.entry(l).or_default().insert(v);
            }
        }
    }
    if id_values.is_empty() {
        return Ok(Vec::new());
    }
    let mut matchers = Vec::new();
    for (name, values) in &id_values {
        let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
        matchers.push(regex_matcher(name, &alternatives.join("|"))?);
    }
    for ms in data_matchers.values() {
        matchers.extend(ms.iter().filter(|m| m.name != METRIC_NAME).cloned());
    }
    matchers.extend(effective_name_matchers(name_matchers)?);
    let (start, end) = match at {
        Some(t) => (t, t),
        None => (ev.range.start, ev.range.end),
    };
    let (lo, hi) = (start - ev.opts.lookback_delta_ms + 1 - offset, end - offset);
    if ev.has_histograms(matchers.clone(), lo, hi)? {
        return Err(PromqlError::execution(
            "info series must have float samples, but the info selector matches native histograms; \
             narrow the second argument of info() to info metrics",
        ));
    }
    let raw = ev.select_matchers(matchers, lo, hi)?;
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        let points: Vec<_> = (0..ev.range.len())
            .filter_map(|i| {
                let ts = ev.range.ts(i);
                ev.sample_at(&s.samples, at, offset, ts).map(|x| osprey_model::Sample::new(ts, x.t as f64))
            })
            .collect();
        if !points.is_empty() {
            out.push(StepSeries::floats(s.labels, false, points));
        }
    }
    Ok(out)
}

/// The join key: an info metric name plus the identifying labels a series has.
fn signature(name: &str, labels: &Labels) -> Labels {
    let mut b = labels.only(&IDENTIFYING_LABELS).to_builder();
    b.set(METRIC_NAME, name);
    b.build()
}

fn combine(
    ev: &mut Evaluator,
    base: &[StepSeries],
    info: &[StepSeries],
    ignored: &[bool],
    data_matchers: &BTreeMap<String, Vec<Matcher>>,
) -> Result<Val, PromqlError> {
    let info_names: BTreeSet<&str> = info.iter().filter_map(|s| s.labels.get(METRIC_NAME)).collect();
    let info_sigs: Vec<Labels> =
        info.iter().map(|s| signature(s.labels.get(METRIC_NAME).unwrap_or(""), &s.labels)).collect();
    let all_match_empty = data_matchers.values().flatten().all(|m| m.matches_empty());
    let range = ev.range;
    let base_steps = by_step(base, &range);
    let info_steps = by_step(info, &range);
    let mut out = Collector::new();
    for (i, (bs, is)) in base_steps.iter().zip(info_steps.iter()).enumerate() {
        let t = range.ts(i);
        if bs.is_empty() {
            continue;
        }
        // The newest info sample per signature.
        let mut by_sig: HashMap<&Labels, (usize, f64)> = HashMap::new();
        for &(j, orig_t) in is {
            match by_sig.get(&info_sigs[j]) {
                Some(&(k, existing)) if existing == orig_t => {
                    return Err(PromqlError::execution(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        info[k].labels, existing as i64, info[j].labels, orig_t as i64
                    )));
                }
                Some(&(_, existing)) if existing > orig_t => {}
                _ => {
                    by_sig.insert(&info_sigs[j], (j, orig_t));
                }
            }
        }
        for &(j, v) in bs {
            let s = &base[j];
            if ignored[j] {
                out.push(s.labels.clone(), s.drop_name, t, v)?;
                continue;
            }
            let mut added: BTreeMap<String, String> = BTreeMap::new();
            let mut seen: HashSet<&str> = HashSet::new();
            for name in &info_names {
                let Some(&(k, _)) = by_sig.get(&signature(name, &s.labels)) else {
                    continue;
                };
                if !seen.insert(name) {
                    continue;
                }
                for l in info[k].labels.iter() {
                    if l.name == METRIC_NAME || (!data_matchers.is_empty() && !data_matchers.contains_key(&l.name)) {
                        continue;
                    }
                    if added.get(&l.name).is_some_and(|v| *v != l.value) {
                        return Err(PromqlError::execution(format!("conflicting label: {}", l.name)));
                    }
                    if s.labels.get(&l.name).is_none() {
                        added.insert(l.name.clone(), l.value.clone());
                    }
                }
            }
            if seen.is_empty() && !all_match_empty {
                continue;
            }
            let mut b = s.labels.to_builder();
            for (n, v) in added {
                b.set(n, v);
            }
            out.push(b.build(), s.drop_name, t, v)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_info_selectors() {
        assert_eq!(rewrite_selectors(r#"info(m, {a=~".*"})"#), r#"info(m, {__osprey_info_selector__="1", a=~".*"})"#);
        assert_eq!(rewrite_selectors("info(m)"), "info(m)");
        assert_eq!(rewrite_selectors("info(m, {})"), r#"info(m, {__osprey_info_selector__="1"})"#);
    }
}
