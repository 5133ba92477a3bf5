//! Configuration: every `OTEL_*` / `FERROTEL_*` variable the agent honours, read once into one
//! typed struct. Nothing else in the crate reads the environment. A bad value never fails: it
//! produces one warning line (collected in `Config::warnings`, printed once by the caller) and
//! the specification's default.

use std::time::Duration;

use crate::context::propagation::Propagator;

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

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    pub protocol: Protocol,
    /// For HTTP the full URL of the traces resource; for gRPC the server's URL.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub compression: Compression,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchConfig {
    pub schedule_delay: Duration,
    pub export_timeout: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
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
    /// One line per bad value, naming the variable and the default used.
    pub warnings: Vec<String>,
}

impl Config {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Build from any variable source (tests pass a map). Empty values count as unset, as the
    /// specification says.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut r = Reader { lookup: &lookup, warnings: Vec::new() };
        let sdk_disabled = r.bool("OTEL_SDK_DISABLED", false);
        let service_name = r.get("OTEL_SERVICE_NAME");
        let resource_attributes = r.resource_attributes();
        let traces_exporters = r.traces_exporters();
        r.accept_quietly("OTEL_METRICS_EXPORTER", &["otlp", "prometheus", "console", "none"]);
        r.accept_quietly("OTEL_LOGS_EXPORTER", &["otlp", "console", "none"]);
        let sampler = r.sampler();
        let propagators = r.propagators();
        let otlp = r.otlp();
        let batch = r.batch();
        Config {
            sdk_disabled,
            service_name,
            resource_attributes,
            traces_exporters,
            sampler,
            propagators,
            otlp,
            batch,
            warnings: r.warnings,
        }
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// The first of `keys` that is set (signal-specific before generic).
    fn first(&self, keys: &[&str]) -> Option<(String, String)> {
        keys.iter().find_map(|k| self.get(k).map(|v| (k.to_string(), v)))
    }

