//! Prometheus's JSON envelope and error shape, and the one place where an error kind becomes an
//! HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use osprey_model::{ErrorKind, StorageError};
use serde_json::{json, Value};

/// The `errorType` values of Prometheus's API, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
    TooManyRequests,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::TooManyRequests => "too_many_requests",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An API error rendered as `{"status":"error","errorType":…,"error":…}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub error_type: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError { error_type, message: message.into() }
    }

    pub fn bad_data(message: impl Into<String>) -> ApiError {
        Self::new(ErrorType::BadData, message)
    }

    pub fn status(&self) -> StatusCode {
        self.error_type.status()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        let error_type = match e.kind {
            ErrorKind::BadRequest => ErrorType::BadData,
            ErrorKind::TooManyRequests => ErrorType::TooManyRequests,
            ErrorKind::NotFound => ErrorType::NotFound,
            ErrorKind::Unavailable => ErrorType::Unavailable,
            ErrorKind::Timeout => ErrorType::Timeout,
            ErrorKind::Internal => ErrorType::Internal,
        };
        ApiError::new(error_type, e.message)
    }
}

impl From<osprey_promql::PromqlError> for ApiError {
    fn from(e: osprey_promql::PromqlError) -> ApiError {
        use osprey_promql::PromqlErrorKind as K;
        let error_type = match e.kind {
            K::BadData => ErrorType::BadData,
            K::Execution | K::TooManySamples => ErrorType::Execution,
            K::Timeout => ErrorType::Timeout,
            K::Canceled => ErrorType::Canceled,
            K::Storage | K::Internal => ErrorType::Internal,
        };
        ApiError::new(error_type, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.error_type.as_str(), "error": self.message});
        let mut response = (self.status(), json_body(&body)).into_response();
        if self.error_type == ErrorType::TooManyRequests {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A successful response: `{"status":"success","data":…}` plus warnings and infos if any.
pub fn success(data: Value, warnings: &[String], infos: &[String]) -> Response {
    success_raw(data.to_string().into_bytes(), warnings, infos)
}

/// [`success`] around `data` already rendered as JSON, with the keys in the sorted order
/// `serde_json` gives objects.
pub fn success_raw(data: Vec<u8>, warnings: &[String], infos: &[String]) -> Response {
    let mut body = data;
    body.splice(0..0, *b"{\"data\":");
    if !infos.is_empty() {
        body.extend_from_slice(b",\"infos\":");
        body.extend_from_slice(json!(infos).to_string().as_bytes());
    }
    body.extend_from_slice(b",\"status\":\"success\"");
    if !warnings.is_empty() {
        body.extend_from_slice(b",\"warnings\":");
        body.extend_from_slice(json!(warnings).to_string().as_bytes());
    }
    body.push(b'}');
    let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (StatusCode::OK, content_type, body).into_response()
}

fn json_body(v: &Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], v.to_string())
}

/// A timestamp in ms as Prometheus renders it: seconds as a JSON number, up to 3 decimals.
pub fn json_time(t_ms: i64) -> Value {
    if t_ms % 1000 == 0 {
        json!(t_ms / 1000)
    } else {
        // Via the decimal text so that 1.001 stays 1.001 rather than 1.0009999999.
        let text = format_seconds(t_ms);
        serde_json::from_str(&text).unwrap_or_else(|_| json!(t_ms as f64 / 1000.0))
    }
}

fn format_seconds(t_ms: i64) -> String {
    let sign = if t_ms < 0 { "-" } else { "" };
    let abs = t_ms.unsigned_abs();
    let frac = format!("{:03}", abs % 1000);
    format!("{sign}{}.{}", abs / 1000, frac.trim_end_matches('0'))
}

/// A sample value as Prometheus renders it: the shortest text that round-trips, in Go's 'f'
/// format, or its 'e' format (`5.16e-07`, `1e+21`) when |v| < 1e-6 or |v| >= 1e21; and `NaN`,
/// `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `5.16e-7`; Go writes a signed exponent of at least two digits.
        let text = format!("{v:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = exponent.strip_prefix('-').map_or(("+", exponent), |d| ("-", d));
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    // Rust's shortest round-trip formatting without exponent, like Go's 'f', -1.
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_envelope_around_rendered_data_is_the_value_rendering() {
        let (warnings, infos) = (vec!["PromQL warning: w".to_string()], vec!["PromQL info: \"i\"".to_string()]);
        let data = json!({"resultType": "vector", "result": []});
        let got = body_of(success_raw(data.to_string().into_bytes(), &warnings, &infos)).await;
        let want = json!({"status": "success", "data": data, "warnings": warnings, "infos": infos});
        assert_eq!(got, want.to_string());
        let got = body_of(success(json!(["a"]), &[], &[])).await;
        assert_eq!(got, r#"{"data":["a"],"status":"success"}"#);
    }

    #[test]
    fn renders_times_and_values_like_prometheus() {
        assert_eq!(json_time(1_435_781_451_781).to_string(), "1435781451.781");
        assert_eq!(json_time(1_000).to_string(), "1");
        assert_eq!(json_time(1_500).to_string(), "1.5");
        assert_eq!(json_time(-1_500).to_string(), "-1.5");
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(123456789e20), "1.23456789e+28");
        assert_eq!(format_value(5.16e-7), "5.16e-07");
        assert_eq!(format_value(-1e-100), "-1e-100");
        assert_eq!(format_value(0.000001), "0.000001");
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    }
}
