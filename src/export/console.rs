//! `OTEL_TRACES_EXPORTER=console`: one JSON object per span on stderr.
//! `OTEL_METRICS_EXPORTER=console`: one JSON object per metric per export, on stderr.

use std::io::Write;

use serde_json::{json, Map, Value as Json};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality};

use super::SpanExporter;
use crate::resource::Resource;
use crate::span::{Attributes, SpanRecord, Status, Value};

pub struct ConsoleExporter;

impl SpanExporter for ConsoleExporter {
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String> {
        let resource = attributes(&resource.attributes);
        let lines: Vec<Json> = batch.iter().map(|s| to_json(s, &resource)).collect();
        write_lines(&lines)
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

/// Print a metrics export: one line per metric, in the OTLP names (`name`, `unit`, `type`,
/// `aggregation_temporality`, `data_points` with their attributes and values), the resource and
/// scope on each line, as the span lines carry theirs.
pub fn print_metrics(req: &ExportMetricsServiceRequest) -> Result<(), String> {
    write_lines(&metrics_to_json(req))
}

/// One `write` per line: `Display` of a JSON value writes it piece by piece, and stderr is
/// unbuffered, so a line written that way could be cut by the application's own output to fd 2
/// (a log line, a traceback) -- seen as an unparsable span line under uvicorn.
fn write_lines(lines: &[Json]) -> Result<(), String> {
    let mut out = std::io::stderr().lock();
    let mut buf = String::new();
    for line in lines {
        buf.clear();
        buf.push_str(&line.to_string());
        buf.push('\n');
        out.write_all(buf.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn metrics_to_json(req: &ExportMetricsServiceRequest) -> Vec<Json> {
    let mut lines = Vec::new();
    for rm in &req.resource_metrics {
        let resource = rm.resource.as_ref().map_or(Json::Object(Map::new()), |r| key_values(&r.attributes));
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref().map_or(Json::Null, |s| json!({"name": s.name, "version": s.version}));
            for m in &sm.metrics {
                let temporality = |t: i32| AggregationTemporality::try_from(t).map_or("UNSPECIFIED", |t| match t {
                    AggregationTemporality::Delta => "DELTA",
                    AggregationTemporality::Cumulative => "CUMULATIVE",
                    AggregationTemporality::Unspecified => "UNSPECIFIED",
                });
                let (kind, temporality, monotonic, points) = match &m.data {
                    Some(metric::Data::Sum(s)) => (
                        "sum",
                        temporality(s.aggregation_temporality),
                        Some(s.is_monotonic),
                        s.data_points
                            .iter()
                            .map(|p| {
                                let value = match p.value {
                                    Some(number_data_point::Value::AsInt(i)) => json!(i),
                                    Some(number_data_point::Value::AsDouble(f)) => json!(f),
                                    None => Json::Null,
                                };
                                json!({"attributes": key_values(&p.attributes), "start_time_unix_nano": p.start_time_unix_nano, "time_unix_nano": p.time_unix_nano, "value": value})
                            })
                            .collect::<Vec<_>>(),
                    ),
                    Some(metric::Data::Histogram(h)) => (
                        "histogram",
                        temporality(h.aggregation_temporality),
                        None,
                        h.data_points
                            .iter()
                            .map(|p| {
                                json!({"attributes": key_values(&p.attributes), "start_time_unix_nano": p.start_time_unix_nano, "time_unix_nano": p.time_unix_nano,
                                       "count": p.count, "sum": p.sum, "bucket_counts": p.bucket_counts, "explicit_bounds": p.explicit_bounds})
                            })
                            .collect(),
                    ),
                    _ => continue, // no other kind is produced
                };
                let mut line = json!({
                    "name": m.name, "description": m.description, "unit": m.unit, "type": kind,
                    "aggregation_temporality": temporality, "data_points": points, "scope": scope, "resource": resource,
                });
                if let Some(monotonic) = monotonic {
                    line["is_monotonic"] = json!(monotonic);
                }
                lines.push(line);
            }
        }
    }
    lines
}

fn key_values(kvs: &[KeyValue]) -> Json {
    fn value(v: &AnyValue) -> Json {
        match &v.value {
            Some(any_value::Value::StringValue(s)) => json!(s),
            Some(any_value::Value::IntValue(i)) => json!(i),
            Some(any_value::Value::DoubleValue(f)) => json!(f),
            Some(any_value::Value::BoolValue(b)) => json!(b),
            Some(any_value::Value::ArrayValue(a)) => Json::Array(a.values.iter().map(value).collect()),
            Some(any_value::Value::KvlistValue(l)) => key_values(&l.values),
            Some(any_value::Value::BytesValue(b)) => json!(b),
            _ => Json::Null,
        }
    }
    Json::Object(kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, value))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::otlp_metrics;
    use crate::metrics::snapshot::{Histogram, Snapshot};
    use crate::resource::Resource;

    #[test]
    fn metrics_print_as_one_json_object_per_metric() {
        let labels = vec![("http.route".to_string(), "/".to_string())];
        let s = Snapshot {
            durations: vec![Histogram { labels, counts: vec![2; crate::metrics::DURATION_BOUNDS.len() + 1], sum: 0.5, count: 30 }],
            ..Default::default()
        };
        let lines = metrics_to_json(&otlp_metrics::encode(&s, &Resource::default()));
        let d = lines.iter().find(|l| l["name"] == "http.server.request.duration").expect("the duration histogram");
        assert_eq!(d["type"], "histogram");
        assert_eq!(d["aggregation_temporality"], "CUMULATIVE");
        assert_eq!(d["data_points"][0]["count"], 30);
        assert_eq!(d["data_points"][0]["attributes"]["http.route"], "/");
        let started = lines.iter().find(|l| l["name"] == "ferrotel.spans.started").unwrap();
        assert_eq!((started["type"].as_str(), started["is_monotonic"].as_bool()), (Some("sum"), Some(true)));
        assert_eq!(started["scope"]["name"], "ferrotel");
    }
}
