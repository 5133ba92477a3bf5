//! The specification's variables (`OTEL_*`): exporters, sampler, propagators, OTLP, batching,
//! metrics, resource.

use super::reader::{percent_decode, Reader};
use super::*;

pub fn resource_attributes(r: &mut Reader<'_>) -> Vec<(String, String)> {
    let key = "OTEL_RESOURCE_ATTRIBUTES";
    let Some(raw) = r.get(key) else { return Vec::new() };
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let decoded = pair
            .split_once('=')
            .and_then(|(k, v)| Some((percent_decode(k.trim())?, percent_decode(v.trim())?)))
            .filter(|(k, _)| !k.is_empty());
        match decoded {
            Some(kv) => out.push(kv),
            None => {
                // The specification: a decoding error discards the whole value.
                r.warn(key, &raw, "no resource attributes from it");
                return Vec::new();
            }
        }
    }
    out
}

pub fn traces_exporters(r: &mut Reader<'_>) -> Vec<TracesExporter> {
    let key = "OTEL_TRACES_EXPORTER";
    let Some(raw) = r.get(key) else { return vec![TracesExporter::Otlp] };
    let mut out = Vec::new();
    for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        match item.as_str() {
            "otlp" => out.push(TracesExporter::Otlp),
            "console" => out.push(TracesExporter::Console),
            "none" => return Vec::new(),
            other => r.warn(key, other, "otlp in its place"),
        }
    }
    if out.is_empty() {
        out.push(TracesExporter::Otlp);
    }
    out.dedup();
    out
}

pub fn sampler(r: &mut Reader<'_>) -> SamplerConfig {
    let default = SamplerConfig::ParentBasedAlwaysOn;
    let name = r.get("OTEL_TRACES_SAMPLER").map(|s| s.to_ascii_lowercase());
    let ratio = |r: &mut Reader<'_>| {
        let key = "OTEL_TRACES_SAMPLER_ARG";
        match r.get(key) {
            None => 1.0,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => x,
                _ => {
                    r.warn(key, &v, "1.0");
                    1.0
                }
            },
        }
    };
    match name.as_deref() {
        None | Some("parentbased_always_on") => default,
        Some("always_on") => SamplerConfig::AlwaysOn,
        Some("always_off") => SamplerConfig::AlwaysOff,
        Some("parentbased_always_off") => SamplerConfig::ParentBasedAlwaysOff,
        Some("traceidratio") => SamplerConfig::TraceIdRatio(ratio(r)),
        Some("parentbased_traceidratio") => SamplerConfig::ParentBasedTraceIdRatio(ratio(r)),
        Some(other) => {
            r.warn("OTEL_TRACES_SAMPLER", other, "parentbased_always_on");
            default
        }
    }
}

