//! ASGI server spans, in Rust: one SERVER span per HTTP request of any ASGI 3 application.
//!
//! `AsgiMiddleware(app)` is an ASGI app. For an `http` scope it reads the request from the scope
//! (method, path, headers — one pass over the header list), starts the span, wraps `send` and
//! returns an `AsgiRequest`: a native awaitable that drives the app's coroutine step by step
//! (with `PyIter_Send` on the coroutine itself from 3.10 on: no `__await__` wrapper object, no
//! StopIteration for its return; through `__await__()` otherwise). No
//! Python coroutine frame is added: the awaitable makes the span current (ferrotel's ContextVar)
//! on its first step, in the task that awaits it, and restores the previous value when the app
//! returns, so every `await`, task and thread-pool call of the request sees the span, and
//! concurrent requests (each its own asyncio task) never see each other's. `websocket` and
//! `lifespan` scopes, and scopes already traced by an outer ferrotel wrapper, pass straight
//! through (the app's own coroutine is returned).
//!
//! The `send` wrapper records the status and the route template at `http.response.start`
//! (Starlette/FastAPI leave the matched route in `scope["route"]`; mounts extend
//! `scope["root_path"]`), and the time of the last body chunk. The span ends when the app
//! returns — so an exception Starlette re-raises after sending its 500 page is still recorded —
//! with its end time set to the last body chunk, so streamed responses are timed to the end of
//! the body and background tasks do not count as request time.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyException, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyString, PyTuple};

use crate::hooks::{capi, current};
use crate::hooks::guard::quietly;
use crate::hooks::span::Span;
use crate::agent::{self, Agent};
use crate::context::propagation::{self, Header};
use crate::semconv as sc;
use crate::span::{now_ns, Scope, SpanKind, SpanRecord, Value};

/// The UTF-8 text of a Python string, borrowed (owned only for strings with lone surrogates).
fn text<'a>(s: &'a Bound<'_, PyString>) -> std::borrow::Cow<'a, str> {
    match crate::hooks::capi::utf8(s) {
        Some(t) => t,
        None => std::borrow::Cow::Owned(s.to_string_lossy().into_owned()),
    }
}

/// `scope[key]` when it is a str.
fn get_str<'py>(scope: &Bound<'py, PyDict>, key: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyString>>> {
    Ok(scope.get_item(key)?.and_then(|v| v.cast_into::<PyString>().ok()))
}

/// `callable(*args)` by vectorcall where the interpreter exports it (3.11+): no argument tuple
/// (pyo3's `call1` builds one under the 3.9 stable ABI).
fn call<'py>(callable: &Bound<'py, PyAny>, args: &[&Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    let mut ptrs = [std::ptr::null_mut(); 3];
    let n = args.len().min(ptrs.len());
    for (slot, arg) in ptrs.iter_mut().zip(args) {
        *slot = arg.as_ptr();
    }
    // SAFETY: `ptrs[..n]` are live references borrowed from `args` for the call; no keywords.
    unsafe { capi::vectorcall(callable.py(), callable.as_ptr(), ptrs.as_ptr(), n, std::ptr::null_mut()) }
}

/// The scope key under which the request's span is kept: marks the scope as traced (nested
/// wrappers pass through) and lets framework hooks find the server span.
const SCOPE_KEY: &str = "ferrotel.span";

/// ASGI middleware: `AsgiMiddleware(app)` is an ASGI 3 app that traces every HTTP request to `app`.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct AsgiMiddleware {
    app: Py<PyAny>,
    scope: Scope,
    /// The excluded-URL rule (the compiled regex's `search`), given the request's full URL.
    excluded: Option<Py<PyAny>>,
}

#[pymethods]
impl AsgiMiddleware {
    #[new]
    /// `excluded`: called with each request's full URL; a true answer leaves it untraced.
    #[pyo3(signature = (app, scope = "ferrotel.asgi".to_string(), excluded = None))]
    fn new(py: Python<'_>, app: Py<PyAny>, scope: String, excluded: Option<Py<PyAny>>) -> Self {
        let excluded = excluded.filter(|e| !e.is_none(py));
        AsgiMiddleware { app, scope: Scope { name: scope.into(), version: Some(env!("CARGO_PKG_VERSION").into()) }, excluded }
    }

