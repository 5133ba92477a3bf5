//! Configuration: every `OTEL_*` / `FERROTEL_*` setting the agent honours, read once into one
//! typed struct. Nothing else in the crate reads the environment. Sources, strongest first: the
//! environment, the TOML file named by `FERROTEL_CONFIG`, the specification's defaults. A bad
//! value never fails: it produces one warning line (collected in `Config::warnings`, printed once
//! by the caller) and the default.

mod ferrotel;
pub use ferrotel::plain_header_name;
mod file;
mod instrumentation;
pub mod limits;
mod logs;
mod otel;
mod reader;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::context::propagation::Propagator;
pub use instrumentation::InstrumentationConfig;
pub use logs::{LogsConfig, LogsExporter};
pub use reader::percent_decode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    Grpc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracesExporter {
    Otlp,
    Console,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsExporter {
    Otlp,
    Prometheus,
    /// One JSON object per metric export on stderr.
    Console,
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (the OTLP metric exporter's spec): which
/// instrument kinds are exported as deltas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    /// Every instrument cumulative (the default).
    Cumulative,
    /// Counter, asynchronous counter and histogram: delta; up-down counters: cumulative.
    Delta,
    /// Counter and histogram: delta; asynchronous counter and up-down counters: cumulative.
    LowMemory,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// One OTLP signal's exporter settings (traces and metrics each have their own).
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    pub protocol: Protocol,
    /// For HTTP the full URL of the signal's resource; for gRPC the server's URL.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub compression: Compression,
    /// TLS material for an `https` endpoint (unused for `http`).
    pub tls: TlsFiles,
}

/// The PEM files for TLS to the collector (`OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`,
/// `..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY`). Paths only: the files are read when an `https`
/// exporter is built, on the export thread of the process that uses it (never at import, never
/// before a fork), so a bad file costs the export, not the start-up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsFiles {
    /// The CA certificates to trust; `None`: the system's trust store.
    pub ca: Option<PemFile>,
    /// The mTLS client certificate (chain) and its private key: both or neither.
    pub client: Option<(PemFile, PemFile)>,
}

/// A PEM file and the variable that named it (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct PemFile {
    pub var: String,
    pub path: std::path::PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchConfig {
    pub schedule_delay: Duration,
    pub export_timeout: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// Empty: no metrics are exported (and none are computed).
    pub exporters: Vec<MetricsExporter>,
    pub interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT` (also caps `otlp.timeout`).
    pub export_timeout: Duration,
    pub temporality: Temporality,
    pub otlp: OtlpConfig,
    pub prometheus_host: String,
    pub prometheus_port: u16,
}

/// The span processing chain's settings (`FERROTEL_*`, plus the spec's header capture lists).
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessingConfig {
    /// Added to every span.
    pub span_attributes: Vec<(String, String)>,
    pub slow_threshold: Duration,
    /// Per-route thresholds: (route or path glob, threshold), first match wins.
    pub slow_routes: Vec<(String, Duration)>,
    /// Spans whose route (or path, when unrouted) matches one of these globs are not exported.
    pub filter_routes: Vec<String>,
    pub filter_methods: Vec<String>,
    /// Spans with attribute `k` equal to `v` are not exported.
    pub filter_attributes: Vec<(String, String)>,
    /// Query-string keys whose values are masked (case-insensitive).
    pub redact_query_keys: Vec<String>,
    /// Captured headers whose values are masked (case-insensitive).
    pub redact_headers: Vec<String>,
    /// Header names captured on server spans as `http.request.header.<name>` /
    /// `http.response.header.<name>`: plain names lower-cased, or regular expressions (matched
    /// whole and case-insensitively, as upstream).
    pub capture_request_headers: Vec<String>,
    pub capture_response_headers: Vec<String>,
    /// The same for the HTTP client hooks' spans (`..._CLIENT_REQUEST` / `_CLIENT_RESPONSE`).
    pub capture_client_request_headers: Vec<String>,
    pub capture_client_response_headers: Vec<String>,
    /// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`: captured headers whose names
    /// these regular expressions find (searched, case-insensitively) are recorded as `[REDACTED]`.
    pub sanitize_headers: Vec<String>,
    /// With a ratio sampler, still export local roots that end in error or are slow.
    pub keep_errors_and_slow: bool,
    /// Database spans: their own slow threshold (`FERROTEL_DB_SLOW_THRESHOLD_MS`).
    pub db_slow_threshold: Duration,
    /// The longest sanitised `db.query.text` kept, in bytes (`FERROTEL_DB_QUERY_TEXT_MAX_LENGTH`);
    /// 0: no query text at all (`FERROTEL_DB_QUERY_TEXT=false`).
    pub db_query_max_len: usize,
    /// Append a `traceparent` comment to SQL statements (sqlcommenter; `FERROTEL_DB_SQLCOMMENTER`).
    pub db_sqlcommenter: bool,
    /// Celery: the process span starts its own trace and only links to the message's creation
    /// context (`FERROTEL_CELERY_LINK_ONLY`; default false: it is that context's child).
    pub celery_link_only: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub sdk_disabled: bool,
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order.
    pub resource_attributes: Vec<(String, String)>,
    /// Empty: no traces are exported (`none`).
    pub traces_exporters: Vec<TracesExporter>,
    pub sampler: SamplerConfig,
    pub propagators: Vec<Propagator>,
    pub otlp: OtlpConfig,
    pub batch: BatchConfig,
    pub metrics: MetricsConfig,
    pub processing: ProcessingConfig,
    /// `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` and the client excluded-URL lists.
    pub instrumentation: InstrumentationConfig,
    /// `OTEL_LOGS_EXPORTER`, `OTEL_EXPORTER_OTLP_LOGS_*`, `OTEL_BLRP_*` and the Python logging switches.
    pub logs: LogsConfig,
    /// The specification's attribute/event/link limits.
    pub limits: limits::Limits,
    /// `FERROTEL_TEST_FAULT`: inject a fault into the hooks (tests of fail-open behaviour only).
    pub test_fault: Option<TestFault>,
    /// One line per bad value, naming the variable and the default used.
    pub warnings: Vec<String>,
}

/// Where `FERROTEL_TEST_FAULT` makes the agent panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestFault {
    /// In the request hook, before the app runs.
    Panic,
    /// In the `start_response` wrapper.
    StartResponse,
    /// In the response-body wrapper.
    Body,
    /// In the span processing chain, on the export thread (the first span of each process).
    ProcessorPanic,
}

