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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::{PyException, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyString, PyTuple};

use crate::hooks::{capi, current};
use crate::hooks::guard::quietly;
use crate::hooks::span::Span;
use crate::agent::{self, Agent};
use crate::context::propagation::{self, Header};
use crate::semconv as sc;
use crate::span::{now_ns, Scope, SpanKind, SpanRecord, Text, Value};

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

/// The scope's and messages' keys, interned once (a server's scope holds these very objects:
/// string literals that are identifiers are interned, so each look-up matches by address).
struct Keys {
    type_: Py<PyString>,
    method: Py<PyString>,
    path: Py<PyString>,
    root_path: Py<PyString>,
    query_string: Py<PyString>,
    scheme: Py<PyString>,
    headers: Py<PyString>,
    http_version: Py<PyString>,
    client: Py<PyString>,
    server: Py<PyString>,
    span: Py<PyString>,
    telemetry: Py<PyString>,
    http: Py<PyString>,
}

fn keys(py: Python<'_>) -> &Keys {
    static KEYS: pyo3::sync::PyOnceLock<Keys> = pyo3::sync::PyOnceLock::new();
    KEYS.get_or_init(py, || {
        let k = |s: &str| PyString::intern(py, s).unbind();
        Keys {
            type_: k("type"),
            method: k("method"),
            path: k("path"),
            root_path: k("root_path"),
            query_string: k("query_string"),
            scheme: k("scheme"),
            headers: k("headers"),
            http_version: k("http_version"),
            client: k("client"),
            server: k("server"),
            span: k(SCOPE_KEY),
            telemetry: k("fastapi.telemetry"),
            http: k("http"),
        }
    })
}

/// What a span reads from the request scope.
#[derive(Default)]
struct ScopeView<'py> {
    type_: Option<Bound<'py, PyAny>>,
    method: Option<Bound<'py, PyAny>>,
    path: Option<Bound<'py, PyAny>>,
    root_path: Option<Bound<'py, PyAny>>,
    query_string: Option<Bound<'py, PyAny>>,
    scheme: Option<Bound<'py, PyAny>>,
    headers: Option<Bound<'py, PyAny>>,
    http_version: Option<Bound<'py, PyAny>>,
    client: Option<Bound<'py, PyAny>>,
    /// `scope["ferrotel.span"]` is there.
    traced: bool,
}

impl<'py> ScopeView<'py> {
    /// The scope's type and whether it is marked (hashed look-ups: measured cheaper than one
    /// `PyDict_Next` pass over a ~13-key scope matching keys by address, which cost ~1.4k
    /// instructions against ~1.1k).
    fn read(scope: &Bound<'py, PyDict>, k: &Keys) -> PyResult<Self> {
        let py = scope.py();
        Ok(ScopeView {
            type_: scope.get_item(k.type_.bind(py))?,
            traced: scope.contains(k.span.bind(py))?,
            ..ScopeView::default()
        })
    }

    /// The fields a span reads.
    fn complete(&mut self, scope: &Bound<'py, PyDict>, k: &Keys) -> PyResult<()> {
        let py = scope.py();
        for (slot, key) in [
            (&mut self.method, &k.method),
            (&mut self.path, &k.path),
            (&mut self.root_path, &k.root_path),
            (&mut self.query_string, &k.query_string),
            (&mut self.scheme, &k.scheme),
            (&mut self.headers, &k.headers),
            (&mut self.http_version, &k.http_version),
            (&mut self.client, &k.client),
        ] {
            *slot = scope.get_item(key.bind(py))?;
        }
        Ok(())
    }
}

/// `value` when it is a str.
fn as_str<'a, 'py>(value: &'a Option<Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyString>> {
    value.as_ref().and_then(|v| v.cast::<PyString>().ok())
}

