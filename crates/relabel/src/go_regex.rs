//! Prometheus compiles relabel regexes with Go's RE2 syntax. The `regex` crate's syntax is
//! almost the same; this rewrites the differences so a pattern means what it means in
//! Prometheus:
//! - `\d \w \s \b` (and negations) are ASCII-only in Go, Unicode-aware in Rust;
//! - inside a class Go reads `[` literally and has no `&&`, `--`, `~~` set operators;
//! - Go has `\Q...\E` literal runs; octal escapes are enabled at compile time.

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = r"\t\n\f\r ";

/// The `regex`-crate spelling of the Go pattern `go`.
pub(crate) fn translate(go: &str) -> String {
    let mut out = String::with_capacity(go.len() + 16);
    let mut chars = go.chars().peekable();
    let mut in_class = false;
    // Just after `[` or `[^`, where `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else {
                    // A trailing backslash: let the regex compiler report it.
                    out.push('\\');
                    break;
                };
                if escaped == 'Q' {
                    let mut literal = String::new();
                    while let Some(l) = chars.next() {
                        if l == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        literal.push(l);
                    }
                    out.push_str(&regex::escape(&literal));
                    continue;
                }
                let class = match escaped.to_ascii_lowercase() {
                    'd' => Some(DIGIT),
                    'w' => Some(WORD),
                    's' => Some(SPACE),
                    _ => None,
                };
                match (class, escaped.is_ascii_uppercase(), in_class) {
                    (Some(set), false, true) => out.push_str(set),
                    (Some(set), false, false) => out.push_str(&format!("[{set}]")),
                    (Some(set), true, _) => out.push_str(&format!("[^{set}]")),
                    (None, _, false) if escaped == 'b' || escaped == 'B' => {
                        out.push_str(&format!(r"(?-u:\{escaped})"));
                    }
                    (None, _, _) => {
                        out.push('\\');
                        out.push(escaped);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            // `[:alpha:]` inside a class is a POSIX class in both syntaxes.
            '[' if chars.peek() == Some(&':') => out.push('['),
            '[' => out.push_str(r"\["),
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' | '-' if in_class && chars.peek() == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(go: &str, text: &str) -> bool {
        let re = regex::RegexBuilder::new(&format!("^(?:{})$", translate(go))).octal(true).build().unwrap();
        re.is_match(text)
    }

    #[test]
    fn shorthand_classes_are_ascii_as_in_go() {
        assert!(matches(r"\d+", "123"));
        assert!(!matches(r"\d+", "١٢٣"));
        assert!(matches(r"\w+", "a_1"));
        assert!(!matches(r"\w+", "é"));
        assert!(matches(r"\W", "é"));
        assert!(matches(r"a\sb", "a\tb"));
        assert!(!matches(r"a\sb", "a\u{a0}b"));
        assert!(matches(r"[\d.]+", "1.5"));
        assert!(matches(r"[^\d]+", "abc"));
        assert!(matches(r"[\D]+", "abc"));
        assert!(matches(r".*\bfoo\b.*", "a foo b"));
    }

    #[test]
    fn class_and_literal_differences() {
        assert!(matches(r"[[]", "["));
        assert!(matches(r"[a&&b]+", "a&b"));
        assert!(matches(r"[]a]+", "]a"));
        assert!(matches(r"[[:alpha:]]+", "abc"));
        assert!(matches(r"\Q.*+\E", ".*+"));
        assert!(!matches(r"\Q.*\E", "ab"));
        assert!(matches(r"\101", "A"));
        assert!(matches(r"(?i)FOO", "foo"));
    }
}
