//! Helpers for the OpenTelemetry API bridge (`python/ferrotel/hooks/otel_api.py`): what its
//! `Span` wrapper needs beyond the generic span API in `api.rs`, done natively so the wrapper
//! stays a thin forwarder. Nothing here imports or knows the `opentelemetry` package.

use pyo3::prelude::*;

use super::convert;
use super::current;
use super::span::{exception_info, Span};
use crate::context::{SpanContext, SpanId, TraceId};
use crate::span::{now_ns, Event, Link};

/// The ContextVar that holds ferrotel's current span (None before the agent started).
#[pyfunction]
pub fn otel_current_var(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    current::var(py).cloned()
}

fn context(trace_id: u128, span_id: u64, flags: u8, trace_state: Option<String>, remote: bool) -> Option<SpanContext> {
    let trace_id = TraceId(trace_id.to_be_bytes());
    let span_id = SpanId(span_id.to_be_bytes());
    (trace_id.is_valid() && span_id.is_valid()).then(|| SpanContext {
        trace_id,
        span_id,
        flags: flags & 1,
        trace_state: trace_state.filter(|s| !s.is_empty()),
        remote,
    })
}

/// A handle for another tracer's span (or a remote parent) made current through the API: it
/// records nothing; spans started under it are its children. None for an invalid context.
#[pyfunction]
#[pyo3(signature = (trace_id, span_id, flags, trace_state = None, remote = false, baggage = None))]
pub fn otel_context_span(trace_id: u128, span_id: u64, flags: u8, trace_state: Option<String>, remote: bool, baggage: Option<String>) -> Option<Span> {
    context(trace_id, span_id, flags, trace_state, remote).map(|c| Span::context_only(c, baggage.filter(|b| !b.is_empty())))
}

/// `(trace_id, span_id, trace_flags, trace_state, is_remote)` with the ids as integers, as the
/// API's `SpanContext` takes them.
#[pyfunction]
pub fn otel_span_context(span: &Bound<'_, Span>) -> (u128, u64, u8, Option<String>, bool) {
    let c = &span.get().context;
    (u128::from_be_bytes(c.trace_id.0), u64::from_be_bytes(c.span_id.0), c.flags, c.trace_state.clone(), c.remote)
}

/// The API's `Span.record_exception`: one `exception` event per call (no de-duplication, and
/// the status is left alone: the API sets it separately), with the caller's extra attributes.
#[pyfunction]
#[pyo3(signature = (span, exception, attributes = None, timestamp_ns = None))]
pub fn otel_record_exception(span: &Bound<'_, Span>, exception: &Bound<'_, PyAny>, attributes: Option<Bound<'_, PyAny>>, timestamp_ns: Option<u64>) {
    let s = span.get();
    if s.with(|_| ()).is_none() {
        return; // not recording: skip formatting the traceback
    }
    let info = exception_info(exception, None);
    let mut attrs = vec![
        ("exception.type".into(), info.type_name.into()),
        ("exception.message".into(), info.message.into()),
        ("exception.stacktrace".into(), info.stacktrace.into()),
    ];
    for (k, v) in convert::attributes(attributes.as_ref()) {
        match attrs.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => attrs.push((k, v)),
        }
    }
    let time_ns = timestamp_ns.unwrap_or_else(now_ns);
    let l = super::span::limits();
    s.with(|r| r.add_event_limited(Event { name: "exception".into(), time_ns, attributes: attrs, dropped_attributes: 0 }, l));
}

/// The API's `Span.add_link` (links added after the start).
#[pyfunction]
#[pyo3(signature = (span, trace_id, span_id, flags, trace_state = None, attributes = None))]
pub fn otel_add_link(span: &Bound<'_, Span>, trace_id: u128, span_id: u64, flags: u8, trace_state: Option<String>, attributes: Option<Bound<'_, PyAny>>) {
    let Some(c) = context(trace_id, span_id, flags, trace_state, false) else { return };
    let attributes = convert::attributes(attributes.as_ref());
    let l = super::span::limits();
    span.get().with(|r| r.add_link_limited(Link { trace_id: c.trace_id, span_id: c.span_id, trace_state: c.trace_state, flags: c.flags, attributes, dropped_attributes: 0 }, l));
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(otel_current_var, m)?)?;
    m.add_function(wrap_pyfunction!(otel_context_span, m)?)?;
    m.add_function(wrap_pyfunction!(otel_span_context, m)?)?;
    m.add_function(wrap_pyfunction!(otel_record_exception, m)?)?;
    m.add_function(wrap_pyfunction!(otel_add_link, m)?)?;
    Ok(())
}
