//! Prometheus durations (`15s`, `1m30s`, `500ms`, `1d`): parsed and printed as Prometheus's
//! `model.Duration` does, because they appear in target labels (`__scrape_interval__`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

const MS_PER: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Reads `[0-9]+` + unit groups with units in the order y, w, d, h, m, s, ms, each at most
/// once; `0` alone is zero.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        if digits == 0 || letters == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        let unit = &rest[digits..digits + letters];
        let index = MS_PER.iter().position(|(name, _)| *name == unit)?;
        if index < next_unit {
            return None;
        }
        next_unit = index + 1;
        total = total.checked_add(number.checked_mul(MS_PER[index].1)?)?;
        rest = &rest[digits + letters..];
    }
    Some(Duration::from_millis(total))
}

/// Prometheus's `model.Duration.String()`: years and weeks only when exact.
pub(crate) fn format(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, mult) in MS_PER {
        let exact_only = unit == "y" || unit == "w";
        if exact_only && !ms.is_multiple_of(mult) {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// `serde(deserialize_with)` for an optional duration field.
pub(crate) fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    parse(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "not a valid duration string: {text:?}; write a number and unit, e.g. 15s, 1m30s, 500ms, 1h"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_like_prometheus() {
        for (text, ms, canonical) in [
            ("0", 0, "0s"),
            ("15s", 15_000, "15s"),
            ("1m30s", 90_000, "1m30s"),
            ("90s", 90_000, "1m30s"),
            ("500ms", 500, "500ms"),
            ("1h", 3_600_000, "1h"),
            ("2d", 172_800_000, "2d"),
            ("14d", 1_209_600_000, "2w"),
            ("1y", 31_536_000_000, "1y"),
        ] {
            let d = parse(text).unwrap();
            assert_eq!(d.as_millis() as u64, ms, "{text}");
            assert_eq!(format(d), canonical, "{text}");
        }
        for bad in ["", "1", "s", "1x", "1s1m", "1m1m", "-1s", "1.5s"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
