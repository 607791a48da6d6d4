//! Label matchers (`=`, `!=`, `=~`, `!~`), compiled once.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression {pattern:?} in label matcher: {reason}")]
pub struct MatcherError {
    pub pattern: String,
    pub reason: String,
}

/// One label matcher. Regular expressions are fully anchored and `.` matches a newline, as in
/// Prometheus 3.
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Matcher, MatcherError> {
        let (name, value) = (name.into(), value.into());
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(
                regex::Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| MatcherError { pattern: value.clone(), reason: e.to_string() })?,
            ),
            _ => None,
        };
        Ok(Matcher { name, op, value, regex })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), regex: None }
    }

    /// Whether a label value satisfies the matcher. An absent label has the value `""`.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::RegexNoMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher accepts a series that lacks the label altogether.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether the matcher matches every value (`=~".*"`), so it filters nothing but
    /// absence-sensitive semantics.
    pub fn is_regex_match_all(&self) -> bool {
        self.op == MatchOp::RegexMatch && self.value == ".*"
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::RegexMatch, "a", "fo.").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(m.matches("fo\n"));
        let n = Matcher::new(MatchOp::RegexNoMatch, "a", "").unwrap();
        assert!(n.matches("x"));
        assert!(!n.matches_empty());
        assert!(Matcher::new(MatchOp::RegexMatch, "a", "(").is_err());
    }
}