    fn __call__(&self, py: Python<'_>, scope: Bound<'_, PyAny>, receive: Bound<'_, PyAny>, send: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let app = self.app.bind(py);
        let begun = match agent::get() {
            Some(agent) => quietly("the ASGI hook", || begin(py, agent, &scope, &send, &self.scope, self.excluded.as_ref())).flatten(),
            None => None,
        };
        let Some((span, wrapped_send)) = begun else {
            return Ok(app.call1((scope, receive, send))?.unbind());
        };
        match call(app, &[&scope, &receive, wrapped_send.as_any()]) {
            Ok(coro) => Ok(Py::new(py, AsgiRequest { coro: coro.unbind(), iter: None, direct: false, span: span.unbind(), send: wrapped_send.unbind(), token: None, done: false })?.into_any()),
            Err(err) => {
                // The app raised before returning an awaitable (not an ASGI 3 coroutine function).
                quietly("the ASGI hook", || {
                    complete(py, span.get(), wrapped_send.get(), Some(&err));
                    Ok(())
                });
                Err(err)
            }
        }
    }

    /// The wrapped application.
    #[getter]
    fn app(&self, py: Python<'_>) -> Py<PyAny> {
        self.app.clone_ref(py)
    }
}

/// `Some((span, send wrapper))` when this call is an HTTP request to trace; `None` to pass through.
fn begin<'py>(
    py: Python<'py>,
    agent: &Agent,
    scope: &Bound<'py, PyAny>,
    send: &Bound<'py, PyAny>,
    span_scope: &Scope,
    excluded: Option<&Py<PyAny>>,
) -> PyResult<Option<(Bound<'py, Span>, Bound<'py, AsgiSend>)>> {
    let Ok(scope) = scope.cast::<PyDict>() else { return Ok(None) };
    let http = intern!(py, "http");
    match scope.get_item(intern!(py, "type"))? {
        Some(t) if t.is(http) || t.eq(http)? => {} // servers pass the interned literal
        _ => return Ok(None), // websocket, lifespan, anything else: untraced
    }
    let key = intern!(py, SCOPE_KEY);
    if scope.contains(key)? {
        return Ok(None); // an outer ferrotel wrapper already traces this request
    }
    if let Some(excluded) = excluded {
        if excluded.bind(py).call1((asgi_url(scope)?,))?.is_truthy()? {
            // Excluded: untraced, and marked so that inner ferrotel wrappers pass it through too
            // (and FastAPI's own telemetry, below, makes no span for it either).
            scope.set_item(key, py.None())?;
            let fastapi = intern!(py, "fastapi.telemetry");
            if !scope.contains(fastapi)? {
                scope.set_item(fastapi, py.None())?;
            }
            return Ok(None);
        }
    }
    let headers = read_headers(py, agent, scope)?;
    let extracted = propagation::extract(&agent.propagators, |h| headers.propagation.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_str()));
    let (span, recording) = super::server::start(py, agent, span_scope, extracted, |rec| request_attributes(scope, headers, rec))?;
    scope.set_item(key, &span)?;
    // FastAPI 0.16x ships its own OpenTelemetry middleware and decides per request whether an
    // OpenTelemetry provider is configured (~30k instructions, measured). This key is its own
    // "not here" marker: set by a wrapper outside the app (uvicorn, hypercorn), the request keeps
    // one SERVER span -- also when the app configured an SDK of its own -- and skips that check.
    let fastapi = intern!(py, "fastapi.telemetry");
    if !scope.contains(fastapi)? {
        scope.set_item(fastapi, py.None())?;
    }
    let wrapped = AsgiSend {
        inner: send.clone().unbind(),
        span: span.clone().unbind(),
        scope: recording.then(|| scope.clone().unbind()),
        capture: recording && !agent.capture_response_headers.is_empty(),
        response_end_ns: AtomicU64::new(0),
        started: std::sync::atomic::AtomicBool::new(false),
    };
    Ok(Some((span, Bound::new(py, wrapped)?)))
}

