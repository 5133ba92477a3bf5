//! Logs: `OTEL_LOGS_EXPORTER`, the OTLP logs exporter (`OTEL_EXPORTER_OTLP_LOGS_*` over the
//! generic `OTEL_EXPORTER_OTLP_*`), the batch log record processor (`OTEL_BLRP_*`), and the
//! pure-Python agent's logging switches: `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`
//! (export Python log records) and `OTEL_PYTHON_LOG_CORRELATION` / `_FORMAT` / `_LEVEL` (apply
//! the upstream log format, as its logging instrumentation does).

use super::otel::{otlp, Signal};
use super::reader::Reader;
use super::{BatchConfig, OtlpConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogsExporter {
    Otlp,
    Console,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogsConfig {
    /// `OTEL_LOGS_EXPORTER`; empty for `none`.
    pub exporters: Vec<LogsExporter>,
    pub otlp: OtlpConfig,
    /// `OTEL_BLRP_*`: the specification's defaults are 1000 ms, 30000 ms, 2048, 512.
    pub batch: BatchConfig,
    /// `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`: Python log records are exported.
    pub auto_instrumentation: bool,
    /// `OTEL_PYTHON_LOG_CORRELATION=true`: `logging.basicConfig` with the upstream format.
    pub correlation_format: bool,
    /// `OTEL_PYTHON_LOG_FORMAT`: the format used instead of the upstream default.
    pub format: Option<String>,
    /// `OTEL_PYTHON_LOG_LEVEL` (`debug`, `info`, `warning`, `error`) as Python's number; the
    /// level `basicConfig` gets when the format is applied (upstream default: INFO).
    pub level: Option<i64>,
}

impl LogsConfig {
    /// Whether Python log records go to an exporter at all.
    pub fn export_enabled(&self) -> bool {
        self.auto_instrumentation && !self.exporters.is_empty()
    }
}

pub fn logs(r: &mut Reader<'_>) -> LogsConfig {
    let key = "OTEL_LOGS_EXPORTER";
    let mut exporters = Vec::new();
    match r.get(key) {
        None => exporters.push(LogsExporter::Otlp),
        Some(raw) => {
            for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
                match item.as_str() {
                    "otlp" => exporters.push(LogsExporter::Otlp),
                    "console" => exporters.push(LogsExporter::Console),
                    "none" => {
                        exporters.clear();
                        break;
                    }
                    other => r.warn(key, other, "nothing in its place"),
                }
            }
        }
    }
    exporters.dedup();
    let mut otlp = otlp(r, Signal::Logs);
    let batch = blrp(r);
    // The processor's export timeout bounds each export request too.
    otlp.timeout = otlp.timeout.min(batch.export_timeout.max(std::time::Duration::from_millis(1)));
    let auto_instrumentation = r.bool("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", false);
    let correlation_format = r.bool("OTEL_PYTHON_LOG_CORRELATION", false);
    let format = r.get("OTEL_PYTHON_LOG_FORMAT");
    let level = match r.get("OTEL_PYTHON_LOG_LEVEL").map(|v| v.to_ascii_lowercase()) {
        None => None,
        Some(v) => match v.as_str() {
            "debug" => Some(10),
            "info" => Some(20),
            "warning" | "warn" => Some(30),
            "error" => Some(40),
            _ => {
                r.warn("OTEL_PYTHON_LOG_LEVEL", &v, "info");
                None
            }
        },
    };
    LogsConfig { exporters, otlp, batch, auto_instrumentation, correlation_format, format, level }
}

fn blrp(r: &mut Reader<'_>) -> BatchConfig {
    let schedule_delay = r.millis(&["OTEL_BLRP_SCHEDULE_DELAY"], 1000);
    let export_timeout = r.millis(&["OTEL_BLRP_EXPORT_TIMEOUT"], 30_000);
    let max_queue_size = r.positive("OTEL_BLRP_MAX_QUEUE_SIZE", 2048);
    let batch_key = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE";
    let mut max_export_batch_size = r.positive(batch_key, 512);
    if max_export_batch_size > max_queue_size && r.get(batch_key).is_none() {
        max_export_batch_size = max_queue_size; // only the queue was made smaller: follow it quietly
    } else if max_export_batch_size > max_queue_size {
        r.warn(
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            &max_export_batch_size.to_string(),
            format!("{max_queue_size} (it must not exceed OTEL_BLRP_MAX_QUEUE_SIZE)"),
        );
        max_export_batch_size = max_queue_size;
    }
    BatchConfig { schedule_delay, export_timeout, max_queue_size, max_export_batch_size }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Protocol};
    use super::*;
    use std::time::Duration;


    #[test]
    fn defaults_follow_the_specification() {
        let c = Config::from_pairs(&[]);
        let l = &c.logs;
        assert_eq!(l.exporters, vec![LogsExporter::Otlp]);
        assert!(!l.auto_instrumentation && !l.export_enabled(), "log export is opt-in, as upstream");
        assert!(!l.correlation_format);
        assert_eq!(l.otlp.endpoint, "http://localhost:4318/v1/logs");
        assert_eq!(
            l.batch,
            BatchConfig {
                schedule_delay: Duration::from_millis(1000),
                export_timeout: Duration::from_millis(30_000),
                max_queue_size: 2048,
                max_export_batch_size: 512,
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn variables_are_read() {
        let c = Config::from_pairs(&[
            ("OTEL_LOGS_EXPORTER", "console, otlp"),
            ("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "TRUE"),
            ("OTEL_PYTHON_LOG_CORRELATION", "true"),
            ("OTEL_PYTHON_LOG_FORMAT", "%(message)s %(otelTraceID)s"),
            ("OTEL_PYTHON_LOG_LEVEL", "debug"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-logs=1"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "2000"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "1500"),
        ]);
        let l = &c.logs;
        assert_eq!(l.exporters, vec![LogsExporter::Console, LogsExporter::Otlp]);
        assert!(l.export_enabled() && l.correlation_format);
        assert_eq!(l.format.as_deref(), Some("%(message)s %(otelTraceID)s"));
        assert_eq!(l.level, Some(10));
        assert_eq!(l.otlp.protocol, Protocol::Grpc);
        assert_eq!(l.otlp.endpoint, "http://collector:4317");
        assert_eq!(l.otlp.headers, vec![("x-logs".to_string(), "1".to_string())]);
        assert_eq!(l.otlp.timeout, Duration::from_millis(1500), "the processor's export timeout caps the request");
        assert_eq!(l.batch.schedule_delay, Duration::from_millis(250));
        assert_eq!((l.batch.max_queue_size, l.batch.max_export_batch_size), (100, 10));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn logs_endpoint_rules() {
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")]);
        assert_eq!(c.logs.otlp.endpoint, "http://c:4318/v1/logs");
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://c:9999/custom")]);
        assert_eq!(c.logs.otlp.endpoint, "http://c:9999/custom");
    }

    #[test]
    fn bad_values_warn_and_use_defaults() {
        let c = Config::from_pairs(&[
            ("OTEL_LOGS_EXPORTER", "otlp,zipkin"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "4096"),
            ("OTEL_PYTHON_LOG_LEVEL", "loud"),
            ("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "yes"),
        ]);
        let l = &c.logs;
        assert_eq!(l.exporters, vec![LogsExporter::Otlp]);
        assert_eq!(l.batch.max_queue_size, 2048);
        assert_eq!(l.batch.max_export_batch_size, 2048);
        assert_eq!(l.level, None);
        assert!(!l.auto_instrumentation);
        for var in ["OTEL_LOGS_EXPORTER", "OTEL_BLRP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "OTEL_PYTHON_LOG_LEVEL", "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"] {
            assert!(c.warnings.iter().any(|w| w.contains(var)), "no warning for {var}: {:?}", c.warnings);
        }
        assert!(Config::from_pairs(&[("OTEL_LOGS_EXPORTER", "none"), ("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "true")]).logs.exporters.is_empty());
        let small = Config::from_pairs(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "16")]);
        assert_eq!(small.logs.batch.max_export_batch_size, 16, "the default batch follows a smaller queue");
        assert!(small.warnings.is_empty(), "{:?}", small.warnings);
    }
}
