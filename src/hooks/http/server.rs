//! The start every server hook shares (WSGI, ASGI): the head sampling decision for the extracted
//! parent, the record, its request attributes when it records, and the active-requests slot.

use pyo3::prelude::*;

use crate::hooks::span::Span;
use crate::agent::Agent;
use crate::context::propagation::Extracted;
use crate::context::TraceId;
use crate::metrics::active;
use crate::sampler::Sampler;
use crate::semconv as sc;
use crate::span::{Family, Scope, SpanKind, SpanRecord, Value};

/// A server span for a request whose propagation headers gave `extracted`; `fill` adds the
/// request's attributes (only called when the span records).
pub fn start<'py>(
    py: Python<'py>,
    agent: &Agent,
    scope: &Scope,
    extracted: Extracted,
    fill: impl FnOnce(&mut SpanRecord) -> PyResult<()>,
) -> PyResult<(Bound<'py, Span>, bool)> {
    let parent = extracted.parent.as_ref();
    let trace_id = parent.map_or_else(TraceId::random, |p| p.trace_id);
    let head = agent.sampler.decide(parent, trace_id);
    let recording = agent.records(head);
    let mut rec = SpanRecord::start(String::new(), SpanKind::Server, scope.clone(), parent, trace_id, head);
    rec.family = Family::Http;
    let mut slot = None;
    if recording {
        fill(&mut rec)?;
        if agent.metrics {
            let text = |k| match rec.get(k) {
                Some(Value::Str(s)) => s.as_str(),
                _ => "",
            };
            slot = Some(active::enter(text(sc::HTTP_REQUEST_METHOD), text(sc::URL_SCHEME)));
        }
    }
    Ok((Bound::new(py, Span::new(rec, extracted.baggage, recording, slot))?, recording))
}
