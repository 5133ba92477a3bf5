//! ferrotel: OpenTelemetry auto-instrumentation for Python with a native engine.
//!
//! Data flow: hooks (Python-facing, `hooks/`) build a `span::SpanRecord` per request and push it
//! through `pipeline` (bounded queue → export thread) to `export` (OTLP HTTP/gRPC, console).
//! `config` reads the environment once; `fork` keeps the pipeline per process.

pub mod agent;
pub mod config;
pub mod context;
pub mod export;
pub mod fork;
pub mod hooks;
pub mod log;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod processors;
pub mod resource;
pub mod sampler;
pub mod semconv;
pub mod span;

use std::time::Duration;

use pyo3::prelude::*;

use crate::config::Config;
use crate::hooks::{current, span::Span};
use crate::resource::Runtime;

/// Start the agent in this process (once; later calls return the first result). Reads the
/// configuration, prints one line per bad value, and returns whether tracing is on.
#[pyfunction]
#[pyo3(signature = (runtime_name, runtime_version, runtime_description = String::new(), executable = String::new()))]
fn start(py: Python<'_>, runtime_name: String, runtime_version: String, runtime_description: String, executable: String) -> PyResult<bool> {
    static STARTED: once_cell::sync::OnceCell<bool> = once_cell::sync::OnceCell::new();
    if let Some(done) = STARTED.get() {
        return Ok(*done);
    }
    let config = Config::from_env();
    for w in &config.warnings {
        log::warn(w);
    }
    let enabled = !config.sdk_disabled;
    if enabled {
        hooks::guard::install_quiet_panic_hook();
        current::init(py)?;
        fork::install();
        pipeline::install_exit_hook();
        agent::install(agent::Agent::new(&config));
        hooks::registry::configure(&config.instrumentation, &config.processing);
        let runtime = Runtime { name: runtime_name, version: runtime_version, description: runtime_description, executable };
        let prometheus = config.metrics.exporters.contains(&config::MetricsExporter::Prometheus);
        let origin_pid = if prometheus { metrics::prometheus::origin() } else { std::process::id() };
        if prometheus && origin_pid == std::process::id() {
            let m = &config.metrics;
            let dir = metrics::prometheus::shared_dir(origin_pid, m.prometheus_port);
            metrics::prometheus::serve_from_start(m.prometheus_host.clone(), m.prometheus_port, dir, pipeline::BIND_RETRY);
        }
        pipeline::configure(pipeline::Settings { config, runtime, origin_pid });
    }
    let _ = STARTED.set(enabled);
    Ok(enabled)
}

/// Flush queued spans and stop exporting (called at interpreter exit).
#[pyfunction]
fn shutdown(py: Python<'_>) -> bool {
    export::retry::stop();
    py.detach(pipeline::shutdown)
}

/// Export everything queued so far, waiting at most `timeout_ms`.
#[pyfunction]
#[pyo3(signature = (timeout_ms = 10_000))]
fn flush(py: Python<'_>, timeout_ms: u64) -> bool {
    py.detach(|| pipeline::flush(Duration::from_millis(timeout_ms)))
}

/// The span active in the calling context, if any.
#[pyfunction]
fn current_span(py: Python<'_>) -> Option<Bound<'_, Span>> {
    current::get(py)
}

/// Record an exception on the active span (framework error hooks call this). `route`: the
/// route template the framework matched, for a server span that has none yet (Flask's
/// `handle_exception` runs while its request context is alive; when the exception propagates
/// out of `wsgi_app`, debug mode or `PROPAGATE_EXCEPTIONS`, nothing reads the route later).
#[pyfunction]
#[pyo3(signature = (exc, route = None))]
fn record_exception(py: Python<'_>, exc: Bound<'_, PyAny>, route: Option<Bound<'_, pyo3::types::PyString>>) {
    if let Some(span) = current::get(py) {
        let span = span.get();
        span.record_exception(&exc);
        if let Some(route) = route.as_ref().and_then(|r| hooks::capi::utf8(r)) {
            span.with(|rec| {
                if rec.kind == span::SpanKind::Server && rec.get(semconv::HTTP_ROUTE).is_none() {
                    rec.set(semconv::HTTP_ROUTE, span::Text::new(&route));
                }
            });
        }
    }
}

/// This process's pipeline counters, as a dict.
/// Every environment variable (and `FERROTEL_CONFIG` file key) the configuration reads, sorted:
/// what `docs/compliance.md` is checked against.
#[pyfunction]
fn config_variables() -> Vec<String> {
    config::Config::variables()
}

#[pyfunction]
fn stats(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let s = pipeline::stats();
    let d = pyo3::types::PyDict::new(py);
    d.set_item("spans_started", s.spans_started)?;
    d.set_item("spans_exported", s.spans_exported)?;
    d.set_item("dropped_queue_full", s.dropped_queue_full)?;
    d.set_item("dropped_filtered", s.dropped_filtered)?;
    d.set_item("dropped_sampled_out", s.dropped_sampled_out)?;
    d.set_item("export_failures", s.export_failures)?;
    Ok(d)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(flush, m)?)?;
    m.add_function(wrap_pyfunction!(current_span, m)?)?;
    m.add_function(wrap_pyfunction!(record_exception, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(config_variables, m)?)?;
    hooks::register(m)?;
    Ok(())
}