/// The name of an instrumentation scope, borrowed for the hooks' own names (no copy per span).
fn scope_name(name: String) -> crate::span::Key {
    for known in ["ferrotel.asgi", "ferrotel.fastapi", "ferrotel.starlette"] {
        if name == known {
            return std::borrow::Cow::Borrowed(known);
        }
    }
    std::borrow::Cow::Owned(name)
}

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
        AsgiMiddleware { app, scope: Scope { name: scope_name(scope), version: Some(env!("CARGO_PKG_VERSION").into()) }, excluded }
    }

    fn __call__(&self, py: Python<'_>, scope: Bound<'_, PyAny>, receive: Bound<'_, PyAny>, send: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let app = self.app.bind(py);
        let begun = match agent::get() {
            Some(agent) => quietly("the ASGI hook", || begin(py, agent, &scope, &send, &self.scope, self.excluded.as_ref())).flatten(),
            None => None,
        };
        let Some(request) = begun else {
            return Ok(call(app, &[&scope, &receive, &send])?.unbind());
        };
        // The app's `send`: a fast-call builtin bound to the request (its messages arrive as the
        // interpreter's argument array: no tuple, no argument parsing).
        // Should the builtin fail, the request object itself is callable as `send` (slower).
        let send = send_builtin(&request).unwrap_or_else(|_| request.clone().into_any());
        match call(app, &[&scope, &receive, &send]) {
            Ok(coro) => {
                let _ = request.get().coro.set(coro.unbind());
                Ok(request.into_any().unbind())
            }
            Err(err) => {
                // The app raised before returning an awaitable (not an ASGI 3 coroutine function).
                request.get().finish(py, Some(&err));
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

/// The request object when this call is an HTTP request to trace; `None` to pass through.
fn begin<'py>(
    py: Python<'py>,
    agent: &Agent,
    scope: &Bound<'py, PyAny>,
    send: &Bound<'py, PyAny>,
    span_scope: &Scope,
    excluded: Option<&Py<PyAny>>,
) -> PyResult<Option<Bound<'py, AsgiRequest>>> {
    let Ok(scope) = scope.cast::<PyDict>() else { return Ok(None) };
    let k = keys(py);
    let mut view = ScopeView::read(scope, k)?;
    let http = k.http.bind(py);
    match &view.type_ {
        Some(t) if t.is(http) || t.eq(http)? => {} // servers pass the interned literal
        _ => return Ok(None), // websocket, lifespan, anything else: untraced
    }
    let key = k.span.bind(py);
    if view.traced {
        return Ok(None); // an outer ferrotel wrapper already traces this request
    }
    let telemetry = k.telemetry.bind(py);
    if let Some(excluded) = excluded {
        if excluded.bind(py).call1((asgi_url(scope)?,))?.is_truthy()? {
            // Excluded: untraced, and marked so that inner ferrotel wrappers pass it through too
            // (and FastAPI's own telemetry, below, makes no span for it either).
            scope.set_item(key, py.None())?;
            if !scope.contains(telemetry)? {
                scope.set_item(telemetry, py.None())?;
            }
            return Ok(None);
        }
    }
    view.complete(scope, k)?;
    let headers = read_headers(agent, view.headers.as_ref())?;
    let extracted = propagation::extract(&agent.propagators, |h| headers.propagation.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_ref()));
    // A request the head sampler dropped keeps a lite state (no record unless it ends in error,
    // slow or filtered: `server::count_only`), as the WSGI hook's.
    let (span, recording) = super::server::start_lite(py, agent, span_scope, extracted, red_values(&view), |rec| {
        request_attributes(scope, &view, &headers, rec, true)
    })?;
    let light = recording == super::server::Recording::Light;
    let recording = recording != super::server::Recording::No;
    scope.set_item(key, &span)?;
    // FastAPI 0.16x ships its own OpenTelemetry middleware and decides per request whether an
    // OpenTelemetry provider is configured (~30k instructions, measured). This key is its own
    // "not here" marker: set by a wrapper outside the app (uvicorn, hypercorn), the request keeps
    // one SERVER span -- also when the app configured an SDK of its own -- and skips that check.
    if !scope.contains(telemetry)? {
        scope.set_item(telemetry, py.None())?;
    }
    let request = AsgiRequest {
        coro: std::sync::OnceLock::new(),
        inner: send.clone().unbind(),
        span: span.unbind(),
        scope: recording.then(|| scope.clone().unbind()),
        capture: recording && !agent.capture_response_headers.is_empty(),
        light,
        response_end_ns: AtomicU64::new(0),
        started: AtomicBool::new(false),
        direct: AtomicBool::new(false),
        done: AtomicBool::new(false),
        state: Mutex::new(Steps { iter: None, token: None }),
    };
    Ok(Some(Bound::new(py, request)?))
}

