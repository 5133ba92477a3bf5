//! The start every server hook shares (WSGI, ASGI): the head sampling decision for the extracted
//! parent, the record, its request attributes when it records, and the active-requests slot.

use pyo3::prelude::*;

use crate::hooks::span::{Lite, Span};
use crate::agent::Agent;
use crate::context::propagation::Extracted;
use crate::context::{SpanContext, SpanId, TraceId};
use crate::metrics::cells::{self, ServerKey};
use crate::metrics::active;
use crate::sampler::Sampler;
use crate::semconv as sc;
use crate::span::{now_ns, Family, Head, Scope, SpanKind, SpanRecord, Text, Value};

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

/// A new server span's trace id (its remote parent's, or a new one), the head sampler's verdict,
/// and how much of it is recorded.
fn decide(agent: &Agent, parent: Option<&SpanContext>) -> (TraceId, Head, Recording) {
    let trace_id = parent.map_or_else(TraceId::random, |p| p.trace_id);
    let head = agent.sampler.decide(parent, trace_id);
    let recording = match head {
        _ if !agent.records(head) => Recording::No,
        Head::Sampled => Recording::Full,
        _ => Recording::Light,
    };
    (trace_id, head, recording)
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
    let (trace_id, head, recording) = decide(agent, parent);
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

/// The end of a lite server span (`Span::end`): true when it only counts in the metrics, which
/// is then done here, on the request thread (`metrics::cells`: no record, no queue); false when
/// it needs its record after all:
/// - it ended in error (a 5xx status; an exception makes the record when it is recorded), which
///   the error counter and keep-errors-and-slow read;
/// - it took at least the shortest slow threshold (the processing thread applies the exact,
///   per-route one, and counts it as slow, or keeps it);
/// - the filter cannot tell from its route and method alone whether it filters it (no route
///   while route globs are set, or attribute filters), so counts stay as the processing thread
///   gives them.
///
/// Below the shortest threshold no threshold applies, whatever the route: such a span is neither
/// slow nor kept, and its only trace is `http.server.request.duration`.
pub fn count_only(lite: &Lite, end_ns: u64) -> bool {
    let Some(settings) = crate::pipeline::settings() else { return false };
    let p = &settings.config.processing;
    if lite.status.is_some_and(|c| c >= 500) {
        return false;
    }
    let shortest = p.slow_routes.iter().map(|(_, d)| *d).fold(p.slow_threshold, std::cmp::min);
    if end_ns.saturating_sub(lite.start_ns) >= shortest.as_nanos() as u64 {
        return false;
    }
    // The filter is asked first, as the processing thread does for every span: it counts in
    // `ferrotel.spans.dropped` as filtered rather than sampled out.
    let Some(filtered) = crate::pipeline::filter().and_then(|f| f.filters_route(lite.route.as_deref(), &lite.method)) else { return false };
    if crate::agent::get().is_some_and(|a| a.metrics) {
        let key = ServerKey {
            method: &lite.method,
            status: lite.status,
            route: lite.route.as_deref(),
            protocol: lite.protocol.as_deref(),
            scheme: &lite.scheme,
        };
        cells::add_server_duration(&key, end_ns.saturating_sub(lite.start_ns) as f64 / 1e9);
    }
    crate::pipeline::note_dropped(filtered);
    true
}

/// The start of a server span as `start_split`, for a hook that gives the RED attributes as
/// values: a span the head sampler dropped keeps only a `Lite` state (no record unless it needs
/// one at its end: see `count_only`); a sampled one gets its record, with `fill_rest`.
pub fn start_lite<'py>(
    py: Python<'py>,
    agent: &Agent,
    scope: &Scope,
    extracted: Extracted,
    red: RedValues,
    fill_rest: impl FnOnce(&mut SpanRecord) -> PyResult<()>,
) -> PyResult<(Bound<'py, Span>, Recording)> {
    let parent = extracted.parent.as_ref();
    let (trace_id, head, recording) = decide(agent, parent);
    let slot = (recording != Recording::No && agent.metrics).then(|| active::enter(&red.method, &red.scheme));
    if recording == Recording::Light {
        let span_id = SpanId::random();
        let context = SpanContext { trace_id, span_id, flags: 0, trace_state: parent.and_then(|p| p.trace_state.clone()), remote: false };
        let lite = Lite {
            start_ns: now_ns(),
            parent_span_id: parent.map_or(SpanId::INVALID, |p| p.span_id),
            parent_remote: parent.is_some_and(|p| p.remote),
            head,
            scope: scope.clone(),
            method: red.method,
            method_original: red.method_original,
            scheme: red.scheme,
            protocol: red.protocol,
            status: None,
            route: None,
        };
        return Ok((Bound::new(py, Span::lite(context, extracted.baggage, lite, slot))?, recording));
    }
    let mut rec = SpanRecord::start(String::new(), SpanKind::Server, scope.clone(), parent, trace_id, head);
    rec.family = Family::Http;
    if recording == Recording::Full {
        rec.push(sc::HTTP_REQUEST_METHOD, red.method);
        if let Some(m) = red.method_original {
            rec.push(sc::HTTP_REQUEST_METHOD_ORIGINAL, m);
        }
        rec.push(sc::URL_SCHEME, red.scheme);
        if let Some(p) = red.protocol {
            rec.push(sc::NETWORK_PROTOCOL_VERSION, p);
        }
        fill_rest(&mut rec)?;
    }
    Ok((Bound::new(py, Span::new(rec, extracted.baggage, recording != Recording::No, slot))?, recording))
}

/// What the RED metrics read of a request, as `start_lite` takes it.
pub struct RedValues {
    /// `http.request.method` (`_OTHER` for an unknown method, given in `method_original`).
    pub method: Text,
    pub method_original: Option<Text>,
    pub scheme: Text,
    pub protocol: Option<Text>,
}

impl RedValues {
    /// From the request's method, scheme and protocol version as the server gave them.
    pub fn new(method: &str, scheme: &str, protocol: Option<&str>) -> Self {
        let (method, method_original) = match sc::KNOWN_METHODS.iter().find(|m| **m == method) {
            Some(known) => (Text::const_new(known), None),
            None => (Text::const_new("_OTHER"), Some(Text::new(method))),
        };
        RedValues {
            method,
            method_original,
            scheme: sc::known_or_owned(scheme, &sc::SCHEMES),
            protocol: protocol.map(|v| sc::known_or_owned(v, &sc::PROTOCOL_VERSIONS)),
        }
    }
}

/// Set `http.route` on the server span of the current request (framework hooks whose router is
/// only visible from Python: Django's resolver). A head-dropped span keeps its lite state.
pub fn set_current_route(py: Python<'_>, route: String) {
    let Some(span) = crate::hooks::current::get(py) else { return };
    let span = span.get();
    let mut route = Some(route);
    let lite = span.with_lite(|l| l.route = route.take().map(Text::from));
    if lite.is_none() {
        if let Some(route) = route {
            span.with(|rec| {
                if rec.kind == SpanKind::Server {
                    rec.set(sc::HTTP_ROUTE, Text::from(route));
                }
            });
        }
    }
}
