//! ferrotel's own settings (`FERROTEL_*`): what the specification has no word for — the span
//! processing chain — plus the spec's HTTP header-capture lists that feed it.

use super::reader::{parse_millis, Reader};
use super::{ProcessingConfig, TestFault};

const DEFAULT_FILTER_ROUTES: &[&str] = &["/healthz", "/readyz", "/livez", "/metrics"];
/// Query keys masked by default: credentials people put in URLs, plus the keys the semantic
/// conventions name for `url.query` redaction.
const DEFAULT_REDACT_QUERY_KEYS: &[&str] = &[
    "token", "access_token", "refresh_token", "id_token", "password", "passwd", "secret", "client_secret", "api_key",
    "apikey", "key", "sig", "signature", "awsaccesskeyid", "x-goog-signature", "x-amz-signature", "x-amz-credential",
    "x-amz-security-token", "auth", "session", "sessionid",
];
const DEFAULT_REDACT_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token", "x-csrf-token"];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn processing(r: &mut Reader<'_>) -> ProcessingConfig {
    let span_attributes = r.pairs("FERROTEL_SPAN_ATTRIBUTES");
    let slow_threshold = r.millis(&["FERROTEL_SLOW_THRESHOLD_MS"], 100);
    let mut slow_routes = Vec::new();
    for (route, ms) in r.pairs("FERROTEL_SLOW_ROUTES") {
        match parse_millis(&ms) {
            Some(d) => slow_routes.push((route, d)),
            None => r.warn("FERROTEL_SLOW_ROUTES", &format!("{route}={ms}"), "the global threshold for that route"),
        }
    }
    let filter_routes = r.list("FERROTEL_FILTER_ROUTES").unwrap_or_else(|| strings(DEFAULT_FILTER_ROUTES));
    let filter_methods = r.list("FERROTEL_FILTER_METHODS").unwrap_or_default().into_iter().map(|m| m.to_ascii_uppercase()).collect();
    let filter_attributes = r.pairs("FERROTEL_FILTER_ATTRIBUTES");
    let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
    let redact_query_keys = lower(r.list("FERROTEL_REDACT_QUERY_KEYS").unwrap_or_else(|| strings(DEFAULT_REDACT_QUERY_KEYS)));
    let redact_headers = lower(r.list("FERROTEL_REDACT_HEADERS").unwrap_or_else(|| strings(DEFAULT_REDACT_HEADERS)));
    // Header names are regular expressions upstream (matched case-insensitively): plain names are
    // lower-cased here (compared as they are), patterns kept as written (`\D` is not `\d`).
    let names = |r: &mut Reader<'_>, key: &str| -> Vec<String> {
        r.list(key).unwrap_or_default().into_iter().map(|s| if plain_header_name(&s) { s.to_ascii_lowercase() } else { s }).collect()
    };
    let capture_request_headers = names(r, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST");
    let capture_response_headers = names(r, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE");
    let capture_client_request_headers = names(r, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST");
    let capture_client_response_headers = names(r, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE");
    let sanitize_headers = names(r, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS");
    let keep_errors_and_slow = r.bool("FERROTEL_KEEP_ERRORS_AND_SLOW", true);
    let db_slow_threshold = r.millis(&["FERROTEL_DB_SLOW_THRESHOLD_MS"], 100);
    let db_query_max_len = if r.bool("FERROTEL_DB_QUERY_TEXT", true) { r.positive("FERROTEL_DB_QUERY_TEXT_MAX_LENGTH", 2048) } else { 0 };
    let db_sqlcommenter = r.bool("FERROTEL_DB_SQLCOMMENTER", false);
    let celery_link_only = r.bool("FERROTEL_CELERY_LINK_ONLY", false);
    ProcessingConfig {
        span_attributes,
        slow_threshold,
        slow_routes,
        filter_routes,
        filter_methods,
        filter_attributes,
        redact_query_keys,
        redact_headers,
        capture_request_headers,
        capture_response_headers,
        capture_client_request_headers,
        capture_client_response_headers,
        sanitize_headers,
        keep_errors_and_slow,
        db_slow_threshold,
        db_query_max_len,
        db_sqlcommenter,
        celery_link_only,
    }
}

/// A header name with nothing of a regular expression in it (letters, digits, `-`, `_`).
pub fn plain_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn test_fault(r: &mut Reader<'_>) -> Option<TestFault> {
    let key = "FERROTEL_TEST_FAULT";
    match r.get(key)?.to_ascii_lowercase().as_str() {
        "panic" => Some(TestFault::Panic),
        "start_response" => Some(TestFault::StartResponse),
        "body" => Some(TestFault::Body),
        "processor_panic" => Some(TestFault::ProcessorPanic),
        other => {
            r.warn(key, other, "no fault");
            None
        }
    }
}
