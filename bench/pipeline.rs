//! The export pipeline alone (`cargo bench --bench pipeline`): span records through the
//! processing chain, the RED aggregator, batching and OTLP encoding on one core, the work the
//! export thread does per span. Prints spans per second and nanoseconds per span; the
//! transport (a socket write) is left out.

use std::hint::black_box;
use std::time::Instant;

use ferrotel::config::Config;
use ferrotel::context::TraceId;
use ferrotel::export::otlp_wire::encode_traces;
use ferrotel::metrics::red::Red;
use ferrotel::processors::Chain;
use ferrotel::resource::{Resource, Runtime};
use ferrotel::semconv as sc;
use ferrotel::span::{Head, Scope, SpanKind, SpanRecord, Value};

/// A span as the Flask hook produces it for `GET /users/<int:uid>`.
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

fn main() {
    let config = Config::from_lookup(|_| None);
    let chain = Chain::new(&config.processing, &config.limits);
    let resource = Resource::build(&config, &Runtime { name: "cpython".into(), version: "3.11.7".into(), ..Default::default() });
    let mut red = Red::new();
    let batch_size = config.batch.max_export_batch_size;
    let total: u64 = std::env::var("BENCH_SPANS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    // Build the input first: span creation is the request thread's work, not the pipeline's.
    let mut input: Vec<SpanRecord> = (0..total).map(request_span).collect();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(batch_size);
    let mut bytes = 0usize;
    for mut span in input.drain(..) {
        chain.enrich(&mut span);
        red.observe(&span);
        if chain.decide(&mut span).is_ok() {
            batch.push(span);
        }
        if batch.len() == batch_size {
            bytes += black_box(encode_traces(&batch, &resource)).len();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        bytes += black_box(encode_traces(&batch, &resource)).len();
    }
    let elapsed = started.elapsed();
    let per_span_ns = elapsed.as_nanos() as f64 / total as f64;
    println!(
        "pipeline: {total} spans in {:.3} s = {:.0} spans/s on one core, {:.0} ns of export-thread CPU per span, {} bytes of OTLP ({:.0} per span)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        per_span_ns,
        bytes,
        bytes as f64 / total as f64
    );
}
