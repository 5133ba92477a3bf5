//! Log exporters (`OTEL_LOGS_EXPORTER`): OTLP over either transport, or one JSON object per log
//! record on stderr. Built on the export thread, like the span exporters.

use std::io::Write;

use serde_json::{json, Value as Json};

use super::console;
use super::Otlp;
use crate::config::{LogsConfig, LogsExporter};
use crate::logs::{Body, LogRecord};
use crate::resource::Resource;

pub trait LogExporter: Send {
    /// Send one batch. An `Err` carries a one-line reason (logged once per failure streak).
    fn export(&mut self, batch: &[LogRecord], resource: &Resource) -> Result<(), String>;
    fn target(&self) -> String;
}

impl LogExporter for Otlp {
    fn export(&mut self, batch: &[LogRecord], resource: &Resource) -> Result<(), String> {
        self.export_logs(batch, resource)
    }

    fn target(&self) -> String {
        Otlp::target(self)
    }
}

pub struct ConsoleLogExporter;

impl LogExporter for ConsoleLogExporter {
    fn export(&mut self, batch: &[LogRecord], resource: &Resource) -> Result<(), String> {
        let resource = console::attributes(&resource.attributes);
        let mut out = std::io::stderr().lock();
        for r in batch {
            writeln!(out, "{}", to_json(r, &resource)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn target(&self) -> String {
        "console".into()
    }
}

pub fn to_json(r: &LogRecord, resource: &Json) -> Json {
    json!({
        "body": r.body.as_ref().map_or(Json::Null, body),
        "severity_number": r.severity_number,
        "severity_text": r.severity_text,
        "time_unix_nano": r.time_ns,
        "observed_time_unix_nano": r.observed_ns,
        "trace_id": r.trace_id.map(|t| t.to_string()),
        "span_id": r.span_id.map(|s| s.to_string()),
        "trace_flags": r.flags,
        "attributes": console::attributes(&r.all_attributes()),
        "scope": { "name": r.scope },
        "resource": resource,
    })
}

fn body(b: &Body) -> Json {
    match b {
        Body::Str(s) => json!(s.as_str()),
        Body::Int(i) => json!(i),
        Body::F64(f) => json!(f),
        Body::Bool(v) => json!(v),
        Body::Bytes(v) => json!(v),
        Body::Array(items) => Json::Array(items.iter().map(body).collect()),
        Body::Map(entries) => Json::Object(entries.iter().map(|(k, v)| (k.clone(), body(v))).collect()),
    }
}

/// The log exporters `OTEL_LOGS_EXPORTER` names.
pub fn build(config: &LogsConfig) -> Vec<Box<dyn LogExporter>> {
    config
        .exporters
        .iter()
        .map(|e| -> Box<dyn LogExporter> {
            match e {
                LogsExporter::Console => Box::new(ConsoleLogExporter),
                LogsExporter::Otlp => Box::new(Otlp::new(&config.otlp)),
            }
        })
        .collect()
}
