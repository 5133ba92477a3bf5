//! RPC semantic conventions (semantic-conventions v1.44.0, `model/rpc/`, release candidate):
//! gRPC spans. Pure Rust: the hooks (`hooks::rpc`) pass what they saw as text.
//!
//! - `rpc.system.name` = `grpc`, set when the span starts;
//! - `rpc.method` = the fully-qualified method (`package.Service/Method`, the call's path without
//!   its leading `/`); a server span whose method the server does not implement gets `_OTHER`
//!   and keeps the name in `rpc.method_original`;
//! - span name: `{rpc.method}`, or `grpc` when the method is `_OTHER`;
//! - `rpc.response.status_code`: the status code's name (`OK`, `NOT_FOUND`); on a client span
//!   every code but `OK` is an error, on a server span only `UNKNOWN`, `DEADLINE_EXCEEDED`,
//!   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` are; an error sets status ERROR
//!   and `error.type` to the code (unless an exception already named its type);
//! - `server.address` / `server.port`: on a client span from the channel's target string (as the
//!   gRPC name-resolution syntax reads), on a server span from the `:authority` the client used.

use super::{split_host, ERROR_TYPE};
use crate::span::{SpanKind, SpanRecord, Status, Text};

pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
pub const RPC_METHOD: &str = "rpc.method";
pub const RPC_METHOD_ORIGINAL: &str = "rpc.method_original";
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
pub const GRPC: &str = "grpc";
pub const OTHER: &str = "_OTHER";

/// gRPC status codes by number (grpc/doc/statuscodes.md).
pub const GRPC_CODES: [&str; 17] = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code's name as a static string (None for anything that is not a gRPC code name).
pub fn grpc_code(name: &str) -> Option<&'static str> {
    GRPC_CODES.iter().find(|c| **c == name).copied()
}

/// Whether `code` makes a span of this kind an error.
pub fn grpc_is_error(kind: SpanKind, code: &str) -> bool {
    match kind {
        SpanKind::Server => matches!(code, "UNKNOWN" | "DEADLINE_EXCEEDED" | "UNIMPLEMENTED" | "INTERNAL" | "UNAVAILABLE" | "DATA_LOSS"),
        _ => code != "OK",
    }
}

/// `package.Service/Method` from a call's path (`/package.Service/Method`).
pub fn grpc_method(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path)
}

/// `server.address` and `server.port` from a channel target (gRPC name resolution):
/// `host:port`, `dns:[//authority/]host[:port]`, `ipv4:`/`ipv6:` with one address, `[v6]:port`;
/// a Unix socket gives its path; anything else (several addresses, other schemes) the whole
/// target and no port.
pub fn grpc_target(target: &str) -> (Text, Option<i64>) {
    let hostport = |s: &str| {
        let (h, p) = split_host(s);
        (Text::from(h), p.map(i64::from))
    };
    if let Some(rest) = target.strip_prefix("dns:") {
        let rest = match rest.strip_prefix("//") {
            Some(r) => r.split_once('/').map_or(r, |(_, name)| name),
            None => rest,
        };
        return hostport(rest);
    }
    if let Some(path) = target.strip_prefix("unix://").or_else(|| target.strip_prefix("unix:")) {
        return (Text::from(path), None);
    }
    if let Some(addr) = target.strip_prefix("ipv4:").or_else(|| target.strip_prefix("ipv6:")) {
        if !addr.contains(',') {
            return hostport(addr);
        }
        return (Text::from(target), None);
    }
    if target.contains("://") || target.contains(',') || target.is_empty() {
        return (Text::from(target), None);
    }
    hostport(target)
}

/// Close a gRPC span with its status code (`None`: the call ended without one, e.g. an
/// exception the library raised before any status).
pub fn finish_grpc_span(span: &mut SpanRecord, code: Option<&'static str>) {
    if let Some(code) = code {
        span.set(RPC_RESPONSE_STATUS_CODE, Text::const_new(code));
        if grpc_is_error(span.kind, code) {
            if span.get(ERROR_TYPE).is_none() {
                span.set(ERROR_TYPE, Text::const_new(code));
            }
            if matches!(span.status, Status::Unset) {
                span.status = Status::Error(String::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceId;
    use crate::span::{Head, Scope, Value};

    #[test]
    fn targets() {
        assert_eq!(grpc_target("grpc.io:50051"), (Text::from("grpc.io"), Some(50051)));
        assert_eq!(grpc_target("dns://1.2.3.4/grpc.io:50051"), (Text::from("grpc.io"), Some(50051)));
        assert_eq!(grpc_target("dns:grpc.io:443"), (Text::from("grpc.io"), Some(443)));
        assert_eq!(grpc_target("unix:///run/containerd/containerd.sock"), (Text::from("/run/containerd/containerd.sock"), None));
        assert_eq!(grpc_target("zk://zookeeper:2181/my-server"), (Text::from("zk://zookeeper:2181/my-server"), None));
        let many = "ipv4:198.51.100.123:50051,198.51.100.124:50051";
        assert_eq!(grpc_target(many), (Text::from(many), None));
        assert_eq!(grpc_target("ipv4:127.0.0.1:9000"), (Text::from("127.0.0.1"), Some(9000)));
        assert_eq!(grpc_target("[::1]:50051"), (Text::from("::1"), Some(50051)));
        assert_eq!(grpc_target("localhost"), (Text::from("localhost"), None));
    }

    #[test]
    fn error_rules_differ_by_side() {
        let span = |kind| SpanRecord::start("x", kind, Scope::fixed("t"), None, TraceId::random(), Head::Sampled);
        let mut c = span(SpanKind::Client);
        finish_grpc_span(&mut c, Some("NOT_FOUND"));
        assert!(matches!(c.status, Status::Error(_)));
        assert_eq!(c.get(ERROR_TYPE), Some(&Value::Str("NOT_FOUND".into())));
        let mut s = span(SpanKind::Server);
        finish_grpc_span(&mut s, Some("NOT_FOUND"));
        assert_eq!(s.status, Status::Unset);
        assert!(s.get(ERROR_TYPE).is_none());
        let mut s = span(SpanKind::Server);
        finish_grpc_span(&mut s, Some("INTERNAL"));
        assert!(matches!(s.status, Status::Error(_)));
        assert_eq!(s.get(RPC_RESPONSE_STATUS_CODE), Some(&Value::Str("INTERNAL".into())));
        let mut ok = span(SpanKind::Client);
        finish_grpc_span(&mut ok, Some("OK"));
        assert_eq!(ok.status, Status::Unset);
        assert_eq!(grpc_method("/pkg.Svc/Do"), "pkg.Svc/Do");
    }
}
