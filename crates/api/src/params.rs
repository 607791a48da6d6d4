//! Request parameters the way Prometheus reads them: from the query string and, for POST, from
//! an `application/x-www-form-urlencoded` body, with Prometheus's time and duration syntax.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, Method};

use crate::response::ApiError;

/// Every parameter of a request, in order, repeated names kept (`match[]`).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `name`, if given and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// A timestamp parameter in ms, or `default` when absent.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => parse_time(text).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse \"{text}\" to a valid timestamp"
                ))
            }),
        }
    }

    /// A duration parameter in ms (`step`, `timeout`), if given.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_duration(text).ok_or_else(|| {
                    ApiError::bad_data(format!(
                        "invalid parameter \"{name}\": cannot parse \"{text}\" to a valid duration"
                    ))
                })
            })
            .transpose()
    }

    /// A non-negative integer parameter such as `limit` (0 or absent = no limit).
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(0),
            Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).map(|n| n as usize).ok_or_else(|| {
                ApiError::bad_data(format!("invalid parameter \"limit\": cannot parse \"{text}\" to a valid limit"))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let is_form = req.method() == Method::POST
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if let Some(q) = req.uri().query() {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        if is_form {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("cannot read form body: {e}")))?;
            // Go's ParseForm puts body values before query values.
            let mut form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            form.append(&mut pairs);
            pairs = form;
        }
        Ok(Params(pairs))
    }
}

/// The earliest and latest times Prometheus accepts (its `minTime`/`maxTime`), used as defaults
/// for `start`/`end` of metadata queries.
pub const MIN_TIME_MS: i64 = -62_135_596_800_000 + 1;
pub const MAX_TIME_MS: i64 = 253_402_300_799_000;

/// Prometheus's `parseTime`: Unix seconds as a float, or RFC 3339.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() {
            return None;
        }
        let ms = (secs * 1000.0).round();
        return Some(ms.clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    // Go's minTime/maxTime formatted by Prometheus clients (e.g. Grafana) round-trip here.
    humantime::parse_rfc3339_weak(text).ok().or_else(|| humantime::parse_rfc3339(text).ok()).map(|t| {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }
    })
}

/// Prometheus's `parseDuration`: float seconds, or a duration like `1h30m`, `15s`, `100ms`.
pub fn parse_duration(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        let ms = secs * 1000.0;
        return (ms.is_finite() && ms.abs() < i64::MAX as f64).then_some(ms.round() as i64);
    }
    parse_prometheus_duration(text)
}

/// `[0-9]+(y|w|d|h|m|s|ms)` units in descending order, as Prometheus's `model.ParseDuration`.
pub fn parse_prometheus_duration(text: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(0);
    }
    let bytes = text.as_bytes();
    let (mut i, mut total, mut last_unit) = (0usize, 0i64, usize::MAX);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let number: i64 = text[start..i].parse().ok()?;
        let rest = &text[i..];
        // "ms" must be tried before "m".
        let (idx, (unit, factor)) =
            UNITS.iter().enumerate().filter(|(_, (u, _))| rest.starts_with(u)).max_by_key(|(_, (u, _))| u.len())?;
        if last_unit != usize::MAX && idx <= last_unit {
            return None;
        }
        last_unit = idx;
        i += unit.len();
        total = total.checked_add(number.checked_mul(*factor)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_like_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Some(1_435_781_451_781));
        assert_eq!(parse_time("nope"), None);
    }

    #[test]
    fn parses_durations_like_prometheus() {
        assert_eq!(parse_duration("15"), Some(15_000));
        assert_eq!(parse_duration("0.5"), Some(500));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("100ms"), Some(100));
        assert_eq!(parse_duration("1m1h"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}
