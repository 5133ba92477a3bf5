//! `OTEL_TRACES_EXPORTER=console`: one JSON object per span on stderr.

use std::io::Write;

use serde_json::{json, Map, Value as Json};

use super::SpanExporter;
use crate::resource::Resource;
use crate::span::{Attributes, SpanRecord, Status, Value};

pub struct ConsoleExporter;

impl SpanExporter for ConsoleExporter {
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String> {
        let resource = attributes(&resource.attributes);
        let mut out = std::io::stderr().lock();
        for s in batch {
            let line = to_json(s, &resource);
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn target(&self) -> String {
        "console".into()
    }
}

pub fn to_json(s: &SpanRecord, resource: &Json) -> Json {
    let (status, description) = match &s.status {
        Status::Unset => ("UNSET", ""),
        Status::Ok => ("OK", ""),
        Status::Error(m) => ("ERROR", m.as_str()),
    };
    json!({
        "name": s.name,
        "kind": format!("{:?}", s.kind).to_uppercase(),
        "trace_id": s.trace_id.to_string(),
        "span_id": s.span_id.to_string(),
        "parent_span_id": if s.parent_span_id.is_valid() { Json::String(s.parent_span_id.to_string()) } else { Json::Null },
        "start_time_unix_nano": s.start_ns,
        "end_time_unix_nano": s.end_ns,
        "duration_ms": (s.end_ns.saturating_sub(s.start_ns)) as f64 / 1e6,
        "status": { "code": status, "description": description },
        "attributes": attributes(&s.attributes),
        "links": s.links.iter().map(|l| json!({"trace_id": l.trace_id.to_string(), "span_id": l.span_id.to_string(), "attributes": attributes(&l.attributes)})).collect::<Vec<_>>(),
        "events": s.events.iter().map(|e| json!({"name": e.name, "time_unix_nano": e.time_ns, "attributes": attributes(&e.attributes)})).collect::<Vec<_>>(),
        "scope": { "name": s.scope.name, "version": s.scope.version },
        "resource": resource,
    })
}

pub(crate) fn attributes(a: &Attributes) -> Json {
    let mut m = Map::new();
    for (k, v) in a {
        let v = match v {
            Value::Str(s) => json!(s),
            Value::Int(i) => json!(i),
            Value::F64(f) => json!(f),
            Value::Bool(b) => json!(b),
            Value::StrArray(a) => json!(a),
            Value::BoolArray(a) => json!(a),
            Value::IntArray(a) => json!(a),
            Value::F64Array(a) => json!(a),
        };
        m.insert(k.to_string(), v);
    }
    Json::Object(m)
}
