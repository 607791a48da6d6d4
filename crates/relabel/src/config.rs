//! The `relabel_configs` entry, its defaults and its validation.

use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::{go_regex, RelabelError};

const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Writes the expanded `replacement` to the expanded `target_label` when `regex` matches.
    #[default]
    Replace,
    /// Drops the set unless `regex` matches the joined source values.
    Keep,
    /// Drops the set when `regex` matches the joined source values.
    Drop,
    /// Drops the set unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the set when the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source values in upper case.
    Uppercase,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Case-insensitive, as Prometheus reads it.
    pub fn parse(name: &str) -> Result<Action, RelabelError> {
        let lower = name.to_ascii_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| RelabelError::UnknownAction(name.to_string()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A regular expression in Go's syntax, anchored at both ends (`^(?:...)$`), as relabelling
/// uses them.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    source: String,
    anchored: regex::Regex,
}

impl RelabelRegex {
    pub fn new(source: &str) -> Result<RelabelRegex, RelabelError> {
        let anchored = regex::RegexBuilder::new(&format!("^(?:{})$", go_regex::translate(source)))
            .octal(true)
            .build()
            .map_err(|e| RelabelError::BadRegex { regex: source.to_string(), reason: e.to_string() })?;
        Ok(RelabelRegex { source: source.to_string(), anchored })
    }

    /// The expression as written in the configuration, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub(crate) fn regex(&self) -> &regex::Regex {
        &self.anchored
    }

    fn is_default(&self) -> bool {
        self.source == DEFAULT_REGEX
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// One relabelling rule, as written under `relabel_configs` or `metric_relabel_configs`.
///
/// Deserialising validates the rule (as Prometheus does when it loads its configuration), so
/// a value read from a file is always usable.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawRelabelConfig", into = "RawRelabelConfig")]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    pub source_labels: Vec<String>,
    /// Joins the source values. Default `;`.
    pub separator: String,
    /// Matched against the input (or label names, for the label* actions). Default `(.*)`.
    pub regex: RelabelRegex,
    /// For `hashmod`.
    pub modulus: u64,
    /// The label written to; `$1`-style references are allowed for `replace`.
    pub target_label: String,
    /// The value written, with `$1`/`${name}` references to the regex's groups. Default `$1`.
    pub replacement: String,
    /// Default `replace`.
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_string(),
            regex: default_regex(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action: Action::Replace,
        }
    }
}

fn default_regex() -> RelabelRegex {
    static DEFAULT: LazyLock<RelabelRegex> =
        LazyLock::new(|| RelabelRegex::new(DEFAULT_REGEX).expect("the default regex compiles"));
    DEFAULT.clone()
}

/// Prometheus's pattern for a `target_label` that uses `$` references.
static TARGET_WITH_REFERENCES: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("the target label pattern compiles")
});

impl RelabelConfig {
    /// The rules Prometheus's `relabel.Config.Validate` applies, with its messages.
    pub fn validate(&self) -> Result<(), RelabelError> {
        use Action::*;
        if let Some(name) = self.source_labels.iter().find(|n| !osprey_model::is_valid_label_name(n)) {
            return Err(RelabelError::InvalidSourceLabel(name.clone()));
        }
        let action = self.action;
        let target = self.target_label.as_str();
        if action == HashMod && self.modulus == 0 {
            return Err(RelabelError::ZeroModulus);
        }
        let needs_target = matches!(action, Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual);
        if needs_target && target.is_empty() {
            return Err(RelabelError::MissingTargetLabel(action));
        }
        let invalid_target = || RelabelError::InvalidTargetLabel { target: target.to_string(), action };
        let target_ok = match action {
            Replace if target.contains('$') => TARGET_WITH_REFERENCES.is_match(target),
            Replace | Lowercase | Uppercase | KeepEqual | DropEqual | HashMod => {
                osprey_model::is_valid_label_name(target)
            }
            _ => true,
        };
        if !target_ok {
            return Err(invalid_target());
        }
        let fixed_replacement = matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual);
        if fixed_replacement && self.replacement != DEFAULT_REPLACEMENT {
            return Err(RelabelError::ReplacementNotAllowed(action));
        }
        if action == LabelMap && !TARGET_WITH_REFERENCES.is_match(&self.replacement) {
            return Err(RelabelError::InvalidReplacement { replacement: self.replacement.clone(), action });
        }
        let other_fields_set = |check_regex: bool| {
            (check_regex && !self.regex.is_default())
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT
        };
        if matches!(action, KeepEqual | DropEqual) && other_fields_set(true) {
            return Err(RelabelError::OnlySourceAndTarget(action));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty() || !target.is_empty() || other_fields_set(false))
        {
            return Err(RelabelError::OnlyRegex(action));
        }
        Ok(())
    }

    /// Whether this is a plain `replace` with the default regex, which Prometheus handles
    /// without running the regex when the input is empty.
    pub(crate) fn has_default_regex(&self) -> bool {
        self.regex.is_default()
    }
}