impl Config {
    /// The process environment, over the `FERROTEL_CONFIG` file if one is named.
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var(k).ok();
        match env("FERROTEL_CONFIG").filter(|p| !p.trim().is_empty()) {
            None => Self::from_lookup(env),
            Some(path) => {
                let (file, file_warnings) = file::load(path.trim());
                let mut c = Self::from_lookup(|k| env(k).filter(|v| !v.trim().is_empty()).or_else(|| file.get(k).cloned()));
                c.warnings.splice(0..0, file_warnings);
                c
            }
        }
    }

    /// From `(variable, value)` pairs: the tests' configuration source.
    #[cfg(test)]
    pub(crate) fn from_pairs(vars: &[(&str, &str)]) -> Self {
        Self::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    /// Every variable the configuration reads: what `docs/compliance.md` is checked against
    /// (`_native.config_variables()`). The names asked for with an empty environment, and with
    /// the settings that make other reads depend on them (the ratio sampler reads its argument).
    pub fn variables() -> Vec<String> {
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        for probe in [None, Some(("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"))] {
            let _ = Self::from_lookup(|k| {
                let mut a = asked.borrow_mut();
                if !a.iter().any(|x| x == k) {
                    a.push(k.to_string());
                }
                probe.filter(|(n, _)| *n == k).map(|(_, v)| v.to_string())
            });
        }
        let mut names = asked.into_inner();
        names.push("FERROTEL_CONFIG".to_string()); // read by from_env before the rest
        names.sort();
        names.dedup();
        names
    }

    /// Build from any variable source (tests pass a map). Empty values count as unset, as the
    /// specification says.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut r = reader::Reader { lookup: &lookup, warnings: Vec::new() };
        let sdk_disabled = r.bool("OTEL_SDK_DISABLED", false);
        let service_name = r.get("OTEL_SERVICE_NAME");
        let resource_attributes = otel::resource_attributes(&mut r);
        let traces_exporters = otel::traces_exporters(&mut r);
        let sampler = otel::sampler(&mut r);
        let propagators = otel::propagators(&mut r);
        let mut otlp = otel::otlp(&mut r, otel::Signal::Traces);
        let batch = otel::batch(&mut r);
        // The processor's export timeout bounds each export (and its retries) too.
        otlp.timeout = otlp.timeout.min(batch.export_timeout.max(Duration::from_millis(1)));
        let metrics = otel::metrics(&mut r);
        let processing = ferrotel::processing(&mut r);
        let instrumentation = instrumentation::instrumentation(&mut r);
        let logs = logs::logs(&mut r);
        let limits = limits::limits(&mut r);
        let test_fault = ferrotel::test_fault(&mut r);
        // Generic variables feed several signals: say each problem once.
        let mut warnings: Vec<String> = Vec::new();
        for w in r.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        Config {
            sdk_disabled,
            service_name,
            resource_attributes,
            traces_exporters,
            sampler,
            propagators,
            otlp,
            batch,
            metrics,
            processing,
            instrumentation,
            logs,
            limits,
            test_fault,
            warnings,
        }
    }
}
