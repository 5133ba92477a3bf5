//! The generic span API Python code uses: start any span (manual, client, framework), make it
//! current, and write the propagation headers for an outgoing request. The OpenTelemetry API
//! bridge and the HTTP client hooks build on these.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::convert;
use super::current;
use super::span::Span;
use crate::agent;
use crate::context::propagation;
use crate::context::{SpanContext, SpanId, TraceId};
use crate::sampler::Sampler;
use crate::span::{Head, Link, Scope, SpanKind, SpanRecord};

/// OpenTelemetry API `SpanKind` values.
pub fn kind(k: u8) -> SpanKind {
    match k {
        1 => SpanKind::Server,
        2 => SpanKind::Client,
        3 => SpanKind::Producer,
        4 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// A remote parent given as `(trace_id_hex, span_id_hex, flags, trace_state, is_remote)`.
fn context_from_tuple(t: &Bound<'_, PyTuple>) -> Option<SpanContext> {
    let (trace, span, flags, state, remote): (String, String, u8, Option<String>, bool) = t.extract().ok()?;
    Some(SpanContext {
        trace_id: TraceId::from_hex(&trace).filter(TraceId::is_valid)?,
        span_id: SpanId::from_hex(&span).filter(SpanId::is_valid)?,
        flags: flags & 1,
        trace_state: state.filter(|s| !s.is_empty()),
        remote,
    })
}

/// The parent's context and baggage: an explicit `Span`, an explicit remote context tuple, the
/// current span (`parent` omitted), or none (`root=True`).
fn resolve_parent(py: Python<'_>, parent: Option<&Bound<'_, PyAny>>, root: bool) -> (Option<SpanContext>, Option<String>) {
    if root {
        return (None, None);
    }
    match parent.filter(|p| !p.is_none()) {
        Some(p) => {
            if let Ok(span) = p.cast::<Span>() {
                let s = span.get();
                (Some(s.context.clone()), s.baggage.clone())
            } else if let Ok(t) = p.cast::<PyTuple>() {
                (context_from_tuple(t), None)
            } else {
                (None, None)
            }
        }
        None => match current::get(py) {
            Some(span) => {
                let s = span.get();
                (Some(s.context.clone()), s.baggage.clone())
            }
            None => (None, None),
        },
    }
}

/// Start a span. Returns a handle whose `end()` finishes it; with the agent off, a handle that
/// records nothing.
#[pyfunction]
#[pyo3(signature = (name, kind = 0, scope = "ferrotel".to_string(), scope_version = None, parent = None, root = false, attributes = None, links = None, start_time_ns = None))]
#[allow(clippy::too_many_arguments)]
pub fn start_span(
    py: Python<'_>,
    name: String,
    kind: u8,
    scope: String,
    scope_version: Option<String>,
    parent: Option<Bound<'_, PyAny>>,
    root: bool,
    attributes: Option<Bound<'_, PyAny>>,
    links: Option<Bound<'_, PyAny>>,
    start_time_ns: Option<u64>,
) -> PyResult<Py<Span>> {
    let (parent_ctx, baggage) = resolve_parent(py, parent.as_ref(), root);
    let parent_ref = parent_ctx.as_ref();
    let trace_id = parent_ref.map_or_else(TraceId::random, |p| p.trace_id);
    let (head, recording) = match agent::get() {
        Some(a) => {
            let head = a.sampler.decide(parent_ref, trace_id);
            (head, a.records(head))
        }
        None => (Head::Dropped, false),
    };
    let scope = Scope { name: scope.into(), version: scope_version.map(Into::into) };
    let mut rec = SpanRecord::start(name, self::kind(kind), scope, parent_ref, trace_id, head);
    if let Some(t) = start_time_ns {
        rec.start_ns = t;
    }
    if recording {
        let l = super::span::limits();
        for (k, v) in convert::attributes(attributes.as_ref()) {
            rec.set_limited(k, v, l);
        }
        if let Some(links) = links.filter(|l| !l.is_none()) {
            for item in links.try_iter()?.flatten() {
                if let Ok((ctx, attrs)) = item.extract::<(Bound<'_, PyTuple>, Option<Bound<'_, PyAny>>)>() {
                    if let Some(c) = context_from_tuple(&ctx) {
                        rec.add_link_limited(Link { trace_id: c.trace_id, span_id: c.span_id, trace_state: c.trace_state, flags: c.flags, attributes: convert::attributes(attrs.as_ref()), dropped_attributes: 0 }, l);
                    }
                }
            }
        }
    }
    Py::new(py, Span::new(rec, baggage, recording, None))
}

/// Make `span` current in this context; returns the token for `reset_current`.
#[pyfunction]
pub fn set_current<'py>(py: Python<'py>, span: Bound<'py, Span>) -> PyResult<Option<Bound<'py, PyAny>>> {
    current::enter(py, &span)
}

#[pyfunction]
pub fn reset_current(py: Python<'_>, token: Option<Bound<'_, PyAny>>) {
    current::exit(py, token);
}

/// Propagation headers for an outgoing request whose parent is `span` (default: the current
/// span), per `OTEL_PROPAGATORS`: a list of `(header name, value)`. Empty without a span.
#[pyfunction]
#[pyo3(signature = (span = None))]
pub fn inject_headers(py: Python<'_>, span: Option<Bound<'_, Span>>) -> Vec<(&'static str, String)> {
    let Some(agent) = agent::get() else { return Vec::new() };
    let Some(span) = span.or_else(|| current::get(py)) else { return Vec::new() };
    let s = span.get();
    propagation::inject(&agent.propagators, &s.context, s.baggage.as_deref()).into_iter().map(|(h, v)| (h.name(), v)).collect()
}