pub fn propagators(r: &mut Reader<'_>) -> Vec<Propagator> {
    let key = "OTEL_PROPAGATORS";
    let Some(raw) = r.get(key) else { return vec![Propagator::TraceContext, Propagator::Baggage] };
    let mut out = Vec::new();
    for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        let p = match item.as_str() {
            "tracecontext" => Propagator::TraceContext,
            "baggage" => Propagator::Baggage,
            "b3" => Propagator::B3,
            "b3multi" => Propagator::B3Multi,
            "none" => return Vec::new(),
            other => {
                r.warn(key, other, "nothing in its place (not supported)");
                continue;
            }
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// An OTLP signal: its variable infix and its HTTP path.
#[derive(Clone, Copy)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    fn var(self, suffix: &str) -> String {
        match self {
            Signal::Traces => format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"),
            Signal::Metrics => format!("OTEL_EXPORTER_OTLP_METRICS_{suffix}"),
            Signal::Logs => format!("OTEL_EXPORTER_OTLP_LOGS_{suffix}"),
        }
    }
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

pub fn otlp(r: &mut Reader<'_>, signal: Signal) -> OtlpConfig {
    let protocol = match r.first(&[&signal.var("PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
        None => Protocol::HttpProtobuf,
        Some((_, v)) if v == "http/protobuf" => Protocol::HttpProtobuf,
        Some((_, v)) if v == "grpc" => Protocol::Grpc,
        Some((k, v)) => {
            r.warn(&k, &v, "http/protobuf");
            Protocol::HttpProtobuf
        }
    };
    let endpoint = endpoint(r, signal, protocol);
    let tls = tls_files(r, signal);
    let headers = headers(r, signal);
    let timeout = r.millis(&[&signal.var("TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT"], 10_000);
    let compression = match r.first(&[&signal.var("COMPRESSION"), "OTEL_EXPORTER_OTLP_COMPRESSION"]) {
        None => Compression::None,
        Some((_, v)) if v.eq_ignore_ascii_case("gzip") => Compression::Gzip,
        Some((_, v)) if v.eq_ignore_ascii_case("none") => Compression::None,
        Some((k, v)) => {
            r.warn(&k, &v, "none");
            Compression::None
        }
    };
    OtlpConfig { protocol, endpoint, headers, timeout, compression, tls }
}

/// The specification's endpoint rules: the signal-specific variable is used as is; the
/// generic one gets the signal's path (`/v1/traces`) appended for HTTP; gRPC takes it as is.
/// The scheme decides TLS (`https`). gRPC also takes a bare `host:port`, secure unless
/// `OTEL_EXPORTER_OTLP_[SIGNAL_]INSECURE=true` (the only case that variable decides).
fn endpoint(r: &mut Reader<'_>, signal: Signal, protocol: Protocol) -> String {
    let insecure = r.first_bool(&[&signal.var("INSECURE"), "OTEL_EXPORTER_OTLP_INSECURE"], false);
    let scheme = if insecure { "http" } else { "https" };
    let with_scheme = |v: String| match protocol {
        Protocol::Grpc if bare_authority(&v) => format!("{scheme}://{}", v.trim_end_matches('/')),
        _ => v,
    };
    let default_base = match protocol {
        Protocol::HttpProtobuf => "http://localhost:4318",
        Protocol::Grpc => "http://localhost:4317",
    };
    let with_path = |base: &str| match protocol {
        Protocol::HttpProtobuf => format!("{}{}", base.trim_end_matches('/'), signal.path()),
        Protocol::Grpc => base.to_string(),
    };
    let specific = signal.var("ENDPOINT");
    if let Some(v) = r.get(&specific).map(with_scheme) {
        if valid_url(&v) {
            return v;
        }
        r.warn(&specific, &v, "the generic endpoint");
    }
    if let Some(v) = r.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(with_scheme) {
        if valid_url(&v) {
            return with_path(&v);
        }
        r.warn("OTEL_EXPORTER_OTLP_ENDPOINT", &v, default_base);
    }
    with_path(default_base)
}

/// The TLS file variables, each signal-specific before generic. A client certificate without its
/// key (or the reverse) is a configuration error: warned, and no client certificate is used.
fn tls_files(r: &mut Reader<'_>, signal: Signal) -> TlsFiles {
    let file = |suffix: &str| {
        let specific = signal.var(suffix);
        r.first(&[&specific, &format!("OTEL_EXPORTER_OTLP_{suffix}")]).map(|(var, path)| PemFile { var, path: path.into() })
    };
    let ca = file("CERTIFICATE");
    let cert = file("CLIENT_CERTIFICATE");
    let key = file("CLIENT_KEY");
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => {
            let other = match f.var.strip_suffix("CLIENT_KEY") {
                Some(prefix) => format!("{prefix}CLIENT_CERTIFICATE"),
                None => f.var.replace("CLIENT_CERTIFICATE", "CLIENT_KEY"),
            };
            r.warn(&f.var, &f.path.to_string_lossy(), format!("no client certificate ({other} is not set)"));
            None
        }
    };
    TlsFiles { ca, client }
}

fn headers(r: &mut Reader<'_>, signal: Signal) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    // Generic first, then signal-specific entries override by key.
    for key in ["OTEL_EXPORTER_OTLP_HEADERS".to_string(), signal.var("HEADERS")] {
        let Some(raw) = r.get(&key) else { continue };
        for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let parsed = pair
                .split_once('=')
                .and_then(|(k, v)| Some((k.trim().to_ascii_lowercase(), percent_decode(v.trim())?)))
                .filter(|(k, v)| !k.is_empty() && valid_header(k, v));
            match parsed {
                Some((k, v)) => {
                    out.retain(|(ek, _)| *ek != k);
                    out.push((k, v));
                }
                None => r.warn(&key, pair, "the other headers without it"),
            }
        }
    }
    out
}

pub fn batch(r: &mut Reader<'_>) -> BatchConfig {
    let schedule_delay = r.millis(&["OTEL_BSP_SCHEDULE_DELAY"], 5000);
    let export_timeout = r.millis(&["OTEL_BSP_EXPORT_TIMEOUT"], 30_000);
    let max_queue_size = r.positive("OTEL_BSP_MAX_QUEUE_SIZE", 2048);
    let mut max_export_batch_size = r.positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512);
    if max_export_batch_size > max_queue_size {
        r.warn(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            &max_export_batch_size.to_string(),
            format!("{max_queue_size} (it must not exceed OTEL_BSP_MAX_QUEUE_SIZE)"),
        );
        max_export_batch_size = max_queue_size;
    }
    BatchConfig { schedule_delay, export_timeout, max_queue_size, max_export_batch_size }
}


pub fn metrics(r: &mut Reader<'_>) -> MetricsConfig {
    let key = "OTEL_METRICS_EXPORTER";
    let mut exporters = Vec::new();
    match r.get(key) {
        None => exporters.push(MetricsExporter::Otlp),
        Some(raw) => {
            for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
                match item.as_str() {
                    "otlp" => exporters.push(MetricsExporter::Otlp),
                    "prometheus" => exporters.push(MetricsExporter::Prometheus),
                    "none" => {
                        exporters.clear();
                        break;
                    }
                    "console" => exporters.push(MetricsExporter::Console),
                    other => r.warn(key, other, "nothing in its place"),
                }
            }
        }
    }
    exporters.dedup();
    let interval = r.millis(&["OTEL_METRIC_EXPORT_INTERVAL"], 60_000);
    let interval = if interval.is_zero() { std::time::Duration::from_millis(60_000) } else { interval };
    let export_timeout = r.millis(&["OTEL_METRIC_EXPORT_TIMEOUT"], 30_000);
    let mut otlp = otlp(r, Signal::Metrics);
    // The reader's export timeout bounds each export (and its retries) too.
    otlp.timeout = otlp.timeout.min(export_timeout.max(std::time::Duration::from_millis(1)));
    let key = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    let temporality = match r.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Temporality::Cumulative,
        Some(v) if v == "cumulative" => Temporality::Cumulative,
        Some(v) if v == "delta" => Temporality::Delta,
        Some(v) if v == "lowmemory" => Temporality::LowMemory,
        Some(v) => {
            r.warn(key, &v, "cumulative");
            Temporality::Cumulative
        }
    };
    let prometheus_host = r.get("OTEL_EXPORTER_PROMETHEUS_HOST").unwrap_or_else(|| "localhost".into());
    let prometheus_port = r.port("OTEL_EXPORTER_PROMETHEUS_PORT", 9464);
    MetricsConfig { exporters, interval, export_timeout, temporality, otlp, prometheus_host, prometheus_port }
}

