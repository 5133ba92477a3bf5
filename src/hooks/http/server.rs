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
use crate::span::{Family, Head, Scope, SpanKind, SpanRecord, Value};

/// How much of a server span is recorded while the request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recording {
    /// Nothing (the span only carries the trace context).
    No,
    /// The head sampler dropped it, but metrics (or the tail half of keep-errors-and-slow) need
    /// it: only what the RED metrics read (method, scheme, protocol version; the hook adds route
    /// and status). The hook fills in the rest when the request ends, if the span turns out to
    /// be exported after all (`late_fill_needed`).
    Light,
    /// Sampled: every attribute.
    Full,
}

/// A server span for a request whose propagation headers gave `extracted`; `fill` adds the
/// request's attributes (only called when the span records).
pub fn start<'py>(
    py: Python<'py>,
    agent: &Agent,
    scope: &Scope,
    extracted: Extracted,
    fill: impl FnOnce(&mut SpanRecord) -> PyResult<()>,
) -> PyResult<(Bound<'py, Span>, bool)> {
    let (span, recording) = start_split(py, agent, scope, extracted, fill, |_| Ok(()))?;
    Ok((span, recording != Recording::No))
}

/// As `start`, with the attributes in two parts: `fill_red` (what the RED metrics and the
/// active-requests gauge read: method, scheme, protocol version) for every recorded span, and
/// `fill_rest` only for sampled spans. A span the head sampler dropped costs the request thread
/// only the first part (`Recording::Light`).
pub fn start_split<'py>(
    py: Python<'py>,
    agent: &Agent,
    scope: &Scope,
    extracted: Extracted,
    fill_red: impl FnOnce(&mut SpanRecord) -> PyResult<()>,
    fill_rest: impl FnOnce(&mut SpanRecord) -> PyResult<()>,
) -> PyResult<(Bound<'py, Span>, Recording)> {
    let parent = extracted.parent.as_ref();
    let trace_id = parent.map_or_else(TraceId::random, |p| p.trace_id);
    let head = agent.sampler.decide(parent, trace_id);
    let recording = match head {
        _ if !agent.records(head) => Recording::No,
        Head::Sampled => Recording::Full,
        _ => Recording::Light,
    };
    let mut rec = SpanRecord::start(String::new(), SpanKind::Server, scope.clone(), parent, trace_id, head);
    rec.family = Family::Http;
    let mut slot = None;
    if recording != Recording::No {
        fill_red(&mut rec)?;
        if recording == Recording::Full {
            fill_rest(&mut rec)?;
        }
        if agent.metrics {
            let text = |k| match rec.get(k) {
                Some(Value::Str(s)) => s.as_str(),
                _ => "",
            };
            slot = Some(active::enter(text(sc::HTTP_REQUEST_METHOD), text(sc::URL_SCHEME)));
        }
    }
    Ok((Bound::new(py, Span::new(rec, extracted.baggage, recording != Recording::No, slot))?, recording))
}

/// Whether a `Recording::Light` server span that just ended (status and error rules applied)
/// needs the attributes it skipped:
/// - keep-errors-and-slow may export it: its head decision was a trace-id ratio, and it ended in
///   error or took at least the shortest slow threshold (the export thread applies the exact,
///   per-route one);
/// - it has no route while per-route slow thresholds are configured: the threshold is then
///   matched against `url.path`, which the slow-requests metric needs.
pub fn late_fill_needed(rec: &SpanRecord) -> bool {
    let Some(settings) = crate::pipeline::settings() else { return false };
    let p = &settings.config.processing;
    if rec.head == Head::RatioDropped && p.keep_errors_and_slow {
        if crate::processors::errors::is_error(rec) {
            return true;
        }
        let shortest = p.slow_routes.iter().map(|(_, d)| *d).fold(p.slow_threshold, std::cmp::min);
        if rec.end_ns.saturating_sub(rec.start_ns) >= shortest.as_nanos() as u64 {
            return true;
        }
    }
    !p.slow_routes.is_empty() && rec.get(sc::HTTP_ROUTE).is_none()
}
