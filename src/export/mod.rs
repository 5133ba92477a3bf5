//! Exporters: where finished batches go. They run on the export thread only; none of them knows
//! Python exists.

pub mod console;
pub mod otlp;
pub mod otlp_grpc;
pub mod otlp_http;

use crate::config::{Config, Protocol, TracesExporter};
use crate::resource::Resource;
use crate::span::SpanRecord;

pub trait SpanExporter: Send {
    /// Send one batch. An `Err` carries a one-line reason (logged once per failure streak).
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String>;
    /// What this exporter sends to, for messages.
    fn target(&self) -> String;
}

/// The exporters `OTEL_TRACES_EXPORTER` names, built lazily on the export thread (after any fork).
pub fn build(config: &Config) -> Vec<Box<dyn SpanExporter>> {
    config
        .traces_exporters
        .iter()
        .map(|e| -> Box<dyn SpanExporter> {
            match e {
                TracesExporter::Console => Box::new(console::ConsoleExporter),
                TracesExporter::Otlp => match config.otlp.protocol {
                    Protocol::HttpProtobuf => Box::new(otlp_http::HttpExporter::new(&config.otlp)),
                    Protocol::Grpc => Box::new(otlp_grpc::GrpcExporter::new(&config.otlp)),
                },
            }
        })
        .collect()
}
