//! Configuration tests: every variable, defaults, bad values.

use super::*;


#[test]
fn defaults_follow_the_specification() {
    let c = Config::from_pairs(&[]);
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
    let c = Config::from_pairs(&[
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
        ("OTEL_BSP_EXPORT_TIMEOUT", "5000"),
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
    assert_eq!(c.batch.export_timeout, Duration::from_millis(5000));
    assert_eq!((c.batch.max_queue_size, c.batch.max_export_batch_size), (100, 10));
}

#[test]
fn signal_specific_variables_win() {
    let c = Config::from_pairs(&[
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
    let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:1/custom"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://y:2")]);
    assert_eq!(c.otlp.endpoint, "http://x:1/custom", "used as is");
    let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    assert_eq!(c.otlp.endpoint, "http://localhost:4317");
}

#[test]
fn bad_values_warn_once_each_and_use_the_default() {
    let c = Config::from_pairs(&[
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
    let c = Config::from_pairs(&[("OTEL_TRACES_SAMPLER", "jaeger_remote"), ("OTEL_PROPAGATORS", "none"), ("OTEL_TRACES_EXPORTER", "none")]);
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
        assert_eq!(Config::from_pairs(&[("OTEL_TRACES_SAMPLER", name)]).sampler, expect);
    }
}

#[test]
fn empty_values_count_as_unset() {
    let c = Config::from_pairs(&[("OTEL_SERVICE_NAME", ""), ("OTEL_TRACES_EXPORTER", " "), ("OTEL_BSP_SCHEDULE_DELAY", "")]);
    assert_eq!(c.service_name, None);
    assert_eq!(c.traces_exporters, vec![TracesExporter::Otlp]);
    assert!(c.warnings.is_empty());
}

#[test]
fn metrics_settings() {
    let c = Config::from_pairs(&[]);
    assert_eq!(c.metrics.exporters, vec![MetricsExporter::Otlp]);
    assert_eq!(c.metrics.interval, Duration::from_secs(60));
    assert_eq!(c.metrics.otlp.endpoint, "http://localhost:4318/v1/metrics");
    assert_eq!((c.metrics.prometheus_host.as_str(), c.metrics.prometheus_port), ("localhost", 9464));
    let c = Config::from_pairs(&[
        ("OTEL_METRICS_EXPORTER", "prometheus,otlp"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
    ]);
    assert_eq!(c.metrics.exporters, vec![MetricsExporter::Prometheus, MetricsExporter::Otlp]);
    assert_eq!(c.metrics.interval, Duration::from_secs(1));
    assert_eq!(c.metrics.otlp.protocol, Protocol::Grpc);
    assert_eq!(c.metrics.otlp.endpoint, "http://m:4317");
    assert_eq!(c.otlp.endpoint, "http://c:4318/v1/traces", "traces keep their own");
    assert_eq!((c.metrics.prometheus_host.as_str(), c.metrics.prometheus_port), ("0.0.0.0", 9999));
    let c = Config::from_pairs(&[("OTEL_METRICS_EXPORTER", "none"), ("OTEL_EXPORTER_PROMETHEUS_PORT", "99999")]);
    assert!(c.metrics.exporters.is_empty());
    assert_eq!(c.metrics.prometheus_port, 9464);
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn processing_settings() {
    let c = Config::from_pairs(&[]);
    let p = &c.processing;
    assert_eq!(p.slow_threshold, Duration::from_millis(100));
    assert_eq!(p.filter_routes, vec!["/healthz", "/readyz", "/livez", "/metrics"]);
    assert!(p.redact_query_keys.contains(&"token".to_string()));
    assert!(p.redact_headers.contains(&"authorization".to_string()));
    assert!(p.keep_errors_and_slow);
    let c = Config::from_pairs(&[
        ("FERROTEL_SPAN_ATTRIBUTES", "team=payments,tier=gold%20plus"),
        ("FERROTEL_SLOW_THRESHOLD_MS", "250"),
        ("FERROTEL_SLOW_ROUTES", "/reports/*=2000,/x=oops"),
        ("FERROTEL_FILTER_ROUTES", "none"),
        ("FERROTEL_FILTER_METHODS", "options, head"),
        ("FERROTEL_FILTER_ATTRIBUTES", "user_agent.original=kube-probe*"),
        ("FERROTEL_REDACT_QUERY_KEYS", "Code,state"),
        ("FERROTEL_REDACT_HEADERS", "X-Secret"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "X-Request-Id, Authorization"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "Content-Type"),
        ("FERROTEL_KEEP_ERRORS_AND_SLOW", "false"),
    ]);
    let p = &c.processing;
    assert_eq!(p.span_attributes, vec![("team".into(), "payments".into()), ("tier".into(), "gold plus".into())]);
    assert_eq!(p.slow_threshold, Duration::from_millis(250));
    assert_eq!(p.slow_routes, vec![("/reports/*".into(), Duration::from_millis(2000))]);
    assert!(p.filter_routes.is_empty());
    assert_eq!(p.filter_methods, vec!["OPTIONS", "HEAD"]);
    assert_eq!(p.filter_attributes, vec![("user_agent.original".into(), "kube-probe*".into())]);
    assert_eq!(p.redact_query_keys, vec!["code", "state"]);
    assert_eq!(p.redact_headers, vec!["x-secret"]);
    assert_eq!(p.capture_request_headers, vec!["x-request-id", "authorization"]);
    assert_eq!(p.capture_response_headers, vec!["content-type"]);
    assert!(!p.keep_errors_and_slow);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("FERROTEL_SLOW_ROUTES"));
}

proptest::proptest! {
    /// Arbitrary values for every variable never panic and always leave a usable configuration.
    #[test]
    fn any_value_is_survivable(v in "\\PC{0,40}") {
        let vars = [
            "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER",
            "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_PROPAGATORS", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_EXPORTER_PROMETHEUS_PORT", "FERROTEL_SLOW_THRESHOLD_MS", "FERROTEL_SLOW_ROUTES", "FERROTEL_FILTER_ROUTES",
            "FERROTEL_SPAN_ATTRIBUTES", "FERROTEL_KEEP_ERRORS_AND_SLOW", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ];
        let c = Config::from_lookup(|k| vars.contains(&k).then(|| v.clone()));
        proptest::prop_assert!(c.batch.max_queue_size > 0);
        proptest::prop_assert!(c.batch.max_export_batch_size <= c.batch.max_queue_size);
        proptest::prop_assert!(!c.metrics.interval.is_zero());
        proptest::prop_assert!(c.otlp.endpoint.starts_with("http"));
    }
}

#[test]
fn tls_files_per_signal_over_generic() {
    let c = Config::from_pairs(&[]);
    assert_eq!(c.otlp.tls, TlsFiles::default(), "no TLS files unless named");
    let c = Config::from_pairs(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/traces-ca.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/etc/logs.key"),
    ]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let file = |var: &str, path: &str| PemFile { var: var.into(), path: path.into() };
    assert_eq!(c.otlp.endpoint, "https://collector:4318/v1/traces");
    assert_eq!(c.otlp.tls.ca, Some(file("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/traces-ca.pem")));
    assert_eq!(
        c.otlp.tls.client,
        Some((file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"), file("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key")))
    );
    assert_eq!(c.metrics.otlp.tls.ca, Some(file("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem")), "metrics use the generic CA");
    assert_eq!(
        c.logs.otlp.tls.client,
        Some((file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"), file("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/etc/logs.key"))),
        "each variable falls back to the generic one on its own"
    );
}

#[test]
fn tls_client_certificate_needs_its_key() {
    // The certificate without the key (or the reverse): one warning each, no client certificate,
    // the CA still used.
    let c = Config::from_pairs(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/etc/m.key"),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", "/etc/m.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/etc/logs.key"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
    ]);
    assert_eq!(c.otlp.tls.client, None);
    assert!(c.otlp.tls.ca.is_some());
    assert!(c.metrics.otlp.tls.client.is_some(), "metrics have both");
    assert_eq!(c.logs.otlp.tls.client.as_ref().map(|(cert, _)| cert.var.as_str()), Some("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"));
    assert_eq!(c.warnings.len(), 1, "traces' warning; logs pair the generic certificate with their key: {:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(w.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE;") && w.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY is not set"), "{w}");
    let c = Config::from_pairs(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/k")]);
    assert_eq!(c.otlp.tls.client, None);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE is not set"), "{:?}", c.warnings);
}

#[test]
fn grpc_endpoint_scheme_and_insecure() {
    // The scheme decides; OTEL_EXPORTER_OTLP_INSECURE only matters for a bare gRPC host:port.
    let endpoint = |vars: &[(&str, &str)]| {
        let c = Config::from_pairs(vars);
        (c.otlp.endpoint, c.warnings.len())
    };
    let grpc = ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    assert_eq!(endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317")]), ("https://c:4317".into(), 0));
    assert_eq!(endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317")]), ("https://c:4317".into(), 0), "secure by default");
    assert_eq!(
        endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "true")]),
        ("http://c:4317".into(), 0)
    );
    assert_eq!(
        endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "c:4317/"), ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "TRUE"), ("OTEL_EXPORTER_OTLP_INSECURE", "false")]),
        ("http://c:4317".into(), 0),
        "signal-specific wins"
    );
    assert_eq!(
        endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "true")]),
        ("https://c:4317".into(), 0),
        "insecure never downgrades an https endpoint"
    );
    assert_eq!(endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "maybe")]), ("https://c:4317".into(), 1));
    // OTLP/HTTP needs a URL: a bare host:port is still an error.
    assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")]), ("http://localhost:4318/v1/traces".into(), 1));
    assert_eq!(endpoint(&[grpc, ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317/x")]), ("http://localhost:4317".into(), 1));
}

#[test]
fn config_variables_include_conditional_reads() {
    let names = Config::variables();
    for name in ["OTEL_TRACES_SAMPLER_ARG", "OTEL_SPAN_LINK_COUNT_LIMIT", "OTEL_PYTHON_FLASK_EXCLUDED_URLS", "FERROTEL_CONFIG"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
}

#[test]
fn header_capture_names_plain_lower_cased_patterns_kept() {
    let p = Config::from_pairs(&[
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "X-Request-Id, X-\\D.*"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE", "Content-Type"),
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "Secret,token"),
    ])
    .processing;
    assert_eq!(p.capture_request_headers, vec!["x-request-id", "X-\\D.*"]);
    assert_eq!(p.capture_client_request_headers, vec![".*"]);
    assert_eq!(p.capture_client_response_headers, vec!["content-type"]);
    assert_eq!(p.sanitize_headers, vec!["secret", "token"]);
}