/// The request headers a span needs, found in one pass over `scope["headers"]`.
#[derive(Default)]
struct RequestHeaders {
    propagation: Vec<(Header, String)>,
    host: Option<String>,
    user_agent: Option<String>,
    forwarded: Option<String>,
    x_forwarded_for: Option<String>,
    /// Every header `(name, value)` when request headers are captured (matched later).
    captured: Vec<(String, String)>,
}

fn push_joined(slot: &mut Option<String>, value: String) {
    match slot {
        Some(v) => {
            v.push(',');
            v.push_str(&value);
        }
        None => *slot = Some(value),
    }
}

fn read_headers(py: Python<'_>, agent: &Agent, scope: &Bound<'_, PyDict>) -> PyResult<RequestHeaders> {
    let mut out = RequestHeaders::default();
    let capture = super::headers::wanted(agent, super::headers::Kind::ServerRequest);
    let Some(headers) = scope.get_item(intern!(py, "headers"))? else { return Ok(out) };
    for item in headers.try_iter()? {
        let item = item?;
        let (name, value) = match item.cast::<PyTuple>() {
            Ok(t) if t.len() == 2 => (t.get_item(0)?, t.get_item(1)?),
            _ => (item.get_item(0)?, item.get_item(1)?),
        };
        let (Ok(name), Ok(value)) = (name.cast::<PyBytes>(), value.cast::<PyBytes>()) else { continue };
        let name = name.as_bytes();
        let text = || match std::str::from_utf8(value.as_bytes()) {
            Ok(v) => v.to_owned(),
            Err(_) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        };
        match name {
            b"host" => out.host = Some(text()),
            b"user-agent" => out.user_agent = Some(text()),
            b"forwarded" => push_joined(&mut out.forwarded, text()),
            b"x-forwarded-for" => push_joined(&mut out.x_forwarded_for, text()),
            _ => {}
        }
        if let Some(h) = agent.inbound_headers.iter().find(|h| h.name().as_bytes() == name) {
            match out.propagation.iter_mut().find(|(k, _)| k == h) {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(&text());
                }
                None => out.propagation.push((*h, text())),
            }
        }
        if capture {
            out.captured.push((String::from_utf8_lossy(name).into_owned(), text()));
        }
    }
    Ok(out)
}

/// The request's full URL as upstream's excluded-URL rule sees it:
/// `scheme://host[:port]/root/path[?query]`.
fn asgi_url(scope: &Bound<'_, PyDict>) -> PyResult<String> {
    let py = scope.py();
    let scheme = get_str(scope, intern!(py, "scheme"))?.map(|s| text(&s).into_owned()).unwrap_or_else(|| "http".into());
    let mut host = None;
    if let Some(headers) = scope.get_item(intern!(py, "headers"))? {
        for item in headers.try_iter()? {
            let item = item?;
            let (Ok(name), Ok(value)) = (item.get_item(0)?.cast_into::<PyBytes>(), item.get_item(1)?.cast_into::<PyBytes>()) else { continue };
            if name.as_bytes().eq_ignore_ascii_case(b"host") {
                host = Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
                break;
            }
        }
    }
    let host = match host {
        Some(h) => h,
        None => match address(scope, intern!(py, "server"))? {
            Some((a, Some(p))) if sc::default_port(&scheme).map(i64::from) != Some(p) => format!("{a}:{p}"),
            Some((a, _)) => a,
            None => String::new(),
        },
    };
    let root = get_str(scope, intern!(py, "root_path"))?.map(|s| text(&s).into_owned()).unwrap_or_default();
    let path = get_str(scope, intern!(py, "path"))?.map(|s| text(&s).into_owned()).unwrap_or_default();
    let path = if !root.is_empty() && !path.starts_with(&root) { format!("{root}{path}") } else { path };
    let mut url = format!("{scheme}://{host}{path}");
    if let Some(q) = scope.get_item(intern!(py, "query_string"))? {
        if let Ok(q) = q.cast::<PyBytes>() {
            if !q.as_bytes().is_empty() {
                url.push('?');
                url.push_str(&String::from_utf8_lossy(q.as_bytes()));
            }
        }
    }
    Ok(url)
}

