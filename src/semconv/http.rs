//! HTTP semantic conventions (stable, v1.2x): the rules that turn request facts into span
//! attributes, names and status. Pure Rust, shared by every HTTP server and client hook.

use super::ERROR_TYPE;
use crate::span::{SpanRecord, Status, Text, Value};

pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const HTTP_ROUTE: &str = "http.route";
pub const URL_PATH: &str = "url.path";
pub const URL_QUERY: &str = "url.query";
pub const URL_SCHEME: &str = "url.scheme";
pub const CLIENT_ADDRESS: &str = "client.address";
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";

pub const KNOWN_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Record the request method: known methods as they are, anything else as `_OTHER` with the
/// original kept beside it.
pub fn set_method(span: &mut SpanRecord, method: &str) {
    if let Some(known) = KNOWN_METHODS.iter().find(|m| **m == method) {
        span.set(HTTP_REQUEST_METHOD, Text::const_new(known));
    } else {
        span.set(HTTP_REQUEST_METHOD, "_OTHER");
        span.set(HTTP_REQUEST_METHOD_ORIGINAL, method);
    }
}

/// `{method} {route}`, or just `{method}` without a route; `HTTP` stands for unknown methods.
pub fn server_span_name(span: &SpanRecord) -> Text {
    let method = match span.get(HTTP_REQUEST_METHOD) {
        Some(Value::Str(m)) if m != "_OTHER" => m,
        _ => &Text::const_new("HTTP"),
    };
    match span.get(HTTP_ROUTE) {
        Some(Value::Str(route)) => {
            let mut name = Text::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            name
        }
        _ => method.clone(),
    }
}

