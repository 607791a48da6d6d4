//! Known, documented differences between Prometheus 2.42 (the reference installed here) and
//! Prometheus 3.x (what Osprey follows). Sources: the Prometheus 3.0 migration guide
//! (docs/migration.md) and the 2.43..3.x CHANGELOG. Anything that differs and is NOT on this
//! list is an Osprey bug and counts as a mismatch.
//!
//! Most differences are avoided by how the data and queries are built (`avoided_by`); the
//! rest are recognised per query (`applies`) and counted as excluded, not compared.

pub struct Exclusion {
    pub name: &'static str,
    pub reason: &'static str,
    /// How the generator keeps clear of it, when it does.
    pub avoided_by: &'static str,
    /// Whether a query falls under it (checked on the query text before running it).
    pub applies: fn(&str) -> bool,
}

fn never(_: &str) -> bool {
    false
}

fn uses_atan2(q: &str) -> bool {
    q.contains(" atan2 ")
}

fn uses_holt_winters(q: &str) -> bool {
    q.contains("holt_winters") || q.contains("double_exponential_smoothing")
}

pub const EXCLUSIONS: &[Exclusion] = &[
    Exclusion {
        name: "left-open ranges and lookback",
        reason: "3.0 (#13904, #15431): range selectors, subqueries and the lookback delta exclude a sample on the \
                 left boundary; 2.x included it",
        avoided_by: "samples lie 7..=993 ms past whole seconds; query times are whole seconds ≡ 2 (mod 5 s) and all \
                     ranges, offsets and subquery/range steps are multiples of 5 s, so no sample or subquery step \
                     lies on a boundary",
        applies: never,
    },
    Exclusion {
        name: "holt_winters renamed",
        reason: "3.0 (#14930): holt_winters is double_exponential_smoothing behind a feature flag",
        avoided_by: "queries using either name are excluded",
        applies: uses_holt_winters,
    },
    Exclusion {
        name: "atan2 drops the metric name",
        reason: "2.47 (commit 531567d): `a atan2 b` drops __name__ like the other arithmetic operators; 2.42 \
                 kept the left side's name",
        avoided_by: "queries using the atan2 operator are excluded",
        applies: uses_atan2,
    },
    Exclusion {
        name: "UTF-8 metric and label names",
        reason: "3.0 (#14705): any UTF-8 string is a valid label name, so `label_replace(x, \"1bad\", ...)` and \
                 `count_values(\"1bad\", x)` succeed in 3.x and fail in 2.x",
        avoided_by: "every generated label name is a valid 2.x name",
        applies: never,
    },
    Exclusion {
        name: "regex dot matches newline",
        reason: "3.0 (#14505): `.` in regex matchers and label_replace matches `\\n`",
        avoided_by: "no label value contains a newline",
        applies: never,
    },
    Exclusion {
        name: "rate() extrapolation order",
        reason: "2.52 (#13725): the zero-point cap of counter extrapolation is applied after the 1.1×-interval \
                 threshold, not before; results differ when a counter starts inside the range with a small value",
        avoided_by: "counters start ≥ 10 000 and a reset halves them, so the zero point is always far away",
        applies: never,
    },
    Exclusion {
        name: "@ on range selectors evaluated over a range",
        reason: "2.51 (#13559): predict_linear(x[r] @ t, d) in a range query or subquery slid the fixed range \
                 with the steps in 2.x",
        avoided_by: "`@` on range selectors only in instant queries outside subqueries",
        applies: never,
    },
    Exclusion {
        name: "histogram_quantile small-delta fix-up",
        reason: "2.48 (#13153): buckets that are non-monotonic or increase by a tiny relative amount (< 1e-12) are \
                 treated as equal; 2.x only forced monotonicity",
        avoided_by: "bucket counts are integers, so their rates differ by far more than 1e-12 or not at all",
        applies: never,
    },
    Exclusion {
        name: "stddev/stdvar of infinities",
        reason: "3.0 (#14941): stddev and stdvar treat ±Inf inputs consistently; 2.x could return other values",
        avoided_by: "stddev/stdvar are only applied to expressions that cannot produce ±Inf",
        applies: never,
    },
    Exclusion {
        name: "stddev/stdvar of a lone NaN",
        reason: "3.0 (#14941): a stddev/stdvar group whose first value is NaN or ±Inf starts as NaN; 2.x started at \
                 0, so a group holding only that value gave 0",
        avoided_by: "recognised in the answers: a stddev/stdvar query whose answers differ only where Prometheus \
                     says 0 and Osprey NaN is excluded",
        applies: never,
    },
    Exclusion {
        name: "label collisions across non-overlapping series",
        reason: "3.x (#17703, #17708): label_replace, label_join and unary minus no longer fail when two series \
                 map to the same labels but never share a timestamp",
        avoided_by: "label_replace is only generated in forms that are injective on the data",
        applies: never,
    },
    Exclusion {
        name: "many-to-one checks in filter operators",
        reason: "3.x (#17668): comparison filters check many-to-one matching more consistently",
        avoided_by: "group_left is only generated with a right side that is unique per (job, instance)",
        applies: never,
    },
    Exclusion {
        name: "float literals as durations",
        reason: "3.0 (#15111): `foo[5]` and `offset 5` are valid in 3.x and parse errors in 2.x",
        avoided_by: "durations are always written with units",
        applies: never,
    },
    Exclusion {
        name: "numeric summation",
        reason: "2.5x/3.x (#16569, #16773, #16895): sum, avg, *_over_time and linear regression use Kahan sums and \
                 sum/count instead of an incremental mean; results differ in the last bits, and a sum of -0 is +0",
        avoided_by: "values are compared within 1e-9 relative (or 1e-12 absolute near zero), gauges are exact \
                     binary fractions, and the generator keeps last-bit differences from being amplified: no \
                     changes() over subqueries, no sin/cos or count_values of huge values, no negative factors",
        applies: never,
    },
    Exclusion {
        name: "topk/bottomk ties",
        reason: "which of several equal values topk/bottomk keep is unspecified in both versions",
        avoided_by: "a topk/bottomk query whose results differ only in labels, with the same values at every \
                     timestamp, is counted as excluded rather than mismatched",
        applies: never,
    },
];

/// Whether the query has a stddev or stdvar aggregation (not the `_over_time` functions).
pub fn aggregates_variance(query: &str) -> bool {
    ["stddev", "stdvar"]
        .iter()
        .any(|name| query.match_indices(name).any(|(at, _)| !query[at + name.len()..].starts_with("_over_time")))
}

/// The first exclusion that applies to a query, if any.
pub fn excluded(query: &str) -> Option<&'static Exclusion> {
    EXCLUSIONS.iter().find(|e| (e.applies)(query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exclusion_has_a_reason_and_holt_winters_is_recognised() {
        assert!(EXCLUSIONS.iter().all(|e| !e.reason.is_empty() && !e.avoided_by.is_empty()));
        assert_eq!(excluded("holt_winters(x[5m], 0.5, 0.5)").map(|e| e.name), Some("holt_winters renamed"));
        assert!(excluded("rate(x[5m])").is_none());
        assert!(aggregates_variance("sum(stddev by (job) (x))"));
        assert!(!aggregates_variance("stddev_over_time(x[5m])"));
    }
}