/// The request headers a span needs, found in one pass over `scope["headers"]`: the values
/// borrowed from the header list's bytes objects (kept alive here).
#[derive(Default)]
struct RequestHeaders<'py> {
    propagation: Vec<(Header, std::borrow::Cow<'static, str>)>,
    host: Option<Bound<'py, PyBytes>>,
    user_agent: Option<Bound<'py, PyBytes>>,
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

/// The text of a header value (bytes; Latin-1 or anything else decoded leniently).
fn bytes_text(value: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(v) => std::borrow::Cow::Borrowed(v),
        Err(_) => String::from_utf8_lossy(value),
    }
}

fn read_headers<'py>(agent: &Agent, headers: Option<&Bound<'py, PyAny>>) -> PyResult<RequestHeaders<'py>> {
    let mut out = RequestHeaders::default();
    let capture = super::headers::wanted(agent, super::headers::Kind::ServerRequest);
    let Some(headers) = headers else { return Ok(out) };
    let mut one = |item: &Bound<'py, PyAny>| -> PyResult<()> {
        let (name, value) = match item.cast::<PyTuple>() {
            Ok(t) if t.len() == 2 => (t.get_borrowed_item(0)?.to_owned(), t.get_borrowed_item(1)?.to_owned()),
            _ => (item.get_item(0)?, item.get_item(1)?),
        };
        let (Ok(name), Ok(value)) = (name.cast_into::<PyBytes>(), value.cast_into::<PyBytes>()) else { return Ok(()) };
        let name_bytes = name.as_bytes();
        if let b"host" | b"user-agent" = name_bytes {
            if capture {
                out.captured.push((String::from_utf8_lossy(name_bytes).into_owned(), bytes_text(value.as_bytes()).into_owned()));
            }
            match name_bytes {
                b"host" => out.host = Some(value),
                _ => out.user_agent = Some(value),
            }
            return Ok(());
        }
        let text = || bytes_text(value.as_bytes()).into_owned();
        match name_bytes {
            b"forwarded" => push_joined(&mut out.forwarded, text()),
            b"x-forwarded-for" => push_joined(&mut out.x_forwarded_for, text()),
            _ => {}
        }
        if let Some(h) = agent.inbound_headers.iter().find(|h| h.name().as_bytes() == name_bytes) {
            match out.propagation.iter_mut().find(|(k, _)| k == h) {
                Some((_, v)) => {
                    let v = v.to_mut();
                    v.push(',');
                    v.push_str(&text());
                }
                None => out.propagation.push((*h, std::borrow::Cow::Owned(text()))),
            }
        }
        if capture {
            out.captured.push((String::from_utf8_lossy(name_bytes).into_owned(), text()));
        }
        Ok(())
    };
    if let Ok(list) = headers.cast::<PyList>() {
        for item in list.iter() {
            one(&item)?;
        }
    } else {
        for item in headers.try_iter()? {
            one(&item?)?;
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

/// What the RED metrics read (every recorded span): method, scheme, protocol version.
fn red_values(v: &ScopeView<'_>) -> super::server::RedValues {
    let method = as_str(&v.method).map(text);
    let scheme = as_str(&v.scheme).map(text);
    let version = as_str(&v.http_version).map(text);
    super::server::RedValues::new(
        method.as_deref().unwrap_or("GET"),
        scheme.as_deref().unwrap_or("http"),
        version.as_deref().filter(|v| !v.is_empty()),
    )
}

/// The rest of a sampled span's request attributes (after `red_values`); `fresh`: none of
/// them can be set yet (at the start), else each replaces what is there (a late fill).
fn request_attributes(scope: &Bound<'_, PyDict>, v: &ScopeView<'_>, headers: &RequestHeaders<'_>, rec: &mut SpanRecord, fresh: bool) -> PyResult<()> {
    let py = scope.py();
    let put = |rec: &mut SpanRecord, key: &'static str, value: Value| {
        if fresh {
            rec.push(key, value)
        } else {
            rec.set(key, value)
        }
    };
    // ASGI's `path` includes `root_path` (servers before the 2023 spec change left it out).
    let root = as_str(&v.root_path).map(text).unwrap_or_default();
    let path = as_str(&v.path).map(text).unwrap_or_default();
    let full = if path.is_empty() && root.is_empty() {
        Text::const_new("/")
    } else if !root.is_empty() && !path.starts_with(&*root) {
        let mut t = Text::with_capacity(root.len() + path.len());
        t.push_str(&root);
        t.push_str(&path);
        t
    } else {
        Text::new(&path)
    };
    put(rec, sc::URL_PATH, Value::from(full));
    if let Some(q) = v.query_string.as_ref().and_then(|q| q.cast::<PyBytes>().ok()) {
        if !q.as_bytes().is_empty() {
            put(rec, sc::URL_QUERY, Value::from(&*String::from_utf8_lossy(q.as_bytes())));
        }
    }
    let scheme = as_str(&v.scheme).map(text).unwrap_or(std::borrow::Cow::Borrowed("http"));
    match headers.host.as_ref() {
        Some(host) => {
            let host = bytes_text(host.as_bytes());
            let (a, p) = sc::split_host(&host);
            if !a.is_empty() {
                put(rec, sc::SERVER_ADDRESS, Value::from(a));
                if let Some(p) = p.or_else(|| sc::default_port(&scheme)) {
                    put(rec, sc::SERVER_PORT, Value::from(i64::from(p)));
                }
            }
        }
        None => {
            if let Some((a, p)) = address(scope, keys(py).server.bind(py))? {
                if !a.is_empty() {
                    put(rec, sc::SERVER_ADDRESS, Value::from(a));
                    if let Some(p) = p {
                        put(rec, sc::SERVER_PORT, Value::from(p));
                    }
                }
            }
        }
    }
    match sc::forwarded_client(headers.forwarded.as_deref(), headers.x_forwarded_for.as_deref()) {
        Some(c) => {
            if !c.is_empty() {
                put(rec, sc::CLIENT_ADDRESS, Value::from(c));
            }
        }
        None => {
            if let Some(c) = v.client.as_ref().filter(|c| !c.is_none()) {
                let host = match c.cast::<PyTuple>() {
                    Ok(t) if t.len() == 2 => t.get_item(0)?,
                    _ => c.get_item(0)?,
                };
                if let Ok(host) = host.cast::<PyString>() {
                    let host = text(host);
                    if !host.is_empty() {
                        put(rec, sc::CLIENT_ADDRESS, Value::from(&*host));
                    }
                }
            }
        }
    }
    if let Some(ua) = &headers.user_agent {
        put(rec, sc::USER_AGENT_ORIGINAL, Value::from(&*bytes_text(ua.as_bytes())));
    }
    if !headers.captured.is_empty() {
        super::headers::capture(py, rec, super::headers::Kind::ServerRequest, headers.captured.iter().map(|(n, v)| (n.as_str(), v.clone())));
    }
    Ok(())
}

/// The route template of a Starlette/FastAPI request, once the router has matched: the matched
/// route's `path_format` under the mount prefixes the request went through (`root_path`).
///
/// The last template built is kept with the route object and the `root_path` object it was
/// built from (strong references: their addresses cannot be reused while kept), so the common
/// case -- the same route again, the server's own `root_path` -- is two pointer compares and a
/// copy of the (inline) text. A route whose `path_format` is reassigned after it served a request
/// keeps its first template while it stays the last one seen (Starlette sets it once, in
/// `__init__`).
fn starlette_route(scope: &Bound<'_, PyDict>) -> PyResult<Option<Text>> {
    let py = scope.py();
    let Some(route) = scope.get_item(intern!(py, "route"))? else { return Ok(None) };
    let root = scope.get_item(keys(py).root_path.bind(py))?;
    let same_root = |kept: &Option<Py<PyAny>>| match (kept, &root) {
        (None, None) => true,
        (Some(a), Some(b)) => a.is(b) || (a.bind(py).is_exact_instance_of::<PyString>() && b.is_exact_instance_of::<PyString>() && a.bind(py).eq(b).unwrap_or(false)),
        _ => false,
    };
    {
        let kept = ROUTE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.as_ref() {
            if k.route.is(&route) && same_root(&k.root) {
                return Ok(Some(k.template.clone()));
            }
        }
    }
    let Some(template) = build_route(&route, root.as_ref())? else { return Ok(None) };
    let old = ROUTE.lock().unwrap_or_else(|p| p.into_inner()).replace(KeptRoute {
        route: route.unbind(),
        root: root.map(Bound::unbind),
        template: template.clone(),
    });
    drop(old); // after the lock is released: a finalizer may run
    Ok(Some(template))
}

/// The last route template `starlette_route` built, and what it was built from.
struct KeptRoute {
    route: Py<PyAny>,
    root: Option<Py<PyAny>>,
    template: Text,
}

static ROUTE: Mutex<Option<KeptRoute>> = Mutex::new(None);

/// `starlette_route`'s template, built.
fn build_route(route: &Bound<'_, PyAny>, root: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Text>> {
    let py = route.py();
    let Some(format) = route.getattr_opt(intern!(py, "path_format"))? else { return Ok(None) };
    let Ok(format) = format.cast::<PyString>() else { return Ok(None) };
    let format = text(format);
    let root = root.and_then(|r| r.cast::<PyString>().ok());
    let root = root.map(text).unwrap_or_default();
    let root = root.trim_end_matches('/');
    let mut route_text = Text::with_capacity(root.len() + format.len());
    route_text.push_str(root);
    // A Mount left as the final route (its app has no router of its own: static files, a
    // plain ASGI app): `root_path` already ends with the mount's prefix.
    if format.ends_with("/{path}") && route.hasattr(intern!(py, "routes"))? {
        route_text.push_str("/{path}");
    } else {
        route_text.push_str(&format);
    }
    Ok(Some(route_text))
}

/// Close an ASGI server span: status code rules and name (`Span::end_at` times it).
fn finish(rec: &mut SpanRecord) {
    let status = match rec.get(sc::HTTP_RESPONSE_STATUS_CODE) {
        Some(Value::Int(c)) => Some(*c),
        _ => None,
    };
    sc::finish_server_span(rec, status);
}

/// The request attributes a light record skipped, read from the scope when it ends.
fn late_fill(scope: &Bound<'_, PyDict>, rec: &mut SpanRecord) -> PyResult<()> {
    let Some(agent) = agent::get() else { return Ok(()) };
    let k = keys(scope.py());
    let mut view = ScopeView::read(scope, k)?;
    view.complete(scope, k)?;
    let headers = read_headers(agent, view.headers.as_ref())?;
    request_attributes(scope, &view, &headers, rec, false)
}

/// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE` over ASGI's `[(name, value)]` bytes.
fn capture_response_headers(headers: &Bound<'_, PyAny>, rec: &mut SpanRecord) -> PyResult<()> {
    let pairs = super::headers::pairs_of(headers)?;
    super::headers::capture(headers.py(), rec, super::headers::Kind::ServerResponse, pairs.iter().map(|(n, v)| (n.as_str(), v.clone())));
    Ok(())
}

/// One traced request:
/// - the awaitable `AsgiMiddleware` returns: a coroutine (it has `__await__`, `send`, `throw`,
///   `close`, so `asyncio.iscoroutine` accepts it) that delegates every step to the app's own;
/// - behind the `send` callable the app is given (`send_builtin`: a `METH_FASTCALL` builtin
///   whose `self` is this object, called by vectorcall): it observes the response messages,
///   then calls the server's `send` and returns its awaitable. (Called itself, this object is
///   the same `send`, through a tuple and pyo3's argument parsing: the fallback.)
///
/// The app's coroutine refers to this object (through its `send` argument) while it runs, and this
/// object to the coroutine: the coroutine's frame lets go when the app returns; a request
/// abandoned half-way is a cycle the garbage collector sees (`__traverse__`) and breaks by
/// closing the coroutine.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct AsgiRequest {
    /// The app's coroutine (set once, right after the app returned it).
    coro: std::sync::OnceLock<Py<PyAny>>,
    /// The server's `send`.
    inner: Py<PyAny>,
    span: Py<Span>,
    /// The request scope (to read the route at response start); None when not recording.
    scope: Option<Py<PyDict>>,
    /// Response headers are to be captured.
    capture: bool,
    /// A light record (the head sampler dropped it, metrics keep it): the request attributes it
    /// skipped are read at the end if it is exported after all (`server::late_fill_needed`).
    light: bool,
    /// When the last body chunk was handed to the server (0: not yet).
    response_end_ns: AtomicU64,
    /// `http.response.start` was sent.
    started: AtomicBool,
    /// `coro` is a native coroutine stepped by `PyIter_Send` itself (3.10+): no `__await__`
    /// wrapper object, and its return is not a StopIteration (decided on the first step).
    direct: AtomicBool,
    done: AtomicBool,
    /// Never held while the app's code runs (the app calls back into `__call__`).
    state: Mutex<Steps>,
}

