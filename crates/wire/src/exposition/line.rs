//! A cursor over one line of an exposition. The line is valid UTF-8 and the cursor only ever
//! stops at ASCII bytes, so every slice it hands out is valid UTF-8 too.

use osprey_model::Label;

use super::{clip, Problem};

const WORD_START: u8 = 1;
const DIGIT: u8 = 2;
const COLON: u8 = 4;

/// Name-character classes by byte: a table lookup per byte is what keeps name scanning, the
/// hottest loop of the parser, cheap (perf on a node_exporter page: 15% of the parse with
/// per-byte predicates, 8% with the table).
const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphabetic() || c == b'_' {
            WORD_START
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b':' {
            COLON
        } else {
            0
        };
        b += 1;
    }
    table
};

pub(super) struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(line: &'a str) -> Cursor<'a> {
        Cursor { line, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        &self.line.as_bytes()[self.pos..]
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    pub(super) fn at(&self, c: char) -> bool {
        self.bytes().first() == Some(&(c as u8))
    }

    /// Consumes `c` if it is next.
    pub(super) fn eat(&mut self, c: char) -> bool {
        let found = self.at(c);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Skips spaces and tabs; says whether there were any.
    pub(super) fn skip_blanks(&mut self) -> bool {
        let n = self.bytes().iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        self.pos += n;
        n > 0
    }

    /// Everything not yet consumed.
    pub(super) fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    /// Consumes up to the next blank (or the end).
    pub(super) fn token(&mut self) -> &'a str {
        let n = self.bytes().iter().take_while(|&&b| b != b' ' && b != b'\t').count();
        let token = &self.line[self.pos..self.pos + n];
        self.pos += n;
        token
    }

    /// The longest run starting with a byte of class `first` and going on with bytes of class
    /// `rest` (see [`CLASSES`]).
    fn take_name(&mut self, first: u8, rest: u8) -> &'a str {
        let bytes = self.bytes();
        let n = match bytes.first() {
            Some(&b) if CLASSES[b as usize] & first != 0 => {
                1 + bytes[1..].iter().take_while(|&&b| CLASSES[b as usize] & rest != 0).count()
            }
            _ => 0,
        };
        let taken = &self.line[self.pos..self.pos + n];
        self.pos += n;
        taken
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, possibly empty.
    pub(super) fn metric_name(&mut self) -> &'a str {
        self.take_name(WORD_START | COLON, WORD_START | DIGIT | COLON)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, possibly empty.
    fn label_name(&mut self) -> &'a str {
        self.take_name(WORD_START, WORD_START | DIGIT)
    }

    /// Reads `name="value", ...}` after an opening brace, with an optional trailing comma.
    pub(super) fn labels(&mut self, out: &mut Vec<Label>) -> Result<(), Problem> {
        loop {
            self.skip_blanks();
            if self.eat('}') {
                return Ok(());
            }
            let name = self.label_name();
            if name.is_empty() {
                let got = self.rest().split(['=', ',', '}', ' ']).next().unwrap_or("");
                return Err(Problem::ExpectedLabelName(clip(got)));
            }
            self.skip_blanks();
            if !self.eat('=') {
                return Err(Problem::ExpectedEquals(name.to_string()));
            }
            self.skip_blanks();
            if !self.eat('"') {
                return Err(Problem::ExpectedLabelValue(name.to_string()));
            }
            let value = self.quoted().ok_or_else(|| Problem::UnterminatedLabelValue(name.to_string()))?;
            out.push(Label { name: name.to_string(), value });
            self.skip_blanks();
            if self.eat('}') {
                return Ok(());
            }
            if !self.eat(',') {
                return Err(Problem::ExpectedCommaOrBrace(clip(self.rest())));
            }
        }
    }

    /// The rest of a double-quoted string after its opening quote, unescaped. `\\`, `\"` and
    /// `\n` are escapes; any other backslash is kept as it is, as Prometheus keeps it.
    fn quoted(&mut self) -> Option<String> {
        let bytes = self.bytes();
        let end = bytes.iter().position(|&b| b == b'"' || b == b'\\')?;
        if bytes[end] == b'"' {
            let value = self.line[self.pos..self.pos + end].to_string();
            self.pos += end + 1;
            return Some(value);
        }
        let mut value = String::with_capacity(end + 16);
        let mut start = self.pos;
        let mut i = self.pos + end;
        let all = self.line.as_bytes();
        while i < all.len() {
            match all[i] {
                b'"' => {
                    value.push_str(&self.line[start..i]);
                    self.pos = i + 1;
                    return Some(value);
                }
                b'\\' => {
                    value.push_str(&self.line[start..i]);
                    match all.get(i + 1) {
                        Some(b'\\') => value.push('\\'),
                        Some(b'"') => value.push('"'),
                        Some(b'n') => value.push('\n'),
                        // Kept verbatim: the backslash now, the next character with the run.
                        _ => {
                            value.push('\\');
                            start = i + 1;
                            i += 1;
                            continue;
                        }
                    }
                    i += 2;
                    start = i;
                }
                _ => i += 1,
            }
        }
        None
    }
}
