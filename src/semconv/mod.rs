//! Semantic conventions: the rules that turn what a hook saw into span attributes, names and
//! status, one file per family (`http`, `db`; `sql` reads query text). Pure Rust: nothing here
//! touches Python. The attributes every family shares live here.

pub mod db;
pub mod http;
pub mod messaging;
pub mod rpc;
pub mod aws;
pub mod sql;

pub use http::*;

use crate::span::{Event, SpanRecord, Status, Value};

pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const ERROR_TYPE: &str = "error.type";

/// Describe an exception: its qualified type name, message and formatted traceback.
pub struct ExceptionInfo {
    pub type_name: String,
    pub message: String,
    pub stacktrace: String,
}

/// Record an exception as the spec's `exception` event, mark the span as failed with its type.
pub fn record_exception(span: &mut SpanRecord, e: ExceptionInfo, time_ns: u64) {
    span.status = Status::Error(if e.message.is_empty() { e.type_name.clone() } else { format!("{}: {}", e.type_name, e.message) });
    span.set(ERROR_TYPE, e.type_name.clone());
    span.events.push(Event {
        name: "exception".into(),
        time_ns,
        attributes: vec![
            ("exception.type".into(), Value::Str(e.type_name.into())),
            ("exception.message".into(), Value::Str(e.message.into())),
            ("exception.stacktrace".into(), Value::Str(e.stacktrace.into())),
        ],
        dropped_attributes: 0,
    });
}