struct Steps {
    /// `coro.__await__()`, taken on the first step (unless `direct`).
    iter: Option<Py<PyIterator>>,
    /// The ContextVar token that restores the previous current span.
    token: Option<Py<PyAny>>,
}

impl AsgiRequest {
    fn coro<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match self.coro.get() {
            Some(c) => c.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    fn steps(&self) -> std::sync::MutexGuard<'_, Steps> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(message) = message.cast::<PyDict>() else { return Ok(()) };
        let Some(kind) = message.get_item(keys(py).type_.bind(py))? else { return Ok(()) };
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
            let span = self.span.get();
            if self.light {
                // A head-dropped span keeps its lite state: no record for the status and route.
                let mut route = route;
                let lite = span.with_lite(|l| {
                    l.status = status.or(l.status);
                    if l.route.is_none() {
                        l.route = route.take();
                    }
                });
                if lite.is_some() && !self.capture {
                    return Ok(());
                }
                return self.observe_start(py, message, status, route);
            }
            self.observe_start(py, message, status, route)?;
        } else if kind == "http.response.pathsend" {
            let _ = self.response_end_ns.compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `http.response.start` into the record: status, route (unless a framework hook set one),
    /// captured response headers.
    fn observe_start(&self, py: Python<'_>, message: &Bound<'_, PyDict>, status: Option<i64>, route: Option<Text>) -> PyResult<()> {
        let headers = if self.capture { message.get_item(keys(py).headers.bind(py))? } else { None };
        self.span
            .get()
            .with(|rec| {
                if let Some(c) = status {
                    rec.set(sc::HTTP_RESPONSE_STATUS_CODE, c);
                }
                if let Some(r) = route {
                    if rec.get(sc::HTTP_ROUTE).is_none() {
                        rec.push(sc::HTTP_ROUTE, r);
                    }
                }
                match headers {
                    Some(h) => capture_response_headers(&h, rec),
                    None => Ok(()),
                }
            })
            .unwrap_or(Ok(()))
    }

    /// Make the span current in the awaiting task's context (first step).
    fn enter(&self, py: Python<'_>) {
        let token = quietly("the current-span store", || current::enter(py, self.span.bind(py))).flatten().map(Bound::unbind);
        let mut steps = self.steps();
        if steps.token.is_none() {
            steps.token = token;
        } else if let Some(token) = token {
            current::exit(py, Some(token.into_bound(py))); // already current (cannot happen): undo
        }
    }

    /// On the first step (not direct): make the span current, get the iterator.
    fn iterator<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        let (iter, entered) = {
            let steps = self.steps();
            (steps.iter.as_ref().map(|it| it.bind(py).clone()), steps.token.is_some())
        };
        if let Some(it) = iter {
            return Ok(it);
        }
        if !entered {
            self.enter(py);
        }
        let coro = self.coro(py);
        let it = match coro.getattr_opt(intern!(py, "__await__"))? {
            Some(await_) => await_.call0()?,
            None => coro.clone(), // a generator-based coroutine
        };
        let it = it.try_iter()?;
        self.steps().iter = Some(it.clone().unbind());
        Ok(it)
    }