/// `(host, port)` from a scope's `server` / `client` entry.
fn address(scope: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> PyResult<Option<(String, Option<i64>)>> {
    let Some(v) = scope.get_item(key)?.filter(|v| !v.is_none()) else { return Ok(None) };
    let (host, port) = match v.cast::<PyTuple>() {
        Ok(t) if t.len() == 2 => (t.get_item(0)?, t.get_item(1)?),
        _ => (v.get_item(0)?, v.get_item(1)?),
    };
    let Ok(host) = host.cast::<PyString>() else { return Ok(None) };
    Ok(Some((text(host).into_owned(), port.extract::<i64>().ok())))
}

fn request_attributes(scope: &Bound<'_, PyDict>, headers: RequestHeaders, rec: &mut SpanRecord) -> PyResult<()> {
    let py = scope.py();
    match get_str(scope, intern!(py, "method"))? {
        Some(m) => sc::set_method(rec, &text(&m)),
        None => sc::set_method(rec, "GET"),
    }
    // ASGI's `path` includes `root_path` (servers before the 2023 spec change left it out).
    let root = get_str(scope, intern!(py, "root_path"))?;
    let root = root.as_ref().map(text).unwrap_or_default();
    let path = get_str(scope, intern!(py, "path"))?;
    let path = path.as_ref().map(text).unwrap_or_default();
    let full = if path.is_empty() && root.is_empty() {
        "/".to_string()
    } else if !root.is_empty() && !path.starts_with(&*root) {
        format!("{root}{path}")
    } else {
        path.into_owned()
    };
    rec.set(sc::URL_PATH, full);
    if let Some(q) = scope.get_item(intern!(py, "query_string"))? {
        if let Ok(q) = q.cast::<PyBytes>() {
            if !q.as_bytes().is_empty() {
                rec.set(sc::URL_QUERY, String::from_utf8_lossy(q.as_bytes()).into_owned());
            }
        }
    }
    let scheme = get_str(scope, intern!(py, "scheme"))?;
    let scheme = scheme.as_ref().map(text).unwrap_or(std::borrow::Cow::Borrowed("http"));
    let (server, port) = match headers.host.as_deref() {
        Some(host) => {
            let (a, p) = sc::split_host(host);
            (Some(a.to_string()), p.or_else(|| sc::default_port(&scheme)).map(i64::from))
        }
        None => match address(scope, intern!(py, "server"))? {
            Some((a, p)) => (Some(a), p),
            None => (None, None),
        },
    };
    if let Some(a) = server.filter(|a| !a.is_empty()) {
        rec.set(sc::SERVER_ADDRESS, a);
        if let Some(p) = port {
            rec.set(sc::SERVER_PORT, p);
        }
    }
    rec.set(sc::URL_SCHEME, scheme.into_owned());
    let client = match sc::forwarded_client(headers.forwarded.as_deref(), headers.x_forwarded_for.as_deref()) {
        Some(c) => Some(c),
        None => address(scope, intern!(py, "client"))?.map(|(a, _)| a),
    };
    if let Some(c) = client.filter(|c| !c.is_empty()) {
        rec.set(sc::CLIENT_ADDRESS, c);
    }
    if let Some(ua) = headers.user_agent {
        rec.set(sc::USER_AGENT_ORIGINAL, ua);
    }
    if let Some(v) = get_str(scope, intern!(py, "http_version"))? {
        let v = text(&v);
        if !v.is_empty() {
            rec.set(sc::NETWORK_PROTOCOL_VERSION, v.into_owned());
        }
    }
    if !headers.captured.is_empty() {
        super::headers::capture(py, rec, super::headers::Kind::ServerRequest, headers.captured.iter().map(|(n, v)| (n.as_str(), v.clone())));
    }
    Ok(())
}

/// The route template of a Starlette/FastAPI request, once the router has matched: the matched
/// route's `path_format` under the mount prefixes the request went through (`root_path`).
fn starlette_route(scope: &Bound<'_, PyDict>) -> PyResult<Option<String>> {
    let py = scope.py();
    let Some(route) = scope.get_item(intern!(py, "route"))? else { return Ok(None) };
    let Some(format) = route.getattr_opt(intern!(py, "path_format"))? else { return Ok(None) };
    let Ok(format) = format.cast::<PyString>() else { return Ok(None) };
    let format = text(format);
    let root = get_str(scope, intern!(py, "root_path"))?;
    let root = root.as_ref().map(text).unwrap_or_default();
    let root = root.trim_end_matches('/');
    // A Mount left as the final route (its app has no router of its own: static files, a
    // plain ASGI app): `root_path` already ends with the mount's prefix.
    if format.ends_with("/{path}") && route.hasattr(intern!(py, "routes"))? {
        return Ok(Some(format!("{root}/{{path}}")));
    }
    Ok(Some(format!("{root}{format}")))
}

/// Close an ASGI server span: status code rules and name; end time at the last body chunk.
fn finish_at(end_ns: u64) -> impl FnOnce(&mut SpanRecord) {
    move |rec| {
        if end_ns != 0 {
            rec.end_ns = end_ns.clamp(rec.start_ns, rec.end_ns);
        }
        let status = match rec.get(sc::HTTP_RESPONSE_STATUS_CODE) {
            Some(Value::Int(c)) => Some(*c),
            _ => None,
        };
        sc::finish_server_span(rec, status);
    }
}

/// The app has returned (`err` None) or raised: record the failure, end the span.
fn complete(py: Python<'_>, span: &Span, send: &AsgiSend, err: Option<&PyErr>) {
    if let Some(err) = err {
        // Cancellation and exits (CancelledError, GeneratorExit, ...) are not application errors.
        if err.is_instance_of::<PyException>(py) {
            span.record_exception(err.value(py).as_any());
            if !send.started.load(Ordering::Relaxed) {
                // No response started: the server answers 500 itself.
                span.with(|rec| rec.set(sc::HTTP_RESPONSE_STATUS_CODE, 500i64));
            }
        }
    }
    span.end(finish_at(send.response_end_ns.load(Ordering::Relaxed)));
}

/// The `send` the app receives: observes the response messages, then calls the server's.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct AsgiSend {
    inner: Py<PyAny>,
    span: Py<Span>,
    /// The request scope (to read the route at response start); None when not recording.
    scope: Option<Py<PyDict>>,
    /// Response headers are to be captured.
    capture: bool,
    /// When the last body chunk was handed to the server (0: not yet).
    response_end_ns: AtomicU64,
    started: std::sync::atomic::AtomicBool,
}