    fn warn(&mut self, key: &str, value: &str, default: impl std::fmt::Display) {
        self.warnings.push(format!("invalid value {value:?} for {key}; using {default}"));
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.warn(key, &v, default);
                default
            }
        }
    }

    /// A non-negative integer number of milliseconds.
    fn millis(&mut self, keys: &[&str], default_ms: u64) -> Duration {
        match self.first(keys) {
            None => Duration::from_millis(default_ms),
            Some((k, v)) => match v.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    self.warn(&k, &v, format!("{default_ms} ms"));
                    Duration::from_millis(default_ms)
                }
            },
        }
    }

    fn positive(&mut self, key: &str, default: usize) -> usize {
        match self.get(key) {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.warn(key, &v, default);
                    default
                }
            },
        }
    }

    fn accept_quietly(&mut self, key: &str, known: &[&str]) {
        if let Some(v) = self.get(key) {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !known.contains(&item.to_ascii_lowercase().as_str()) {
                    self.warn(key, item, "the default");
                }
            }
        }
    }

    fn resource_attributes(&mut self) -> Vec<(String, String)> {
        let key = "OTEL_RESOURCE_ATTRIBUTES";
        let Some(raw) = self.get(key) else { return Vec::new() };
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
                    self.warn(key, &raw, "no resource attributes from it");
                    return Vec::new();
                }
            }
        }
        out
    }

    fn traces_exporters(&mut self) -> Vec<TracesExporter> {
        let key = "OTEL_TRACES_EXPORTER";
        let Some(raw) = self.get(key) else { return vec![TracesExporter::Otlp] };
        let mut out = Vec::new();
        for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
            match item.as_str() {
                "otlp" => out.push(TracesExporter::Otlp),
                "console" => out.push(TracesExporter::Console),
                "none" => return Vec::new(),
                other => self.warn(key, other, "otlp in its place"),
            }
        }
        if out.is_empty() {
            out.push(TracesExporter::Otlp);
        }
        out.dedup();
        out
    }

    fn sampler(&mut self) -> SamplerConfig {
        let default = SamplerConfig::ParentBasedAlwaysOn;
        let name = self.get("OTEL_TRACES_SAMPLER").map(|s| s.to_ascii_lowercase());
        let ratio = |r: &mut Self| {
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
            Some("traceidratio") => SamplerConfig::TraceIdRatio(ratio(self)),
            Some("parentbased_traceidratio") => SamplerConfig::ParentBasedTraceIdRatio(ratio(self)),
            Some(other) => {
                self.warn("OTEL_TRACES_SAMPLER", other, "parentbased_always_on");
                default
            }
        }
    }

    fn propagators(&mut self) -> Vec<Propagator> {
        let key = "OTEL_PROPAGATORS";
        let Some(raw) = self.get(key) else { return vec![Propagator::TraceContext, Propagator::Baggage] };
        let mut out = Vec::new();
        for item in raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
            let p = match item.as_str() {
                "tracecontext" => Propagator::TraceContext,
                "baggage" => Propagator::Baggage,
                "b3" => Propagator::B3,
                "b3multi" => Propagator::B3Multi,
                "none" => return Vec::new(),
                other => {
                    self.warn(key, other, "nothing in its place (not supported)");
                    continue;
                }
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    fn otlp(&mut self) -> OtlpConfig {
        let protocol = match self.first(&["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
            None => Protocol::HttpProtobuf,
            Some((_, v)) if v == "http/protobuf" => Protocol::HttpProtobuf,
            Some((_, v)) if v == "grpc" => Protocol::Grpc,
            Some((k, v)) => {
                self.warn(&k, &v, "http/protobuf");
                Protocol::HttpProtobuf
            }
        };
        let endpoint = self.endpoint(protocol);
        let headers = self.headers();
        let timeout = self.millis(&["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"], 10_000);
        let compression = match self.first(&["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"]) {
            None => Compression::None,
            Some((_, v)) if v.eq_ignore_ascii_case("gzip") => Compression::Gzip,
            Some((_, v)) if v.eq_ignore_ascii_case("none") => Compression::None,
            Some((k, v)) => {
                self.warn(&k, &v, "none");
                Compression::None
            }
        };
        OtlpConfig { protocol, endpoint, headers, timeout, compression }
    }

    /// The specification's endpoint rules: the signal-specific variable is used as is; the
    /// generic one gets `/v1/traces` appended for HTTP; gRPC takes the URL as is.
    fn endpoint(&mut self, protocol: Protocol) -> String {
        let default_base = match protocol {
            Protocol::HttpProtobuf => "http://localhost:4318",
            Protocol::Grpc => "http://localhost:4317",
        };
        let with_path = |base: &str| match protocol {
            Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
            Protocol::Grpc => base.to_string(),
        };
        if let Some(v) = self.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            if valid_url(&v) {
                return v;
            }
            self.warn("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &v, "the generic endpoint");
        }
        if let Some(v) = self.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            if valid_url(&v) {
                return with_path(&v);
            }
            self.warn("OTEL_EXPORTER_OTLP_ENDPOINT", &v, default_base);
        }
        with_path(default_base)
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        // Generic first, then signal-specific entries override by key.
        for key in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            let Some(raw) = self.get(key) else { continue };
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
                    None => self.warn(key, pair, "the other headers without it"),
                }
            }
        }
        out
    }

    fn batch(&mut self) -> BatchConfig {
        let schedule_delay = self.millis(&["OTEL_BSP_SCHEDULE_DELAY"], 5000);
        let export_timeout = self.millis(&["OTEL_BSP_EXPORT_TIMEOUT"], 30_000);
        let max_queue_size = self.positive("OTEL_BSP_MAX_QUEUE_SIZE", 2048);
        let mut max_export_batch_size = self.positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512);
        if max_export_batch_size > max_queue_size {
            self.warn(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                &max_export_batch_size.to_string(),
                format!("{max_queue_size} (it must not exceed OTEL_BSP_MAX_QUEUE_SIZE)"),
            );
            max_export_batch_size = max_queue_size;
        }
        BatchConfig { schedule_delay, export_timeout, max_queue_size, max_export_batch_size }
    }
}