    /// True when the app's coroutine is stepped directly (`direct`); on the first step, makes the
    /// span current and decides.
    fn direct(&self, py: Python<'_>) -> bool {
        if self.direct.load(Ordering::Relaxed) {
            return true;
        }
        if self.done.load(Ordering::Relaxed) || !capi::has_iter_send() || self.steps().iter.is_some() {
            return false;
        }
        let Some(coroutine) = coroutine_type(py) else { return false };
        if !self.coro(py).get_type().is(coroutine) {
            return false; // another awaitable: through its __await__ iterator
        }
        self.enter(py);
        self.direct.store(true, Ordering::Relaxed);
        true
    }

    /// One direct step of the app's coroutine with `value` sent in.
    fn step_direct(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        match capi::iter_send(&self.coro(py), value) {
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

    /// The app finished (`err` None), raised, or was closed: record the failure, end the span,
    /// restore the context.
    fn finish(&self, py: Python<'_>, err: Option<&PyErr>) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        quietly("the ASGI hook", || {
            let span = self.span.get();
            if let Some(err) = err {
                // Cancellation and exits (CancelledError, GeneratorExit, ...) are not application errors.
                if err.is_instance_of::<PyException>(py) {
                    span.record_exception(err.value(py).as_any());
                    if !self.started.load(Ordering::Relaxed) {
                        // No response started: the server answers 500 itself.
                        span.with(|rec| rec.set(sc::HTTP_RESPONSE_STATUS_CODE, 500i64));
                    }
                }
            }
            // Timed to the last body chunk sent (0: none was, the clock at the end).
            let end_ns = self.response_end_ns.load(Ordering::Relaxed);
            match (&self.scope, self.light) {
                (Some(scope), true) => span.end_at(end_ns, |rec| {
                    finish(rec);
                    if super::server::late_fill_needed(rec) {
                        quietly("the ASGI hook", || late_fill(scope.bind(py), rec));
                    }
                }),
                _ => span.end_at(end_ns, finish),
            }
            Ok(())
        });
        let token = self.steps().token.take();
        if let Some(token) = token {
            current::exit(py, Some(token.into_bound(py)));
        }
    }

