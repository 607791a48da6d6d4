//! Floats as Go's `strconv` reads and writes them, so values and normalised `le`/`quantile`
//! labels agree with Prometheus.

/// The NaN Prometheus stores for every NaN it parses (`value.NormalNaN`), distinct from the
/// staleness marker, so a page can never produce a marker.
const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Reads a float the way Go's `strconv.ParseFloat` does for exposition values: decimal and
/// exponent forms, `NaN`, `Inf`, `+Inf`, `-Inf` (any case).
pub(super) fn parse(token: &str) -> Option<f64> {
    // Rust's parser accepts the same decimal, exponent, `inf`/`infinity`/`nan` spellings (any
    // case, optional sign); only Go's rarely used hex floats are not read.
    let v = token.parse::<f64>().ok()?;
    Some(if v.is_nan() { f64::from_bits(NORMAL_NAN_BITS) } else { v })
}

/// Prometheus's `formatOpenMetricsFloat`: Go's shortest `'g'` formatting, with `.0` added to
/// integral values that print without a dot or an exponent (`1` -> `1.0`, `1e6` -> `1e+06`).
pub(super) fn format_open_metrics(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let s = format_go_g(v);
    if s.contains(['.', 'e']) {
        s
    } else {
        s + ".0"
    }
}

/// `strconv.FormatFloat(v, 'g', -1, 64)` for finite `v`.
fn format_go_g(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's shortest mode does.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if v < 0.0 {
        out.push('-');
    }
    // Go uses %e when the exponent is < -4 or >= 6 in shortest mode.
    if !(-4..6).contains(&exp) {
        out.push(digits[0] as char);
        if digits.len() > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&d| d as char));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
        return out;
    }
    // Decimal point after `exp + 1` digits.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.extend(digits.iter().map(|&d| d as char));
    } else {
        let point = point as usize;
        for i in 0..point.max(digits.len()) {
            if i == point {
                out.push('.');
            }
            out.push(digits.get(i).map_or('0', |&d| d as char));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_prometheus() {
        for (v, want) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-1.0, "-1.0"),
            (0.5, "0.5"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (2.5, "2.5"),
            (1234.5, "1234.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_open_metrics(v), want, "{v}");
        }
    }

    #[test]
    fn parses_special_values() {
        assert_eq!(parse("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse("NaN").map(f64::to_bits), Some(NORMAL_NAN_BITS));
        assert_eq!(parse("-nan").map(f64::to_bits), Some(NORMAL_NAN_BITS));
        assert_eq!(parse("1.5e3"), Some(1500.0));
        assert_eq!(parse("abc"), None);
        assert_eq!(parse(""), None);
    }
}
