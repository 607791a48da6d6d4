//! Applying relabel rules to a label set.

use md5::{Digest, Md5};
use osprey_model::Labels;

use crate::builder::Builder;
use crate::{Action, RelabelConfig};

/// Applies `configs` in order; `None` when a rule drops the set.
pub fn process(labels: Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return Some(labels);
    }
    let mut builder = Builder::new(labels);
    for config in configs {
        if !apply(config, &mut builder) {
            return None;
        }
    }
    Some(builder.build())
}

/// One rule; false when it drops the set.
fn apply(config: &RelabelConfig, b: &mut Builder) -> bool {
    let value = config.source_labels.iter().map(|name| b.get(name)).collect::<Vec<_>>().join(&config.separator);
    let regex = config.regex.regex();
    match config.action {
        Action::Drop => return !regex.is_match(&value),
        Action::Keep => return regex.is_match(&value),
        Action::DropEqual => return b.get(&config.target_label) != value,
        Action::KeepEqual => return b.get(&config.target_label) == value,
        Action::Replace => replace(config, b, &value),
        Action::Lowercase => b.set(&config.target_label, &value.to_lowercase()),
        Action::Uppercase => b.set(&config.target_label, &value.to_uppercase()),
        Action::HashMod => {
            let sum = Md5::digest(value.as_bytes());
            // The last eight bytes, big-endian, as Prometheus has always used.
            let tail: [u8; 8] = sum[8..].try_into().unwrap_or_default();
            // Validation guarantees a non-zero modulus; `max(1)` keeps a hand-built config
            // from dividing by zero.
            let bucket = u64::from_be_bytes(tail) % config.modulus.max(1);
            b.set(&config.target_label, &bucket.to_string());
        }
        Action::LabelMap => {
            for label in b.snapshot() {
                if regex.is_match(&label.name) {
                    let name = regex.replace_all(&label.name, config.replacement.as_str());
                    b.set(&name, &label.value);
                }
            }
        }
        Action::LabelDrop => {
            for label in b.snapshot() {
                if regex.is_match(&label.name) {
                    b.del(&label.name);
                }
            }
        }
        Action::LabelKeep => {
            for label in b.snapshot() {
                if !regex.is_match(&label.name) {
                    b.del(&label.name);
                }
            }
        }
    }
    true
}