    /// The result of a `send`/`throw` delegated to the app: a StopIteration ends the request.
    fn settle(&self, py: Python<'_>, result: PyResult<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
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

/// The app's `send(message)`, `slf` the `AsgiRequest`: observe the message, then the server's
/// `send` with the same argument array.
unsafe fn send_entry(py: Python<'_>, slf: *mut pyo3::ffi::PyObject, args: *const *mut pyo3::ffi::PyObject, nargsf: pyo3::ffi::Py_ssize_t, kwnames: *mut pyo3::ffi::PyObject) -> PyResult<*mut pyo3::ffi::PyObject> {
    // SAFETY: SEND_DEF is only ever bound to an `AsgiRequest` (`send_builtin`).
    let request = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<AsgiRequest>() };
    let request = request.get();
    let nargs = (nargsf as usize) & !(1usize << (usize::BITS - 1)); // PY_VECTORCALL_ARGUMENTS_OFFSET off
    if nargs >= 1 && request.scope.is_some() {
        // SAFETY: the caller's array holds `nargs` live references for the call's length.
        let message = unsafe { Borrowed::from_ptr(py, *args) };
        quietly("the ASGI send hook", || request.observe(py, &message));
    }
    // SAFETY: the caller's array and names, alive for this call.
    unsafe { capi::vectorcall(py, request.inner.as_ptr(), args, nargs, kwnames) }.map(Bound::into_ptr)
}

/// The definition of the app's `send` (`send_builtin`).
static SEND_DEF: crate::hooks::method::FastDef = crate::hooks::method::fast_def!(c"send", send_entry);

/// The `send` the app is given: a builtin whose `self` is the request (it keeps the request
/// alive, and the garbage collector sees the reference).
fn send_builtin<'py>(request: &Bound<'py, AsgiRequest>) -> PyResult<Bound<'py, PyAny>> {
    crate::hooks::method::bound(&SEND_DEF, request.as_any())
}