#[pymethods]
impl AsgiSend {
    fn __call__(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if self.scope.is_some() {
            quietly("the ASGI send hook", || self.observe(py, &message));
        }
        Ok(call(self.inner.bind(py), &[&message])?.unbind())
    }
}

impl AsgiSend {
    fn observe(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(message) = message.cast::<PyDict>() else { return Ok(()) };
        let Some(kind) = message.get_item(intern!(py, "type"))? else { return Ok(()) };
        // One UTF-8 view and a Rust match: no rich comparison per candidate.
        let Ok(kind) = kind.cast::<PyString>() else { return Ok(()) };
        let Some(kind) = capi::utf8(kind) else { return Ok(()) };
        let kind: &str = &kind;
        if kind == "http.response.body" {
            let more = match message.get_item(intern!(py, "more_body"))? {
                Some(m) => m.is_truthy()?,
                None => false,
            };
            if !more {
                let _ = self.response_end_ns.compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
            }
        } else if kind == "http.response.start" {
            self.started.store(true, Ordering::Relaxed);
            let status = message.get_item(intern!(py, "status"))?.and_then(|s| s.extract::<i64>().ok());
            let route = match &self.scope {
                Some(scope) => starlette_route(scope.bind(py))?,
                None => None,
            };
            let headers = if self.capture { message.get_item(intern!(py, "headers"))? } else { None };
            self.span
                .get()
                .with(|rec| {
                    if let Some(c) = status {
                        rec.set(sc::HTTP_RESPONSE_STATUS_CODE, c);
                    }
                    if let Some(r) = route {
                        if rec.get(sc::HTTP_ROUTE).is_none() {
                            rec.set(sc::HTTP_ROUTE, r);
                        }
                    }
                    match headers {
                        Some(h) => capture_response_headers(&h, rec),
                        None => Ok(()),
                    }
                })
                .unwrap_or(Ok(()))?;
        } else if kind == "http.response.pathsend" {
            let _ = self.response_end_ns.compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE` over ASGI's `[(name, value)]` bytes.
fn capture_response_headers(headers: &Bound<'_, PyAny>, rec: &mut SpanRecord) -> PyResult<()> {
    let pairs = super::headers::pairs_of(headers)?;
    super::headers::capture(headers.py(), rec, super::headers::Kind::ServerResponse, pairs.iter().map(|(n, v)| (n.as_str(), v.clone())));
    Ok(())
}

/// The awaitable one traced request returns: a coroutine (it has `__await__`, `send`, `throw`,
/// `close`, so `asyncio.iscoroutine` accepts it) that delegates every step to the app's own.
#[pyclass(module = "ferrotel._native")]
pub struct AsgiRequest {
    coro: Py<PyAny>,
    /// `coro.__await__()`, taken on the first step (unless `direct`).
    iter: Option<Py<PyIterator>>,
    /// `coro` is a native coroutine stepped by `PyIter_Send` itself (3.10+): no `__await__`
    /// wrapper object, and its return is not a StopIteration (decided on the first step).
    direct: bool,
    span: Py<Span>,
    send: Py<AsgiSend>,
    /// The ContextVar token that restores the previous current span.
    token: Option<Py<PyAny>>,
    done: bool,
}

impl AsgiRequest {
    /// On the first step: make the span current in the awaiting task's context, get the iterator.
    fn iterator<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        if let Some(it) = &self.iter {
            return Ok(it.bind(py).clone());
        }
        if self.token.is_none() {
            self.token = quietly("the current-span store", || current::enter(py, self.span.bind(py))).flatten().map(Bound::unbind);
        }
        let coro = self.coro.bind(py);
        let it = match coro.getattr_opt(intern!(py, "__await__"))? {
            Some(await_) => await_.call0()?,
            None => coro.clone(), // a generator-based coroutine
        };
        let it = it.try_iter()?;
        self.iter = Some(it.clone().unbind());
        Ok(it)
    }

    /// True when the app's coroutine is stepped directly (`direct`); on the first step, makes the
    /// span current and decides.
    fn direct(&mut self, py: Python<'_>) -> bool {
        if self.direct {
            return true;
        }
        if self.iter.is_some() || self.done || !capi::has_iter_send() {
            return false;
        }
        let Some(coroutine) = coroutine_type(py) else { return false };
        if !self.coro.bind(py).get_type().is(coroutine) {
            return false; // another awaitable: through its __await__ iterator
        }
        self.token = quietly("the current-span store", || current::enter(py, self.span.bind(py))).flatten().map(Bound::unbind);
        self.direct = true;
        true
    }

    /// One direct step of the app's coroutine with `value` sent in.
    fn step_direct(&mut self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        match capi::iter_send(self.coro.bind(py), value) {
            Some(capi::Sent::Yielded(v)) => Ok(Some(v.unbind())),
            Some(capi::Sent::Returned(v)) => {
                self.finish(py, None);
                if v.is_none() {
                    Ok(None) // NULL without an exception: the awaiting frame takes None
                } else {
                    Err(PyStopIteration::new_err((v.unbind(),)))
                }
            }
            Some(capi::Sent::Raised(err)) => {
                self.finish(py, Some(&err));
                Err(err)
            }
            None => Err(PyException::new_err("PyIter_Send vanished")), // unreachable: checked in direct()
        }
    }

    /// The app finished (`err` None), raised, or was closed: end the span, restore the context.
    fn finish(&mut self, py: Python<'_>, err: Option<&PyErr>) {
        if self.done {
            return;
        }
        self.done = true;
        quietly("the ASGI hook", || {
            complete(py, self.span.get(), self.send.get(), err);
            Ok(())
        });
        if let Some(token) = self.token.take() {
            current::exit(py, Some(token.into_bound(py)));
        }
    }

    /// The result of a `send`/`throw` delegated to the app: a StopIteration ends the request.
    fn settle(&mut self, py: Python<'_>, result: PyResult<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        match result {
            Ok(v) => Ok(v.unbind()),
            Err(err) if err.is_instance_of::<PyStopIteration>(py) => {
                self.finish(py, None);
                Err(err)
            }
            Err(err) => {
                self.finish(py, Some(&err));
                Err(err)
            }
        }
    }
}

#[pymethods]
impl AsgiRequest {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done {
            return Ok(None);
        }
        if self.direct(py) {
            return self.step_direct(py, &py.None().into_bound(py));
        }
        let step = match self.iterator(py) {
            Ok(mut it) => it.next(),
            Err(e) => Some(Err(e)),
        };
        match step {
            Some(Ok(v)) => Ok(Some(v.unbind())),
            None => {
                self.finish(py, None);
                Ok(None)
            }
            Some(Err(err)) => {
                self.finish(py, Some(&err));
                Err(err)
            }
        }
    }

    fn send(&mut self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if value.is_none() {
            return match self.__next__(py)? {
                Some(v) => Ok(v),
                None => Err(PyStopIteration::new_err(())),
            };
        }
        if self.done {
            return Err(PyStopIteration::new_err(()));
        }
        if self.direct(py) {
            return match self.step_direct(py, &value)? {
                Some(v) => Ok(v),
                None => Err(PyStopIteration::new_err(())),
            };
        }
        let result = match self.iterator(py) {
            Ok(it) => it.call_method1(intern!(py, "send"), (value,)),
            Err(e) => Err(e),
        };
        self.settle(py, result)
    }

    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(&mut self, py: Python<'_>, typ: Bound<'_, PyAny>, val: Option<Bound<'_, PyAny>>, tb: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let stepping = match &self.iter {
            Some(it) => Some(it.bind(py).clone().into_any()),
            None if self.direct => Some(self.coro.bind(py).clone()),
            None => None,
        };
        let result = match (stepping, self.done) {
            (Some(it), false) => {
                let name = intern!(py, "throw");
                match (val, tb) {
                    (None, None) => it.call_method1(name, (typ,)),
                    (Some(v), None) => it.call_method1(name, (typ, v)),
                    (v, Some(t)) => it.call_method1(name, (typ, v, t)),
                }
            }
            // Not started (or already finished): raise it here, as a fresh coroutine would.
            _ => {
                let err = if typ.is_instance_of::<pyo3::types::PyType>() {
                    match val {
                        Some(v) if !v.is_none() => PyErr::from_value(typ.call1((v,))?),
                        _ => PyErr::from_value(typ.call0()?),
                    }
                } else {
                    PyErr::from_value(typ)
                };
                self.close(py)?;
                return Err(err);
            }
        };
        self.settle(py, result)
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        let closed = match &self.iter {
            Some(it) => it.bind(py).call_method0(intern!(py, "close")).map(drop),
            None => match self.coro.bind(py).getattr_opt(intern!(py, "close"))? {
                Some(close) => close.call0().map(drop),
                None => Ok(()),
            },
        };
        self.finish(py, closed.as_ref().err());
        closed
    }
}

impl Drop for AsgiRequest {
    fn drop(&mut self) {
        if !self.done {
            // Never awaited to the end: end the span with what it has.
            let send = self.send.get();
            self.span.get().end(finish_at(send.response_end_ns.load(Ordering::Relaxed)));
        }
    }
}

/// `types.CoroutineType`, the type of `async def` functions' coroutines.
fn coroutine_type(py: Python<'_>) -> Option<&Bound<'_, pyo3::types::PyType>> {
    static TYPE: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();
    TYPE.get_or_try_init(py, || -> PyResult<_> { Ok(py.import("types")?.getattr("CoroutineType")?.cast_into::<pyo3::types::PyType>()?.unbind()) })
        .ok()
        .map(|t| t.bind(py))
}

/// Set `http.route` on the server span of the current request (framework hooks whose router
/// is only visible from Python call this, e.g. Django's resolver).
pub fn set_server_route(py: Python<'_>, route: String) {
    if let Some(span) = current::get(py) {
        span.get().with(|rec| {
            if rec.kind == SpanKind::Server {
                rec.set(sc::HTTP_ROUTE, route);
            }
        });
    }
}

/// Registered by `_native`'s module init.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AsgiMiddleware>()?;
    m.add_class::<AsgiSend>()?;
    m.add_class::<AsgiRequest>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_repeated_headers() {
        let mut slot = None;
        push_joined(&mut slot, "a".into());
        push_joined(&mut slot, "b".into());
        assert_eq!(slot.as_deref(), Some("a,b"));
    }
}