fn valid_url(v: &str) -> bool {
    let rest = v.strip_prefix("http://").or_else(|| v.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

fn valid_header(k: &str, v: &str) -> bool {
    k.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
        && !v.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0)
}

/// `%XX` decoding (UTF-8). `None` on a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_specification() {
        let c = cfg(&[]);
        assert!(!c.sdk_disabled);
        assert_eq!(c.service_name, None);
        assert_eq!(c.traces_exporters, vec![TracesExporter::Otlp]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.propagators, vec![Propagator::TraceContext, Propagator::Baggage]);
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.otlp.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(c.otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.otlp.compression, Compression::None);
        assert_eq!(c.batch, BatchConfig {
            schedule_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30_000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        });
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn every_variable_is_read() {
        let c = cfg(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_SERVICE_NAME", "shop"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=p-1, deployment.environment=prod%20eu"),
            ("OTEL_TRACES_EXPORTER", "console,otlp"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_PROPAGATORS", "b3multi, tracecontext,b3"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc%3D,X-Tenant=t1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=t2"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
        ]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.sdk_disabled);
        assert_eq!(c.service_name.as_deref(), Some("shop"));
        assert_eq!(c.resource_attributes, vec![
            ("k8s.pod.name".into(), "p-1".into()),
            ("deployment.environment".into(), "prod eu".into())
        ]);
        assert_eq!(c.traces_exporters, vec![TracesExporter::Console, TracesExporter::Otlp]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.25));
        assert_eq!(c.propagators, vec![Propagator::B3Multi, Propagator::TraceContext, Propagator::B3]);
        assert_eq!(c.otlp.protocol, Protocol::Grpc);
        assert_eq!(c.otlp.endpoint, "http://collector:4317");
        assert_eq!(c.otlp.headers, vec![("api-key".into(), "abc=".into()), ("x-tenant".into(), "t2".into())]);
        assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
        assert_eq!(c.otlp.compression, Compression::Gzip);
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(100));
        assert_eq!(c.batch.export_timeout, Duration::from_millis(1000));
        assert_eq!((c.batch.max_queue_size, c.batch.max_export_batch_size), (100, 10));
    }

    #[test]
    fn signal_specific_variables_win() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318/"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "7"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "9"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.otlp.endpoint, "http://generic:4318/v1/traces");
        assert_eq!(c.otlp.timeout, Duration::from_millis(7));
        assert_eq!(c.otlp.compression, Compression::None);
        let c = cfg(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:1/custom"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://y:2")]);
        assert_eq!(c.otlp.endpoint, "http://x:1/custom", "used as is");
        let c = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(c.otlp.endpoint, "http://localhost:4317");
    }

    #[test]
    fn bad_values_warn_once_each_and_use_the_default() {
        let c = cfg(&[
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_METRICS_EXPORTER", "statsd"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_PROPAGATORS", "tracecontext,xray"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue,ok=1,bad=%zz"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1.5"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=%E2%28"),
        ]);
        assert!(!c.sdk_disabled);
        assert_eq!(c.traces_exporters, vec![TracesExporter::Otlp]);
        assert_eq!(c.sampler, SamplerConfig::TraceIdRatio(1.0));
        assert_eq!(c.propagators, vec![Propagator::TraceContext]);
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.otlp.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(c.otlp.headers, vec![("ok".into(), "1".into())]);
        assert_eq!(c.otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.otlp.compression, Compression::None);
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(5000));
        assert_eq!(c.batch.export_timeout, Duration::from_millis(30_000));
        assert_eq!(c.batch.max_queue_size, 2048);
        assert_eq!(c.batch.max_export_batch_size, 2048);
        assert!(c.resource_attributes.is_empty());
        let expect = [
            "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_PROPAGATORS", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_RESOURCE_ATTRIBUTES",
        ];
        for var in expect {
            let n = c.warnings.iter().filter(|w| w.contains(&format!(" for {var};"))).count();
            assert_eq!(n, 1, "one warning for {var}: {:#?}", c.warnings);
        }
        // Two bad header entries, one warning each.
        assert_eq!(c.warnings.iter().filter(|w| w.contains("OTEL_EXPORTER_OTLP_HEADERS")).count(), 2);
        assert!(c.warnings.iter().all(|w| w.contains("using")));
    }

    #[test]
    fn unknown_sampler_and_none_values() {
        let c = cfg(&[("OTEL_TRACES_SAMPLER", "jaeger_remote"), ("OTEL_PROPAGATORS", "none"), ("OTEL_TRACES_EXPORTER", "none")]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.propagators.is_empty());
        assert!(c.traces_exporters.is_empty());
        for (name, expect) in [
            ("always_on", SamplerConfig::AlwaysOn),
            ("always_off", SamplerConfig::AlwaysOff),
            ("parentbased_always_off", SamplerConfig::ParentBasedAlwaysOff),
            ("traceidratio", SamplerConfig::TraceIdRatio(1.0)),
        ] {
            assert_eq!(cfg(&[("OTEL_TRACES_SAMPLER", name)]).sampler, expect);
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = cfg(&[("OTEL_SERVICE_NAME", ""), ("OTEL_TRACES_EXPORTER", " "), ("OTEL_BSP_SCHEDULE_DELAY", "")]);
        assert_eq!(c.service_name, None);
        assert_eq!(c.traces_exporters, vec![TracesExporter::Otlp]);
        assert!(c.warnings.is_empty());
    }
}
