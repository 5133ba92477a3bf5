//! OTLP encoding: span records to the upstream protobuf messages (`opentelemetry-proto`).

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status as PbStatus};

use crate::resource::Resource;
use crate::span::{Attributes, Scope, SpanKind, SpanRecord, Status, Value};

/// Span flags bits from the OTLP proto: the parent's remoteness is known, and it is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

pub fn encode_request(batch: &[SpanRecord], resource: &Resource) -> ExportTraceServiceRequest {
    let mut scopes: Vec<(&Scope, Vec<Span>)> = Vec::new();
    let mut index: HashMap<&Scope, usize> = HashMap::new();
    for rec in batch {
        let i = *index.entry(&rec.scope).or_insert_with(|| {
            scopes.push((&rec.scope, Vec::new()));
            scopes.len() - 1
        });
        scopes[i].1.push(encode_span(rec));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PbResource { attributes: key_values(&resource.attributes), ..Default::default() }),
            scope_spans: scopes
                .into_iter()
                .map(|(scope, spans)| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: scope.name.to_string(),
                        version: scope.version.as_deref().unwrap_or("").to_string(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        }],
    }
}

fn encode_span(r: &SpanRecord) -> Span {
    let kind = match r.kind {
        SpanKind::Internal => span::SpanKind::Internal,
        SpanKind::Server => span::SpanKind::Server,
        SpanKind::Client => span::SpanKind::Client,
        SpanKind::Producer => span::SpanKind::Producer,
        SpanKind::Consumer => span::SpanKind::Consumer,
    };
    let (code, message) = match &r.status {
        Status::Unset => (status::StatusCode::Unset, String::new()),
        Status::Ok => (status::StatusCode::Ok, String::new()),
        Status::Error(m) => (status::StatusCode::Error, m.clone()),
    };
    let has_parent = r.parent_span_id.is_valid();
    Span {
        trace_id: r.trace_id.0.to_vec(),
        span_id: r.span_id.0.to_vec(),
        trace_state: r.trace_state.clone().unwrap_or_default(),
        parent_span_id: if has_parent { r.parent_span_id.0.to_vec() } else { Vec::new() },
        flags: r.flags as u32 | HAS_IS_REMOTE | if has_parent && r.parent_remote { IS_REMOTE } else { 0 },
        name: r.name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: r.start_ns,
        end_time_unix_nano: r.end_ns,
        attributes: key_values(&r.attributes),
        events: r
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_ns,
                name: e.name.to_string(),
                attributes: key_values(&e.attributes),
                dropped_attributes_count: e.dropped_attributes,
            })
            .collect(),
        links: r
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                trace_state: l.trace_state.clone().unwrap_or_default(),
                attributes: key_values(&l.attributes),
                dropped_attributes_count: l.dropped_attributes,
                flags: l.flags as u32 | HAS_IS_REMOTE,
                ..Default::default()
            })
            .collect(),
        dropped_attributes_count: r.dropped.attributes,
        dropped_events_count: r.dropped.events,
        dropped_links_count: r.dropped.links,
        status: Some(PbStatus { message, code: code as i32 }),
        ..Default::default()
    }
}

fn array(items: impl Iterator<Item = any_value::Value>) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue { values: items.map(|v| AnyValue { value: Some(v) }).collect() })
}

pub fn key_values(attrs: &Attributes) -> Vec<KeyValue> {
    attrs.iter().map(|(k, v)| KeyValue { key: k.to_string(), value: Some(any_value(v)), ..Default::default() }).collect()
}

pub(crate) fn any_value(v: &Value) -> AnyValue {
    let value = match v {
        Value::Str(s) => any_value::Value::StringValue(s.to_string()),
        Value::Int(i) => any_value::Value::IntValue(*i),
        Value::F64(f) => any_value::Value::DoubleValue(*f),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::StrArray(a) => array(a.iter().map(|s| any_value::Value::StringValue(s.clone()))),
        Value::BoolArray(a) => array(a.iter().map(|b| any_value::Value::BoolValue(*b))),
        Value::IntArray(a) => array(a.iter().map(|i| any_value::Value::IntValue(*i))),
        Value::F64Array(a) => array(a.iter().map(|f| any_value::Value::DoubleValue(*f))),
    };
    AnyValue { value: Some(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{SpanContext, SpanId, TraceId};
    use prost::Message;

    #[test]
    fn encodes_and_decodes_with_the_upstream_types() {
        let parent = SpanContext { trace_id: TraceId::random(), span_id: SpanId::random(), flags: 1, trace_state: Some("a=1".into()), remote: true };
        let mut rec = SpanRecord::start("GET /x", SpanKind::Server, Scope::fixed("ferrotel.test"), Some(&parent), parent.trace_id, crate::span::Head::Sampled);
        rec.set("http.response.status_code", 200i64);
        rec.status = Status::Error("boom".into());
        rec.end_ns = rec.start_ns + 5;
        let resource = Resource { attributes: vec![("service.name".into(), "svc".into())] };
        let bytes = encode_request(&[rec.clone(), rec], &resource).encode_to_vec();
        let back = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let rs = &back.resource_spans[0];
        assert_eq!(rs.scope_spans.len(), 1, "one scope group");
        let s = &rs.scope_spans[0].spans[0];
        assert_eq!(s.trace_id, parent.trace_id.0.to_vec());
        assert_eq!(s.parent_span_id, parent.span_id.0.to_vec());
        assert_eq!(s.flags, 1 | HAS_IS_REMOTE | IS_REMOTE);
        assert_eq!(s.trace_state, "a=1");
        assert_eq!(s.kind, span::SpanKind::Server as i32);
        assert_eq!(s.status.as_ref().unwrap().code, status::StatusCode::Error as i32);
        assert_eq!(s.attributes[0].value.as_ref().unwrap().value, Some(any_value::Value::IntValue(200)));
    }
}
