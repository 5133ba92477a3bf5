//! ferrotel's OTLP encoder and transport against the OpenTelemetry SDK's exporter
//! (`opentelemetry-otlp` 0.33, HTTP/protobuf over its blocking reqwest client), fed the same
//! batches the traces export thread hands over (docs/design.md has the numbers and the decision).
//!
//! `cargo bench --features compare-otel-sdk --bench otel_sdk` prints, per variant, the wall time
//! and nanoseconds per exported span for `BENCH_SPANS` spans (default 200,000) in batches of 512,
//! each batch POSTed to an in-process sink that reads the request and answers 200. For
//! instruction counts run the built binary under callgrind with `BENCH_VARIANT=ferrotel|sdk` and
//! two `BENCH_SPANS` values; the difference over the difference in spans is the cost per span.
//!
//! - `ferrotel`: `otlp_wire::encode_traces` (records straight to protobuf bytes) and
//!   `export::http::HttpTransport` (ureq, no thread of its own).
//! - `sdk`: each `SpanRecord` converted to the SDK's `SpanData` (what feeding our batches to the
//!   SDK's exporter takes), then `opentelemetry_otlp::SpanExporter::export` (its own transform to
//!   the generated protobuf types, prost encoding, reqwest's blocking client, which runs a tokio
//!   runtime on a thread of its own).

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrotel::config::Config;
use ferrotel::context::TraceId;
use ferrotel::export::http::HttpTransport;
use ferrotel::export::otlp_wire::encode_traces;
use ferrotel::resource::{Resource, Runtime};
use ferrotel::semconv as sc;
use ferrotel::span::{self, Head, Scope, SpanKind, SpanRecord, Value};

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

fn request_span(i: u64) -> SpanRecord {
    let mut s = SpanRecord::start(String::new(), SpanKind::Server, Scope::fixed("ferrotel.flask"), None, TraceId::random(), Head::Sampled);
    s.push(sc::HTTP_REQUEST_METHOD, "GET");
    s.push(sc::URL_PATH, format!("/users/{}", i % 1000));
    s.push(sc::URL_SCHEME, "http");
    s.push(sc::SERVER_ADDRESS, "127.0.0.1");
    s.push(sc::SERVER_PORT, 8000i64);
    s.push(sc::CLIENT_ADDRESS, "10.1.2.3");
    s.push(sc::USER_AGENT_ORIGINAL, "Mozilla/5.0 (X11; Linux x86_64) bench");
    s.push(sc::NETWORK_PROTOCOL_VERSION, "1.1");
    s.push(sc::HTTP_RESPONSE_STATUS_CODE, Value::Int(200));
    s.push(sc::HTTP_ROUTE, "/users/<int:uid>");
    s.name = "GET /users/<int:uid>".into();
    s.end_ns = s.start_ns + 1_500_000;
    s
}

/// An OTLP/HTTP sink: reads each request (headers, then Content-Length bytes), answers 200 with an
/// empty ExportTraceServiceResponse, keeps the connection.
fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                let mut body = Vec::new();
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) <= 2 {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    body.resize(len, 0);
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    port
}

fn time_of(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn kv(attrs: &span::Attributes) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| {
            let key = k.clone();
            match v {
                Value::Str(s) => KeyValue::new(key, s.to_string()),
                Value::Int(i) => KeyValue::new(key, *i),
                Value::F64(f) => KeyValue::new(key, *f),
                Value::Bool(b) => KeyValue::new(key, *b),
                other => KeyValue::new(key, format!("{other:?}")),
            }
        })
        .collect()
}

/// What handing one of our records to the SDK's exporter takes.
fn to_span_data(s: &SpanRecord) -> SpanData {
    let context = SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(s.trace_id.0),
        SpanId::from_bytes(s.span_id.0),
        TraceFlags::new(s.flags),
        false,
        TraceState::default(),
    );
    SpanData {
        span_context: context,
        parent_span_id: SpanId::from_bytes(s.parent_span_id.0),
        parent_span_is_remote: s.parent_remote,
        span_kind: match s.kind {
            SpanKind::Server => opentelemetry::trace::SpanKind::Server,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
            _ => opentelemetry::trace::SpanKind::Internal,
        },
        name: Cow::Owned(s.name.to_string()),
        start_time: time_of(s.start_ns),
        end_time: time_of(s.end_ns),
        attributes: kv(&s.attributes),
        dropped_attributes_count: s.dropped.attributes,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match &s.status {
            span::Status::Unset => Status::Unset,
            span::Status::Ok => Status::Ok,
            span::Status::Error(m) => Status::error(m.clone()),
        },
        instrumentation_scope: InstrumentationScope::builder(s.scope.name.clone()).build(),
    }
}

/// Drive an export future to completion on this thread (the blocking client does its waiting
/// inside `poll`; nothing here needs a runtime).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

fn main() {
    let total: u64 = std::env::var("BENCH_SPANS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let only = std::env::var("BENCH_VARIANT").ok();
    let batch = 512usize;
    let port = sink();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let config = Config::from_lookup(|k| (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| endpoint.clone()));
    let resource = Resource::build(&config, &Runtime { name: "cpython".into(), version: "3.11.7".into(), ..Default::default() });
    let input: Vec<SpanRecord> = (0..total).map(request_span).collect();
    let base_threads = threads();

    if only.as_deref().is_none_or(|v| v == "ferrotel") {
        let transport = HttpTransport::new(&config.otlp);
        let before = threads();
        let started = Instant::now();
        let mut bytes = 0usize;
        for chunk in input.chunks(batch) {
            let body = encode_traces(black_box(chunk), &resource);
            bytes += body.len();
            transport.post(body).expect("ferrotel export");
        }
        let t = started.elapsed();
        println!(
            "ferrotel  {total} spans: {:.3} s, {:.0} ns/span, {:.0} B/span, threads added by the exporter: {}",
            t.as_secs_f64(),
            t.as_nanos() as f64 / total as f64,
            bytes as f64 / total as f64,
            threads() - before
        );
    }

    if only.as_deref().is_none_or(|v| v == "sdk") {
        let before = threads();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(10))
            .build()
            .expect("the SDK's exporter");
        let sdk_resource = opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(kv(&resource.attributes))
            .build();
        exporter.set_resource(&sdk_resource);
        let made = threads() - before;
        let started = Instant::now();
        for chunk in input.chunks(batch) {
            let spans: Vec<SpanData> = black_box(chunk).iter().map(to_span_data).collect();
            block_on(exporter.export(spans)).expect("SDK export");
        }
        let t = started.elapsed();
        println!(
            "sdk       {total} spans: {:.3} s, {:.0} ns/span, threads added by the exporter: {made}",
            t.as_secs_f64(),
            t.as_nanos() as f64 / total as f64,
        );
    }
    let _ = base_threads;
}