/// `text` as one of `known` (static: no copy, no allocation) or as its own copy.
pub fn known_or_owned(text: &str, known: &[&'static str]) -> Text {
    match known.iter().find(|k| **k == text) {
        Some(k) => Text::const_new(k),
        None => Text::new(text),
    }
}

/// The values `network.protocol.version` and `url.scheme` nearly always take.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["1.1", "1.0", "2", "3"];
pub const SCHEMES: [&str; 2] = ["http", "https"];

/// Split a `Host` header (`name`, `name:port`, `[v6]:port`) into address and port.
pub fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, tail)) = rest.split_once(']') {
            return (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
        return (host, None);
    }
    match host.rsplit_once(':') {
        Some((addr, port)) if !addr.contains(':') => match port.parse() {
            Ok(p) => (addr, Some(p)),
            Err(_) => (addr, None),
        },
        _ => (host, None),
    }
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `HTTP/1.1` → `1.1`.
pub fn protocol_version(server_protocol: &str) -> Option<&str> {
    server_protocol.strip_prefix("HTTP/").filter(|v| !v.is_empty())
}

/// The numeric code at the start of a WSGI status line (`"404 Not Found"`).
pub fn status_code(status_line: &str) -> Option<i64> {
    let digits = status_line.get(..3)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
}

/// The first client address from `Forwarded: for=` or `X-Forwarded-For`, when a proxy says so.
pub fn forwarded_client(forwarded: Option<&str>, x_forwarded_for: Option<&str>) -> Option<String> {
    if let Some(f) = forwarded {
        let first = f.split(',').next().unwrap_or("");
        for part in first.split(';') {
            let (k, v) = part.trim().split_once('=')?;
            if k.eq_ignore_ascii_case("for") {
                let v = v.trim_matches('"');
                let (addr, _) = split_host(v);
                if !addr.is_empty() {
                    return Some(addr.to_string());
                }
            }
        }
    }
    x_forwarded_for.and_then(|x| x.split(',').next()).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Close a server span: status code attribute, error rules (5xx is an error on a server span,
/// 4xx is not), and the name from method and route.
pub fn finish_server_span(span: &mut SpanRecord, status: Option<i64>) {
    if let Some(code) = status {
        span.set(HTTP_RESPONSE_STATUS_CODE, code);
        if code >= 500 {
            if span.get(ERROR_TYPE).is_none() {
                span.set(ERROR_TYPE, code.to_string());
            }
            if span.status == Status::Unset {
                span.status = Status::Error(String::new());
            }
        }
    }
    span.name = server_span_name(span);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::{record_exception, ExceptionInfo};
    use crate::context::TraceId;
    use crate::span::{Scope, SpanKind};

    fn span() -> SpanRecord {
        SpanRecord::start(String::new(), SpanKind::Server, Scope::fixed("t"), None, TraceId::random(), crate::span::Head::Sampled)
    }

    #[test]
    fn host_split() {
        assert_eq!(split_host("example.com:8080"), ("example.com", Some(8080)));
        assert_eq!(split_host("example.com"), ("example.com", None));
        assert_eq!(split_host("[::1]:5000"), ("::1", Some(5000)));
        assert_eq!(split_host("[::1]"), ("::1", None));
        assert_eq!(split_host("::1"), ("::1", None));
        assert_eq!(split_host("host:notaport"), ("host", None));
    }

    #[test]
    fn names_and_methods() {
        let mut s = span();
        set_method(&mut s, "GET");
        s.set(HTTP_ROUTE, "/users/<int:uid>");
        finish_server_span(&mut s, Some(200));
        assert_eq!(s.name, "GET /users/<int:uid>");
        let mut s = span();
        set_method(&mut s, "FOO");
        finish_server_span(&mut s, Some(405));
        assert_eq!(s.name, "HTTP");
        assert_eq!(s.get(HTTP_REQUEST_METHOD_ORIGINAL), Some(&Value::Str("FOO".into())));
    }

    #[test]
    fn status_rules() {
        let mut s = span();
        finish_server_span(&mut s, Some(404));
        assert_eq!(s.status, Status::Unset);
        assert!(s.get(ERROR_TYPE).is_none());
        let mut s = span();
        finish_server_span(&mut s, Some(503));
        assert!(matches!(s.status, Status::Error(_)));
        assert_eq!(s.get(ERROR_TYPE), Some(&Value::Str("503".into())));
        let mut s = span();
        record_exception(&mut s, ExceptionInfo { type_name: "ValueError".into(), message: "boom".into(), stacktrace: "tb".into() }, 1);
        finish_server_span(&mut s, Some(500));
        assert_eq!(s.get(ERROR_TYPE), Some(&Value::Str("ValueError".into())));
        assert_eq!(s.status, Status::Error("ValueError: boom".into()));
        assert_eq!(s.events[0].name, "exception");
    }

    #[test]
    fn status_lines_and_protocols() {
        assert_eq!(status_code("200 OK"), Some(200));
        assert_eq!(status_code("5x0 bad"), None);
        assert_eq!(status_code("20"), None);
        assert_eq!(protocol_version("HTTP/1.1"), Some("1.1"));
        assert_eq!(protocol_version("HTTP/"), None);
    }

    #[test]
    fn forwarded_headers() {
        assert_eq!(forwarded_client(Some("for=\"[2001:db8::1]:4711\";proto=https, for=1.2.3.4"), None).as_deref(), Some("2001:db8::1"));
        assert_eq!(forwarded_client(None, Some(" 203.0.113.7, 10.0.0.1")).as_deref(), Some("203.0.113.7"));
        assert_eq!(forwarded_client(None, None), None);
    }
}

// ---- HTTP client spans (stable conventions): shared by the http.client, urllib3 and httpx hooks.

pub const URL_FULL: &str = "url.full";
pub const URL_REDACTED: &str = "REDACTED";

/// The client span name: `{method}`, `HTTP` for methods outside the known set.
pub fn client_span_name(method: &str) -> &str {
    if KNOWN_METHODS.contains(&method) {
        method
    } else {
        "HTTP"
    }
}

/// `scheme://host[:port]target` for a request target (`/path?q`) sent to `host:port`; the port is
/// left out when it is the scheme's default, IPv6 hosts get brackets. An absolute target (a
/// request through an HTTP proxy) is the URL itself.
pub fn client_url(scheme: &str, host: &str, port: Option<u16>, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return redact_userinfo(target);
    }
    let mut url = String::with_capacity(scheme.len() + host.len() + target.len() + 10);
    url.push_str(scheme);
    url.push_str("://");
    if host.contains(':') && !host.starts_with('[') && !host.contains('@') {
        url.push('[');
        url.push_str(host);
        url.push(']');
    } else {
        url.push_str(host);
    }
    if let Some(p) = port.filter(|p| Some(*p) != default_port(scheme)) {
        url.push(':');
        url.push_str(&p.to_string());
    }
    if !target.starts_with('/') {
        url.push('/');
    }
    url.push_str(target);
    if host.contains('@') {
        return redact_userinfo(&url);
    }
    url
}

/// `user:password@` in a URL's authority becomes `REDACTED:REDACTED@` (the conventions forbid
/// credentials in `url.full`).
pub fn redact_userinfo(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..end].rfind('@') {
            return format!("{}{URL_REDACTED}:{URL_REDACTED}{}", &url[..start], &url[start + at..]);
        }
    }
    url.to_string()
}

