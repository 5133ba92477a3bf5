//! OTLP encoding of log records with the generated `opentelemetry-proto` types, grouped by
//! instrumentation scope (the Python logger's name), with the same resource as the spans. Tests
//! only: the exporter writes the same bytes directly (`otlp_wire::encode_logs`), and the tests
//! here compare the two byte for byte.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as PbLogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;

use super::otlp::{any_value as value_of, key_values};
use crate::logs::{Body, LogRecord};
use crate::resource::Resource;

pub fn encode_request(batch: &[LogRecord], resource: &Resource) -> ExportLogsServiceRequest {
    let mut scopes: Vec<(&str, Vec<PbLogRecord>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for rec in batch {
        let i = *index.entry(rec.scope.as_ref()).or_insert_with(|| {
            scopes.push((rec.scope.as_ref(), Vec::new()));
            scopes.len() - 1
        });
        scopes[i].1.push(encode_record(rec));
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(PbResource { attributes: key_values(&resource.attributes), ..Default::default() }),
            scope_logs: scopes
                .into_iter()
                .map(|(name, log_records)| ScopeLogs {
                    scope: Some(InstrumentationScope { name: name.to_string(), ..Default::default() }),
                    log_records,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        }],
    }
}

fn encode_record(r: &LogRecord) -> PbLogRecord {
    PbLogRecord {
        time_unix_nano: r.time_ns,
        observed_time_unix_nano: r.observed_ns,
        severity_number: r.severity_number as i32,
        severity_text: r.severity_text.to_string(),
        body: r.body.as_ref().map(body),
        attributes: {
            let mut kv = key_values(&r.attributes);
            kv.extend(r.code.attributes().map(|(k, v)| KeyValue { key: k.to_string(), value: Some(value_of(&v)), ..Default::default() }));
            kv
        },
        dropped_attributes_count: 0,
        flags: if r.span_id.is_some() { r.flags as u32 } else { 0 },
        trace_id: r.trace_id.map(|t| t.0.to_vec()).unwrap_or_default(),
        span_id: r.span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
        ..Default::default()
    }
}

fn body(b: &Body) -> AnyValue {
    let value = match b {
        Body::Str(s) => any_value::Value::StringValue(s.to_string()),
        Body::Int(i) => any_value::Value::IntValue(*i),
        Body::F64(f) => any_value::Value::DoubleValue(*f),
        Body::Bool(v) => any_value::Value::BoolValue(*v),
        Body::Bytes(v) => any_value::Value::BytesValue(v.clone()),
        Body::Array(items) => any_value::Value::ArrayValue(ArrayValue { values: items.iter().map(body).collect() }),
        Body::Map(entries) => any_value::Value::KvlistValue(KeyValueList {
            values: entries.iter().map(|(k, v)| KeyValue { key: k.clone(), value: Some(body(v)), ..Default::default() }).collect(),
        }),
    };
    AnyValue { value: Some(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{SpanId, TraceId};
    use crate::span::Value;
    use prost::Message;

    fn record(scope: &'static str, body: Body) -> LogRecord {
        LogRecord {
            time_ns: 1_700_000_000_000_000_000,
            observed_ns: 1_700_000_000_000_000_500,
            severity_number: 13,
            severity_text: "WARN".into(),
            body: Some(body),
            attributes: vec![("user.id".into(), Value::Int(42))],
            code: crate::logs::Code { file: Some("app.py".into()), function: None, line: Some(7) },
            trace_id: Some(TraceId([7; 16])),
            span_id: Some(SpanId([9; 8])),
            flags: 1,
            scope: scope.into(),
        }
    }

    #[test]
    fn the_wire_encoder_writes_the_upstream_bytes() {
        let resource = Resource { attributes: vec![("service.name".into(), "svc".into()), ("process.pid".into(), Value::Int(42))] };
        let mut outside = record("app.db", Body::Map(vec![("k".into(), Body::Array(vec![Body::Int(1), Body::Bool(true), Body::F64(0.5)]))]));
        outside.trace_id = None;
        outside.span_id = None;
        outside.severity_text = "".into();
        let mut bare = record("app", Body::Str(String::new()));
        bare.attributes.clear();
        bare.code = crate::logs::Code::default();
        bare.flags = 0;
        let mut none = record("", Body::Bytes(Vec::new()));
        none.body = None;
        none.severity_number = 0;
        let mut extras = record("app", Body::Str("x".repeat(300)));
        extras.attributes.push(("tags".into(), Value::StrArray(vec!["a".into(), "b".into()])));
        extras.attributes.push(("ok".into(), Value::Bool(true)));
        extras.code.function = Some("handler".into());
        extras.code.file = Some(crate::span::Key::Owned("/srv/app.py".into()));
        let batch = vec![record("app", Body::Str("hello".into())), outside, record("app", Body::Bytes(vec![1, 2])), bare, none, extras];
        for part in [&batch[..], &batch[1..2], &batch[..0]] {
            let ours = crate::export::otlp_wire::encode_logs(part, &resource);
            assert_eq!(ours, encode_request(part, &resource).encode_to_vec(), "byte for byte");
        }
        let many: Vec<LogRecord> = (0..500).map(|i| record(if i % 3 == 0 { "a" } else { "b" }, Body::Str(format!("record {i}")))).collect();
        assert_eq!(crate::export::otlp_wire::encode_logs(&many, &resource), encode_request(&many, &resource).encode_to_vec());
    }

    #[test]
    fn encodes_and_decodes_with_the_upstream_types() {
        let resource = Resource { attributes: vec![("service.name".into(), "svc".into())] };
        let mut outside = record("app.db", Body::Map(vec![("k".into(), Body::Array(vec![Body::Int(1), Body::Bool(true)]))]));
        outside.trace_id = None;
        outside.span_id = None;
        let batch = [record("app", Body::Str("hello".into())), outside, record("app", Body::Bytes(vec![1, 2]))];
        let bytes = encode_request(&batch, &resource).encode_to_vec();
        let back = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
        let rl = &back.resource_logs[0];
        assert_eq!(rl.resource.as_ref().unwrap().attributes[0].key, "service.name");
        assert_eq!(rl.scope_logs.len(), 2, "grouped by logger name");
        let app = &rl.scope_logs[0];
        assert_eq!(app.scope.as_ref().unwrap().name, "app");
        assert_eq!(app.log_records.len(), 2);
        let r = &app.log_records[0];
        assert_eq!(r.trace_id, vec![7; 16]);
        assert_eq!(r.span_id, vec![9; 8]);
        assert_eq!((r.severity_number, r.severity_text.as_str(), r.flags), (13, "WARN", 1));
        assert_eq!(r.body.as_ref().unwrap().value, Some(any_value::Value::StringValue("hello".into())));
        assert_eq!(r.time_unix_nano, 1_700_000_000_000_000_000);
        let keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["user.id", "code.file.path", "code.line.number"], "own attributes, then where it was logged");
        let db = &rl.scope_logs[1].log_records[0];
        assert!(db.trace_id.is_empty() && db.span_id.is_empty() && db.flags == 0);
        match &db.body.as_ref().unwrap().value {
            Some(any_value::Value::KvlistValue(kv)) => assert_eq!(kv.values[0].key, "k"),
            other => panic!("unexpected body {other:?}"),
        }
    }
}