/// The configuration file's shape; absent fields take Prometheus's defaults.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = RelabelError;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, RelabelError> {
        let defaults = RelabelConfig::default();
        let config = RelabelConfig {
            source_labels: raw.source_labels,
            separator: raw.separator.unwrap_or(defaults.separator),
            regex: match raw.regex {
                Some(source) => RelabelRegex::new(&source)?,
                None => defaults.regex,
            },
            modulus: raw.modulus.unwrap_or(0),
            target_label: raw.target_label.unwrap_or_default(),
            replacement: raw.replacement.unwrap_or(defaults.replacement),
            action: match raw.action {
                Some(name) => Action::parse(&name)?,
                None => Action::Replace,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

impl From<RelabelConfig> for RawRelabelConfig {
    fn from(c: RelabelConfig) -> Self {
        RawRelabelConfig {
            source_labels: c.source_labels,
            separator: Some(c.separator),
            regex: Some(c.regex.source),
            modulus: (c.modulus != 0).then_some(c.modulus),
            target_label: (!c.target_label.is_empty()).then_some(c.target_label),
            replacement: Some(c.replacement),
            action: Some(c.action.as_str().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<RelabelConfig, String> {
        serde_norway::from_str::<RelabelConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn fills_in_prometheus_defaults() {
        let c = load("target_label: x").unwrap();
        assert_eq!(c.action, Action::Replace);
        assert_eq!(c.separator, ";");
        assert_eq!(c.regex.as_str(), "(.*)");
        assert_eq!(c.replacement, "$1");
        assert_eq!(load("action: LabelDrop\nregex: a.*").unwrap().action, Action::LabelDrop);
    }

    #[test]
    fn round_trips_through_yaml() {
        let c = load("source_labels: [a, b]\nregex: 'x(.*)'\ntarget_label: t\nreplacement: '${1}'").unwrap();
        let yaml = serde_norway::to_string(&c).unwrap();
        assert_eq!(load(&yaml).unwrap(), c);
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for (yaml, want) in [
            ("action: frobnicate", "unknown relabel action \"frobnicate\""),
            ("action: replace", "relabel configuration for replace action requires 'target_label' value"),
            ("action: lowercase", "relabel configuration for lowercase action requires 'target_label' value"),
            ("action: lowercase\ntarget_label: '${3}'", "\"${3}\" is invalid 'target_label' for lowercase action"),
            ("target_label: '0${3}'", "\"0${3}\" is invalid 'target_label' for replace action"),
            ("target_label: '-${3}'", "\"-${3}\" is invalid 'target_label' for replace action"),
            ("target_label: 'a-b'", "\"a-b\" is invalid 'target_label' for replace action"),
            ("action: hashmod\ntarget_label: x", "relabel configuration for hashmod requires non-zero modulus"),
            ("action: uppercase\ntarget_label: x\nreplacement: y", "'replacement' can not be set for uppercase action"),
            ("action: labelmap\nreplacement: '-$1'", "\"-$1\" is invalid 'replacement' for labelmap action"),
            (
                "action: keepequal\ntarget_label: x\nregex: a",
                "keepequal action requires only 'source_labels' and `target_label`, and no other fields",
            ),
            (
                "action: labeldrop\nregex: a\nsource_labels: [x]",
                "labeldrop action requires only 'regex', and no other fields",
            ),
            (
                "action: labelkeep\nregex: a\ntarget_label: x",
                "labelkeep action requires only 'regex', and no other fields",
            ),
            ("regex: '('\ntarget_label: x", "invalid relabel regex \"(\""),
            ("source_labels: [a-b]\ntarget_label: x", "\"a-b\" is not a valid label name"),
            ("target_label: x\nbogus: 1", "unknown field `bogus`"),
        ] {
            let err = load(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml:?}: got {err:?}, want {want:?}");
        }
        // References make an otherwise invalid target acceptable, as in Prometheus.
        assert!(load("source_labels: [a]\nregex: 'some-([^-]+)-([^,]+)'\ntarget_label: '${3}'").is_ok());
    }

    #[test]
    fn target_label_pattern_matches_prometheus() {
        for (s, valid) in [
            ("-label", false),
            ("label", true),
            ("label${1}", true),
            ("${1}label", true),
            ("${1}", true),
            ("${", false),
            ("$", false),
            ("${}", false),
            ("foo${", false),
            ("$1", true),
            ("asd$2asd", true),
            ("-foo${1}bar-", false),
            ("_${1}_", true),
            ("foo${bar}foo", true),
        ] {
            assert_eq!(TARGET_WITH_REFERENCES.is_match(s), valid, "{s}");
        }
    }
}