/// The origin a URL names: (scheme, host, port), the port defaulted from the scheme.
pub fn url_origin(url: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host(hostport);
    Some((scheme, host, port.or_else(|| default_port(&scheme.to_ascii_lowercase()))))
}

/// HTTP versions as the client libraries report them (`11`, `b"HTTP/1.1"`, `"HTTP/2"`) in the
/// convention's form (`1.1`, `2`).
pub fn protocol_from_number(version: i64) -> Option<&'static str> {
    match version {
        9 => Some("0.9"),
        10 => Some("1.0"),
        11 => Some("1.1"),
        20 | 2 => Some("2"),
        30 | 3 => Some("3"),
        _ => None,
    }
}

/// Close a client span: status code attribute and the client error rule (every status from 400
/// on is an error; `error.type` is the code unless an exception already named it).
pub fn finish_client_span(span: &mut SpanRecord, status: Option<i64>) {
    if let Some(code) = status {
        span.set(HTTP_RESPONSE_STATUS_CODE, code);
        if code >= 400 {
            if span.get(ERROR_TYPE).is_none() {
                span.set(ERROR_TYPE, code.to_string());
            }
            if span.status == Status::Unset {
                span.status = Status::Error(String::new());
            }
        }
    }
}

#[cfg(test)]
mod client_tests {
    use super::*;
    use crate::context::TraceId;
    use crate::span::{Scope, SpanKind};

    #[test]
    fn client_urls() {
        assert_eq!(client_url("http", "127.0.0.1", Some(8080), "/a?b=1"), "http://127.0.0.1:8080/a?b=1");
        assert_eq!(client_url("https", "example.com", Some(443), "/"), "https://example.com/");
        assert_eq!(client_url("http", "example.com", Some(80), ""), "http://example.com/");
        assert_eq!(client_url("http", "::1", Some(81), "/x"), "http://[::1]:81/x");
        assert_eq!(client_url("http", "proxy", Some(3128), "http://u:p@target:9/x"), "http://REDACTED:REDACTED@target:9/x");
        assert_eq!(client_url("http", "h", None, "*"), "http://h/*");
        assert_eq!(client_url("http", "u:p@h", Some(8080), "/"), "http://REDACTED:REDACTED@h:8080/");
    }

    #[test]
    fn userinfo_and_origins() {
        assert_eq!(redact_userinfo("https://user:pw@h:1/p?q=a@b"), "https://REDACTED:REDACTED@h:1/p?q=a@b");
        assert_eq!(redact_userinfo("https://h/p?q=a@b"), "https://h/p?q=a@b");
        assert_eq!(url_origin("http://u:p@[::1]:8080/x"), Some(("http", "::1", Some(8080))));
        assert_eq!(url_origin("https://example.com?q"), Some(("https", "example.com", Some(443))));
        assert_eq!(url_origin("/relative"), None);
    }

    #[test]
    fn client_status_rules() {
        let new = || SpanRecord::start(String::new(), SpanKind::Client, Scope::fixed("t"), None, TraceId::random(), crate::span::Head::Sampled);
        let mut s = new();
        finish_client_span(&mut s, Some(404));
        assert_eq!(s.get(ERROR_TYPE), Some(&Value::Str("404".into())));
        assert!(matches!(s.status, Status::Error(_)));
        let mut s = new();
        finish_client_span(&mut s, Some(302));
        assert_eq!(s.status, Status::Unset);
        assert_eq!(client_span_name("GET"), "GET");
        assert_eq!(client_span_name("PURGE"), "HTTP");
        assert_eq!(protocol_from_number(11), Some("1.1"));
        assert_eq!(protocol_from_number(20), Some("2"));
    }
}
