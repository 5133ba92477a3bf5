//! Exporters: where finished batches and metric snapshots go. They run on the export thread only;
//! none of them knows Python exists.

pub mod console;
pub mod grpc;
pub mod http;
pub mod logs;
pub mod otlp;
#[cfg(test)]
pub mod otlp_logs;
pub mod otlp_metrics;
pub mod otlp_wire;
pub mod retry;
pub mod tls;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use crate::config::{Config, MetricsConfig, MetricsExporter, OtlpConfig, Protocol, Temporality, TracesExporter};
use crate::metrics::snapshot::Snapshot;
use crate::resource::Resource;
use crate::span::SpanRecord;

pub trait SpanExporter: Send {
    /// Send one batch. An `Err` carries a one-line reason (logged once per failure streak).
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String>;
    /// What this exporter sends to, for messages.
    fn target(&self) -> String;
}

/// OTLP over either transport.
pub enum Otlp {
    Http(http::HttpTransport),
    Grpc(grpc::GrpcTransport),
}

impl Otlp {
    pub fn new(c: &OtlpConfig) -> Self {
        match c.protocol {
            Protocol::HttpProtobuf => Otlp::Http(http::HttpTransport::new(c)),
            Protocol::Grpc => Otlp::Grpc(grpc::GrpcTransport::new(c)),
        }
    }

    pub fn export_metrics(&self, req: ExportMetricsServiceRequest) -> Result<(), String> {
        match self {
            Otlp::Http(t) => t.post(req.encode_to_vec()),
            Otlp::Grpc(t) => t.export_metrics(req),
        }
    }

    pub fn export_logs(&self, batch: &[crate::logs::LogRecord], resource: &Resource) -> Result<(), String> {
        let bytes = otlp_wire::encode_logs(batch, resource);
        match self {
            Otlp::Http(t) => t.post(bytes),
            Otlp::Grpc(t) => t.export_logs(bytes),
        }
    }

    pub fn target(&self) -> String {
        match self {
            Otlp::Http(t) => t.target(),
            Otlp::Grpc(t) => t.target(),
        }
    }
}

impl SpanExporter for Otlp {
    fn export(&mut self, batch: &[SpanRecord], resource: &Resource) -> Result<(), String> {
        let bytes = otlp_wire::encode_traces(batch, resource);
        match self {
            Otlp::Http(t) => t.post(bytes),
            Otlp::Grpc(t) => t.export_traces(bytes),
        }
    }

    fn target(&self) -> String {
        Otlp::target(self)
    }
}

/// The span exporters `OTEL_TRACES_EXPORTER` names, built lazily on the export thread (after any
/// fork).
pub fn build(config: &Config) -> Vec<Box<dyn SpanExporter>> {
    config
        .traces_exporters
        .iter()
        .map(|e| -> Box<dyn SpanExporter> {
            match e {
                TracesExporter::Console => Box::new(console::ConsoleExporter),
                TracesExporter::Otlp => Box::new(Otlp::new(&config.otlp)),
            }
        })
        .collect()
}

/// A metrics exporter (`OTEL_METRICS_EXPORTER`; Prometheus is served, not pushed, so not one of
/// these), with the snapshot its last successful export was made from (for deltas).
pub struct MetricSink {
    kind: MetricSinkKind,
    temporality: Temporality,
    previous: Option<Snapshot>,
}

enum MetricSinkKind {
    Otlp(Otlp),
    Console,
}

impl MetricSink {
    /// Encode `snapshot` in the configured temporality and send it. A delta is taken from the
    /// last snapshot this exporter delivered, so a failed export's counts go with the next one.
    pub fn export(&mut self, snapshot: Snapshot, resource: &Resource) -> Result<(), String> {
        let enc = otlp_metrics::Encoding { temporality: self.temporality, previous: self.previous.as_ref() };
        let req = otlp_metrics::encode_as(&snapshot, resource, &enc);
        let result = match &self.kind {
            MetricSinkKind::Otlp(o) => o.export_metrics(req),
            MetricSinkKind::Console => console::print_metrics(&req),
        };
        if result.is_ok() {
            self.previous = Some(snapshot);
        }
        result
    }

    pub fn target(&self) -> String {
        match &self.kind {
            MetricSinkKind::Otlp(o) => format!("{} (metrics)", o.target()),
            MetricSinkKind::Console => "console (metrics)".into(),
        }
    }
}

/// The pushing metric exporters `OTEL_METRICS_EXPORTER` names (OTLP, console), built on the
/// metrics export thread of the process that uses them.
pub fn build_metrics(config: &MetricsConfig) -> Vec<MetricSink> {
    config
        .exporters
        .iter()
        .filter_map(|e| match e {
            MetricsExporter::Otlp => Some(MetricSinkKind::Otlp(Otlp::new(&config.otlp))),
            MetricsExporter::Console => Some(MetricSinkKind::Console),
            MetricsExporter::Prometheus => None,
        })
        .map(|kind| MetricSink { kind, temporality: config.temporality, previous: None })
        .collect()
}