fn replace(config: &RelabelConfig, b: &mut Builder, value: &str) {
    // Prometheus's fast path: with the default regex and no references, an empty input just
    // sets (or, with an empty replacement, deletes) the target.
    let no_references = !config.target_label.contains('$') && !config.replacement.contains('$');
    if value.is_empty() && config.has_default_regex() && no_references {
        b.set(&config.target_label, &config.replacement);
        return;
    }
    let Some(captures) = config.regex.regex().captures(value) else {
        return;
    };
    let mut target = String::new();
    captures.expand(&config.target_label, &mut target);
    if !osprey_model::is_valid_label_name(&target) {
        return;
    }
    let mut result = String::new();
    captures.expand(&config.replacement, &mut result);
    if result.is_empty() {
        b.del(&target);
    } else {
        b.set(&target, &result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    /// Runs the YAML list of rules over `input`; `want` None means dropped.
    fn check(input: &[(&str, &str)], rules: &str, want: Option<&[(&str, &str)]>) {
        let configs: Vec<RelabelConfig> = serde_norway::from_str(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        let got = process(labels(input), &configs);
        assert_eq!(got, want.map(labels), "rules:\n{rules}");
    }

    // Cases from Prometheus's model/relabel/relabel_test.go.

    #[test]
    fn replace_expands_groups() {
        let abc = [("a", "foo"), ("b", "bar"), ("c", "baz")];
        check(
            &abc,
            "- {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
            Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
        );
        check(
            &abc,
            "- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}
- {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}",
            Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
        );
        check(
            &[("a", "abc")],
            "- {source_labels: [a], regex: '.*(b).*', target_label: d}",
            Some(&[("a", "abc"), ("d", "b")]),
        );
        // No replacement without a match.
        check(
            &[("a", "boo")],
            "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
            Some(&[("a", "boo")]),
        );
    }

    #[test]
    fn replace_with_referenced_target_names() {
        let input = [("a", "some-name-value")];
        check(
            &input,
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}'}",
            Some(&[("a", "some-name-value"), ("name", "value")]),
        );
        // An empty replacement writes nothing.
        check(
            &input,
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}'}",
            Some(&input),
        );
        // A target that expands to an invalid name is skipped.
        check(
            &[("a", "some-name-0")],
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}
- {source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', replacement: '${1}', target_label: '${3}'}",
            Some(&[("a", "some-name-0")]),
        );
        check(
            &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
            "- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}'}",
            Some(&[
                ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
                ("__metrics_path__", "/secret"),
                ("job", "some-job"),
                ("foo", "bar"),
            ]),
        );
    }

    #[test]
    fn replace_fast_path_sets_and_deletes() {
        check(&[("a", "1")], "- {target_label: b, replacement: fixed}", Some(&[("a", "1"), ("b", "fixed")]));
        check(&[("a", "1"), ("b", "2")], "- {target_label: b, replacement: ''}", Some(&[("a", "1")]));
    }

    #[test]
    fn keep_and_drop() {
        check(
            &[("a", "foo")],
            "- {source_labels: [a], regex: '.*o.*', action: drop}\n- {source_labels: [a], regex: 'f(.*)', target_label: d}",
            None,
        );
        check(&[("a", "foo"), ("b", "bar")], "- {source_labels: [a], regex: '.*o.*', action: drop}", None);
        check(&[("a", "foo")], "- {source_labels: [a], regex: no-match, action: drop}", Some(&[("a", "foo")]));
        // Anchored: `f|o` does not match "foo".
        check(&[("a", "foo")], "- {source_labels: [a], regex: 'f|o', action: drop}", Some(&[("a", "foo")]));
        check(&[("a", "foo")], "- {source_labels: [a], regex: no-match, action: keep}", None);
        check(&[("a", "foo")], "- {source_labels: [a], regex: 'f.*', action: keep}", Some(&[("a", "foo")]));
        // A missing source label reads as empty.
        check(&[("a", "foo")], "- {source_labels: [missing], regex: '', action: drop}", None);
    }

    #[test]
    fn keepequal_and_dropequal() {
        let input = [("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")];
        check(&input, "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}", Some(&input));
        check(&input, "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}", None);
        check(&input, "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}", Some(&input));
        check(&input, "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}", None);
    }

    #[test]
    fn hashmod_matches_prometheus() {
        check(
            &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
            Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
        );
        check(
            &[("a", "foo\nbar")],
            "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
            Some(&[("a", "foo\nbar"), ("b", "734")]),
        );
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        check(
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
            Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")]),
        );
        check(
            &[("a", "foo"), ("__meta_my_bar", "aaa"), ("__meta_my_baz", "bbb"), ("__meta_other", "ccc")],
            "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
            Some(&[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
                ("my_bar", "aaa"),
                ("my_baz", "bbb"),
            ]),
        );
        check(
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            "- {regex: '(b.*)', action: labelkeep}",
            Some(&[("b1", "bar"), ("b2", "baz")]),
        );
        check(
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            "- {regex: '(b.*)', action: labeldrop}",
            Some(&[("a", "foo")]),
        );
    }

    #[test]
    fn labeldrop_then_replace_sees_the_deletion() {
        // prometheus/prometheus#12283.
        check(
            &[("__meta_kubernetes_pod_container_port_name", "foo"), ("__meta_kubernetes_pod_annotation_example_metrics_port", "9091")],
            "- {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}
- {source_labels: [__meta_kubernetes_pod_annotation_example_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}",
            Some(&[
                ("__meta_kubernetes_pod_annotation_example_metrics_port", "9091"),
                ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ]),
        );
    }

    #[test]
    fn lowercase_and_uppercase() {
        check(
            &[("foo", "bAr123Foo")],
            "- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}
- {source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
            Some(&[("foo", "bAr123Foo"), ("foo_lowercase", "bar123foo"), ("foo_uppercase", "BAR123FOO")]),
        );
    }

    #[test]
    fn no_rules_return_the_input() {
        assert_eq!(process(labels(&[("a", "1")]), &[]), Some(labels(&[("a", "1")])));
    }
}