#[pymethods]
impl AsgiRequest {
    /// `send(message)` called on the request object itself (the app is given `send_builtin`).
    fn __call__(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if self.scope.is_some() {
            quietly("the ASGI send hook", || self.observe(py, &message));
        }
        Ok(call(self.inner.bind(py), &[&message])?.unbind())
    }

    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done.load(Ordering::Relaxed) {
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

    fn send(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if value.is_none() {
            return match self.__next__(py)? {
                Some(v) => Ok(v),
                None => Err(PyStopIteration::new_err(())),
            };
        }
        if self.done.load(Ordering::Relaxed) {
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
    fn throw(&self, py: Python<'_>, typ: Bound<'_, PyAny>, val: Option<Bound<'_, PyAny>>, tb: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let iter = self.steps().iter.as_ref().map(|it| it.bind(py).clone().into_any());
        let stepping = match iter {
            Some(it) => Some(it),
            None if self.direct.load(Ordering::Relaxed) => Some(self.coro(py)),
            None => None,
        };
        let result = match (stepping, self.done.load(Ordering::Relaxed)) {
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

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let iter = self.steps().iter.as_ref().map(|it| it.bind(py).clone());
        let closed = match iter {
            Some(it) => it.call_method0(intern!(py, "close")).map(drop),
            None => match self.coro(py).getattr_opt(intern!(py, "close"))? {
                Some(close) => close.call0().map(drop),
                None => Ok(()),
            },
        };
        self.finish(py, closed.as_ref().err());
        closed
    }

    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(self.coro.get())?;
        visit.call(&self.inner)?;
        visit.call(&self.span)?;
        visit.call(&self.scope)?;
        if let Ok(steps) = self.state.try_lock() {
            visit.call(&steps.iter)?;
            visit.call(&steps.token)?;
        }
        Ok(())
    }
}

impl Drop for AsgiRequest {
    fn drop(&mut self) {
        if !*self.done.get_mut() {
            // Never awaited to the end: end the span with what it has.
            self.span.get().end_at(*self.response_end_ns.get_mut(), finish);
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