fn valid_url(v: &str) -> bool {
    let rest = v.strip_prefix("http://").or_else(|| v.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// `host`, `host:port` or `[v6]:port` without a scheme or a path (a gRPC target).
fn bare_authority(v: &str) -> bool {
    let v = v.trim_end_matches('/');
    !v.is_empty() && !v.contains("://") && !v.contains('/') && !v.starts_with(':') && !v.contains(char::is_whitespace)
}

fn valid_header(k: &str, v: &str) -> bool {
    k.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
        && !v.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0)
}


#[cfg(test)]
mod export_tests {
    use super::super::*;

    #[test]
    fn export_timeouts_bound_each_export() {
        // The processor's export timeout caps the exporter's (each bounds the export with its retries).
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "20000"), ("OTEL_BSP_EXPORT_TIMEOUT", "1500")]);
        assert_eq!(c.otlp.timeout, Duration::from_millis(1500));
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700")]);
        assert_eq!(c.otlp.timeout, Duration::from_millis(700));
        assert_eq!(c.metrics.otlp.timeout, Duration::from_secs(10), "the traces variable is the traces' only");
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "4000"), ("OTEL_METRIC_EXPORT_TIMEOUT", "2500")]);
        assert_eq!((c.metrics.export_timeout, c.metrics.otlp.timeout), (Duration::from_millis(2500), Duration::from_millis(2500)));
        assert_eq!(c.otlp.timeout, Duration::from_secs(10));
        let c = Config::from_pairs(&[("OTEL_METRIC_EXPORT_TIMEOUT", "soon")]);
        assert_eq!(c.metrics.export_timeout, Duration::from_secs(30));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }

    #[test]
    fn metrics_console_and_temporality() {
        let c = Config::from_pairs(&[]);
        assert_eq!(c.metrics.temporality, Temporality::Cumulative);
        let c = Config::from_pairs(&[("OTEL_METRICS_EXPORTER", "console,otlp"), ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta")]);
        assert_eq!(c.metrics.exporters, vec![MetricsExporter::Console, MetricsExporter::Otlp]);
        assert_eq!(c.metrics.temporality, Temporality::Delta);
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "lowmemory")]);
        assert_eq!(c.metrics.temporality, Temporality::LowMemory);
        let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes")]);
        assert_eq!(c.metrics.temporality, Temporality::Cumulative);
        assert!(c.warnings[0].contains("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"), "{:?}", c.warnings);
        let c = Config::from_pairs(&[("FERROTEL_TEST_FAULT", "processor_panic")]);
        assert_eq!(c.test_fault, Some(TestFault::ProcessorPanic));
    }
}
