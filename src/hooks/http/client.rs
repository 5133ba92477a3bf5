//! Outgoing HTTP calls: one CLIENT span per request sent on the wire, a child of the active span
//! (a root when there is none, as the pure-Python agent does), with the configured propagators'
//! headers written into the request unless the application set them itself.
//!
//! Where the hooks sit (the Python side, `ferrotel/hooks/{http_client,urllib3,httpx}.py`,
//! installs them; a hooked call runs either a native `MethodHook` in place of the library's
//! method (`method.rs`) or a Python wrapper of a few lines calling `METH_FASTCALL` functions
//! from here, whichever costs less for that method):
//! - `HttpClientHook`: `http.client.HTTPConnection` — `endheaders` starts the span (from the
//!   request line `putrequest` wrote; kept on the connection) and writes the headers into the
//!   connection's buffer, `getresponse` ends it. Covers `urllib.request` and anything else built
//!   on `http.client`. urllib3's connections subclass it but are skipped (class attribute
//!   `_ferrotel_span = False`): urllib3 is traced one layer up, where its connect errors and the
//!   pool's origin are visible.
//! - `Urllib3Hook`: `HTTPConnectionPool._make_request`, one call per request on the wire —
//!   covers urllib3 and requests (which sends through urllib3). Its span's headers are written
//!   by the `endheaders` hook too (the span is handed over in the connection's `_ferrotel_out`):
//!   a line appended to the request being written, where adding them to urllib3's header mapping
//!   would cost a copy of it and urllib3's and `http.client`'s per-header work in Python.
//! - `HttpxHook`: `httpx.HTTPTransport.handle_request` and the async transport's
//!   `handle_async_request` (httpx sends through httpcore, not `http.client`); the headers go
//!   into the request head h11 serialises (see `HttpxHook`).
//!
//! Every entry point fails open: an agent fault costs the span, never the call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::hooks::capi;
use crate::hooks::current;
use crate::hooks::guard::quietly;
use crate::hooks::method::{fast_function, Args, Around, MethodHook};
use crate::hooks::span::Span;
use crate::agent;
use crate::context::propagation::{self, Header};
use crate::context::TraceId;
use crate::sampler::Sampler;
use crate::semconv as sc;
use crate::span::{Family, Scope, SpanKind, SpanRecord};

use super::headers;

/// One instrumentation's settings: its scope and its URL exclusion.
struct Profile {
    scope: Scope,
    /// Called with `url.full`; a result other than None excludes the call (a compiled regex's
    /// `search`, built by the Python side from the excluded-URL list).
    exclude: Option<Py<PyAny>>,
}

impl Profile {
    fn new(scope: String, exclude: Option<Bound<'_, PyAny>>) -> Self {
        Profile {
            // Hooks are built once per process: a leaked name makes every span's scope a borrow.
            scope: Scope::fixed(Box::leak(scope.into_boxed_str())),
            exclude: exclude.filter(|e| !e.is_none()).map(Bound::unbind),
        }
    }

    fn excluded(&self, py: Python<'_>, url: &str) -> PyResult<bool> {
        match &self.exclude {
            Some(search) => Ok(!search.bind(py).call1((url,))?.is_none()),
            None => Ok(false),
        }
    }
}

/// The facts of a request about to be sent.
struct Outgoing<'a> {
    method: &'a str,
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
    /// The request target: `/path?query`, or an absolute URL (through an HTTP proxy).
    target: &'a str,
}

/// Start the CLIENT span of a request (None: agent off, the URL is excluded, or the current span
/// is a leaf whose library sends this request).
fn begin<'py>(py: Python<'py>, profile: &Profile, out: Outgoing<'_>) -> PyResult<Option<Bound<'py, Span>>> {
    let Some(agent) = agent::get() else { return Ok(None) };
    let url = sc::client_url(out.scheme, out.host, out.port, out.target);
    if profile.excluded(py, &url)? {
        return Ok(None);
    }
    let parent = current::get(py);
    let parent_span = parent.as_ref().map(|p| p.get());
    if parent_span.is_some_and(|s| s.leaf) {
        return Ok(None); // the request of an AWS SDK call: its span is the call's (`Span::leaf`)
    }
    let parent_ctx = parent_span.map(|s| &s.context);
    let baggage = parent_span.and_then(|s| s.baggage.clone());
    let trace_id = parent_ctx.map_or_else(TraceId::random, |p| p.trace_id);
    let head = agent.sampler.decide(parent_ctx, trace_id);
    let recording = agent.records(head);
    let name = sc::client_span_name(out.method).to_string();
    let mut rec = SpanRecord::start(name, SpanKind::Client, profile.scope.clone(), parent_ctx, trace_id, head);
    rec.family = Family::Http;
    if recording {
        sc::set_method(&mut rec, out.method);
        let absolute = if out.target.starts_with('/') { None } else { sc::url_origin(&url) };
        let (host, port) = match absolute {
            Some((_, h, p)) => (h.to_string(), p),
            None => (out.host.to_string(), out.port.or_else(|| sc::default_port(out.scheme))),
        };
        if !host.is_empty() {
            rec.push(sc::SERVER_ADDRESS, host);
        }
        if let Some(p) = port {
            rec.push(sc::SERVER_PORT, p as i64);
        }
        rec.push(sc::URL_FULL, url);
    }
    Ok(Some(Bound::new(py, Span::new(rec, baggage, recording, None))?))
}

/// The configured propagators' headers for a request whose parent is `span`.
fn propagation_headers(span: &Span) -> Vec<(Header, String)> {
    match agent::get() {
        Some(a) => propagation::inject(&a.propagators, &span.context, span.baggage.as_deref()),
        None => Vec::new(),
    }
}

/// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST` / `_CLIENT_RESPONSE` are set.
fn capturing(kind: headers::Kind) -> bool {
    agent::get().is_some_and(|a| headers::wanted(a, kind))
}

/// Record the captured headers among `pairs` on the open span.
fn capture(py: Python<'_>, span: &Span, kind: headers::Kind, pairs: &[(String, String)]) {
    span.with(|rec| headers::capture(py, rec, kind, pairs.iter().map(|(n, v)| (n.as_str(), v.clone()))));
}

/// The response headers of `response`, captured on the open span (when configured).
fn capture_response(span: &Span, response: &Bound<'_, PyAny>) {
    if capturing(headers::Kind::ClientResponse) {
        if let Ok(pairs) = headers::response_pairs(response) {
            capture(response.py(), span, headers::Kind::ClientResponse, &pairs);
        }
    }
}

/// `Name: value` header lines of http.client's request buffer (after the request line).
fn buffer_pairs(buffer: &Bound<'_, PyList>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in buffer.iter().skip(1) {
        let Ok(line) = line.cast_into::<PyBytes>() else { continue };
        let text = String::from_utf8_lossy(line.as_bytes());
        if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// End a span whose request got a response.
fn end_with_response(span: &Span, status: Option<i64>, version: Option<&str>) {
    span.end(|rec| {
        if let Some(v) = version {
            rec.push(sc::NETWORK_PROTOCOL_VERSION, v);
        }
        sc::finish_client_span(rec, status);
    });
}

/// End a span whose request raised: `exception` event, `error.type`, status ERROR.
fn end_with_error(span: &Span, exc: &Bound<'_, PyAny>) {
    span.record_exception(exc);
    span.end(|_| {});
}

/// The same for an exception caught on its way through the hook (re-raised unchanged).
fn end_with_pyerr(py: Python<'_>, span: &Span, err: &PyErr) {
    span.record_pyerr(py, err);
    span.end(|_| {});
}

/// A `str`'s UTF-8 view, borrowed from the object (None for other types and lone surrogates).
fn text<'a>(v: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    capi::utf8(v.cast::<PyString>().ok()?)
}

fn int(v: &Bound<'_, PyAny>) -> Option<i64> {
    v.extract::<i64>().ok()
}

fn port(v: &Bound<'_, PyAny>) -> Option<u16> {
    v.extract::<u16>().ok()
}

/// `status` and `version` (`11`) of an `http.client` or urllib3 response.
fn numeric_response(response: &Bound<'_, PyAny>) -> (Option<i64>, Option<&'static str>) {
    let py = response.py();
    let status = response.getattr(intern!(py, "status")).ok().and_then(|s| int(&s));
    let version = response.getattr(intern!(py, "version")).ok().and_then(|v| int(&v)).and_then(sc::protocol_from_number);
    (status, version)
}

/// Which of `names` a header name (as bytes or str) matches, case-insensitively.
fn mark_present(name: &[u8], names: &[(Header, String)], present: &mut [bool]) {
    let name = name.trim_ascii();
    for (i, (n, _)) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case(n.name().as_bytes()) {
            present[i] = true;
        }
    }
}

fn is_false(v: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `Py_False` is the interpreter's static singleton.
    v.as_ptr() == unsafe { pyo3::ffi::Py_False() }
}

// ---- http.client -------------------------------------------------------------------------

/// The `http.client.HTTPConnection` hook (see the module doc). The span of the request in flight
/// lives in the connection's `_ferrotel_span` attribute (None between requests, False on
/// urllib3's connections). It starts when the headers are sent (`endheaders`), from the request
/// line `putrequest` wrote, so `putrequest` needs no hook.
///
/// Two forms: Python wrappers with the methods' own signatures calling the `METH_FASTCALL`
/// functions of `functions()` (the interpreter calls a Python wrapper and, from it, the original,
/// without entering its eval loop again: cheaper than a native hook calling a Python method), or,
/// when the methods' signatures are not the expected ones, native hooks (`wrap`).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct HttpClientHook {
    profile: Profile,
    /// `http.client.HTTPSConnection` (absent when Python has no `ssl`).
    https_class: Option<Py<PyAny>>,
}

impl HttpClientHook {
    /// Before `endheaders()`: end a request abandoned before its response (unfinished), start
    /// this one's span, write its propagation headers (or those of the urllib3 hook's span, on
    /// urllib3's connections). The span when this layer traces the request.
    fn send_headers<'py>(&self, conn: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, Span>>> {
        let py = conn.py();
        let attr = intern!(py, "_ferrotel_span");
        let current = conn.getattr(attr)?;
        let buffer = conn.getattr_opt(intern!(py, "_buffer"))?;
        let buffer = buffer.as_ref().and_then(|b| b.cast::<PyList>().ok());
        if is_false(&current) {
            // A urllib3 connection: the urllib3 hook's span, if it has one in flight (taken, so
            // that hook sees its headers were written).
            let out_attr = intern!(py, "_ferrotel_out");
            if let Some(out) = conn.getattr_opt(out_attr)?.and_then(|o| o.cast_into::<Span>().ok()) {
                conn.setattr(out_attr, py.None())?;
                write_headers(conn, buffer, out.get())?;
            }
            return Ok(None);
        }
        // Nothing to send (no request line: `endheaders()` called again, which raises): the
        // request in flight, if any, is left as it is.
        let Some(buffer) = buffer.filter(|b| !b.is_empty()) else { return Ok(None) };
        let stale = current.cast_into::<Span>().ok();
        if let Some(stale) = &stale {
            stale.get().end(|_| {});
        }
        let started = self.begin(conn, buffer)?;
        match &started {
            Some(span) => {
                if capturing(headers::Kind::ClientRequest) {
                    capture(py, span.get(), headers::Kind::ClientRequest, &buffer_pairs(buffer));
                }
                conn.setattr(attr, span)?;
                write_headers(conn, Some(buffer), span.get())?;
            }
            None if stale.is_some() => conn.setattr(attr, py.None())?,
            None => {}
        }
        Ok(started)
    }

    /// The span of the request whose line `buffer[0]` holds (`GET /path HTTP/1.1`).
    fn begin<'py>(&self, conn: &Bound<'py, PyAny>, buffer: &Bound<'py, PyList>) -> PyResult<Option<Bound<'py, Span>>> {
        let py = conn.py();
        let Ok(line) = buffer.get_item(0) else { return Ok(None) };
        let Ok(line) = line.cast_into::<PyBytes>() else { return Ok(None) };
        let Some((method, target)) = request_line(line.as_bytes()) else { return Ok(None) };
        let https = match &self.https_class {
            Some(cls) => conn.is_instance(cls.bind(py))?,
            None => false,
        };
        let scheme = if https { "https" } else { "http" };
        // Through a CONNECT tunnel the connection's host is the proxy; the origin is the tunnel's.
        let tunnel = conn.getattr_opt(intern!(py, "_tunnel_host"))?.filter(|h| !h.is_none());
        let (host, port_obj) = match &tunnel {
            Some(h) => (h.clone(), conn.getattr_opt(intern!(py, "_tunnel_port"))?),
            None => (conn.getattr(intern!(py, "host"))?, Some(conn.getattr(intern!(py, "port"))?)),
        };
        let host = text(&host);
        let host = host.as_deref().unwrap_or_default();
        let out = Outgoing { method, scheme, host, port: port_obj.as_ref().and_then(port), target };
        begin(py, &self.profile, out)
    }

    /// The request's `endheaders()` or `getresponse()` raised, or `getresponse()` returned.
    fn end(conn: &Bound<'_, PyAny>, span: &Bound<'_, Span>, outcome: Outcome<'_, '_>) -> PyResult<()> {
        let py = conn.py();
        conn.setattr(intern!(py, "_ferrotel_span"), py.None())?;
        match outcome {
            Outcome::Response(response) => {
                capture_response(span.get(), response);
                let (status, version) = numeric_response(response);
                end_with_response(span.get(), status, version);
            }
            Outcome::Raised(exc) => end_with_error(span.get(), exc),
            Outcome::Error(err) => end_with_pyerr(py, span.get(), err),
        }
        Ok(())
    }
}

/// Method and target of an HTTP/1.x request line (`GET /path?q HTTP/1.1`).
fn request_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    let (method, rest) = line.split_once(' ')?;
    let (target, _version) = rest.rsplit_once(' ')?;
    (!method.is_empty() && !target.is_empty()).then_some((method, target))
}

/// Append the propagation headers of `span` to the connection's header buffer (the request line
/// and the `putheader` lines so far), skipping any the application already put.
fn write_headers(conn: &Bound<'_, PyAny>, buffer: Option<&Bound<'_, PyList>>, span: &Span) -> PyResult<()> {
    let py = conn.py();
    let headers = propagation_headers(span);
    if headers.is_empty() {
        return Ok(());
    }
    let Some(buffer) = buffer else {
        for (name, value) in headers {
            conn.call_method1(intern!(py, "putheader"), (name.name(), value))?;
        }
        return Ok(());
    };
    let mut present = vec![false; headers.len()];
    for line in buffer.iter().skip(1) {
        if let Ok(b) = line.cast::<PyBytes>() {
            let b = b.as_bytes();
            if let Some(colon) = b.iter().position(|&c| c == b':') {
                mark_present(&b[..colon], &headers, &mut present);
            }
        }
    }
    for ((name, value), here) in headers.iter().zip(present) {
        if !here {
            let name = name.name();
            let mut line = Vec::with_capacity(name.len() + value.len() + 2);
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(b": ");
            line.extend_from_slice(value.as_bytes());
            buffer.append(PyBytes::new(py, &line))?;
        }
    }
    Ok(())
}

/// How a request ended.
enum Outcome<'a, 'py> {
    Response(&'a Bound<'py, PyAny>),
    /// The exception, as a Python-level hook caught it.
    Raised(&'a Bound<'py, PyAny>),
    /// The exception, on its way through a native hook.
    Error(&'a PyErr),
}

/// What the Python-level wrappers call (`HttpClientHook.functions()`).
enum HttpClientFn {
    /// `send_headers(conn)`: the span this layer traces the request with, or None.
    SendHeaders,
    /// `finished(conn, span, response)`.
    Finished,
    /// `failed(conn, span, exc)`.
    Failed,
}

struct HttpClientFunction {
    hook: Py<HttpClientHook>,
    which: HttpClientFn,
}

impl Around for HttpClientFunction {
    fn call<'py>(&self, _none: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let none = py.None().into_bound(py);
        if agent::get().is_none() {
            return Ok(none);
        }
        let Some(conn) = args.positional(0) else { return Ok(none) };
        let out = quietly("the http.client hook", || match self.which {
            HttpClientFn::SendHeaders => Ok(self.hook.get().send_headers(&conn)?.map(Bound::into_any)),
            HttpClientFn::Finished | HttpClientFn::Failed => {
                let (Some(span), Some(arg)) = (args.positional(1), args.positional(2)) else { return Ok(None) };
                let Ok(span) = span.cast::<Span>() else { return Ok(None) };
                let outcome = if matches!(self.which, HttpClientFn::Finished) { Outcome::Response(&arg) } else { Outcome::Raised(&arg) };
                HttpClientHook::end(&conn, &span, outcome)?;
                Ok(None)
            }
        });
        Ok(out.flatten().unwrap_or(none))
    }
}

/// `endheaders` / `getresponse` as native hooks (the fallback form).
enum HttpClientMethod {
    EndHeaders,
    GetResponse,
}

struct HttpClientAround {
    hook: Py<HttpClientHook>,
    method: HttpClientMethod,
}

impl Around for HttpClientAround {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let Some(conn) = args.positional(0).filter(|_| agent::get().is_some()) else { return args.call(original) };
        let span = match self.method {
            HttpClientMethod::EndHeaders => quietly("the http.client hook", || self.hook.get().send_headers(&conn)).flatten(),
            HttpClientMethod::GetResponse => {
                quietly("the http.client hook", || Ok(conn.getattr(intern!(py, "_ferrotel_span"))?.cast_into::<Span>().ok())).flatten()
            }
        };
        let Some(span) = span else { return args.call(original) };
        let result = args.call(original);
        match (&result, &self.method) {
            (Ok(_), HttpClientMethod::EndHeaders) => {}
            (Ok(response), HttpClientMethod::GetResponse) => {
                quietly("the http.client hook", || HttpClientHook::end(&conn, &span, Outcome::Response(response)));
            }
            (Err(err), _) => {
                quietly("the http.client hook", || HttpClientHook::end(&conn, &span, Outcome::Error(err)));
            }
        }
        result
    }
}

#[pymethods]
impl HttpClientHook {
    #[new]
    #[pyo3(signature = (scope = "ferrotel.urllib".to_string(), exclude = None, https_class = None))]
    fn new(scope: String, exclude: Option<Bound<'_, PyAny>>, https_class: Option<Bound<'_, PyAny>>) -> Self {
        HttpClientHook { profile: Profile::new(scope, exclude), https_class: https_class.filter(|c| !c.is_none()).map(Bound::unbind) }
    }

    /// `(send_headers, finished, failed)` for the Python-level wrappers (see the class doc).
    fn functions<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let f = |name: &str, which: HttpClientFn| fast_function(py, name, Box::new(HttpClientFunction { hook: slf.clone().unbind(), which }));
        Ok((f("send_headers", HttpClientFn::SendHeaders)?, f("finished", HttpClientFn::Finished)?, f("failed", HttpClientFn::Failed)?))
    }

    /// The native hook to put in place of `HTTPConnection.<name>` (`endheaders` or
    /// `getresponse`), whose implementation is `original`.
    fn wrap<'py>(slf: &Bound<'py, Self>, name: &str, original: Bound<'py, PyAny>) -> PyResult<Bound<'py, MethodHook>> {
        let method = match name {
            "endheaders" => HttpClientMethod::EndHeaders,
            "getresponse" => HttpClientMethod::GetResponse,
            _ => return Err(pyo3::exceptions::PyValueError::new_err(format!("no http.client hook for {name}"))),
        };
        MethodHook::new(slf.py(), name, original, Box::new(HttpClientAround { hook: slf.clone().unbind(), method }))
    }
}

// ---- urllib3 (and requests) ------------------------------------------------------------------

/// The `urllib3.HTTPConnectionPool._make_request` hook: urllib3's own calls and requests' (which
/// come through it) are traced here. `marker`, a `ContextVar` that requests' adapter sets, is
/// given only when the two are configured differently (one disabled, or other excluded URLs).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct Urllib3Hook {
    direct: Option<Profile>,
    requests: Option<Profile>,
    marker: Option<Py<PyAny>>,
    /// Per connection class: whether the `endheaders` hook writes the headers of its requests
    /// (the class has `http.client`'s hooked `endheaders` and is skipped by that layer).
    classes: Mutex<Vec<(Py<PyAny>, bool)>>,
}

/// How a traced urllib3 request gets its propagation headers.
enum Inject<'py> {
    /// By the `endheaders` hook, from the connection's `_ferrotel_out`.
    Endheaders(Bound<'py, PyAny>),
    /// As the call's `headers=`: a copy of the caller's with them added.
    Headers(Bound<'py, PyAny>),
    /// None to write (no propagator, or headers passed by position).
    Nothing,
}

impl Urllib3Hook {
    fn start<'py>(&self, args: &Args<'_, 'py>) -> PyResult<Option<(Bound<'py, Span>, Inject<'py>)>> {
        let py = args.py();
        let (Some(pool), Some(conn), Some(method), Some(url)) = (args.positional(0), args.positional(1), args.positional(2), args.positional(3)) else {
            return Ok(None);
        };
        let via_requests = match &self.marker {
            Some(m) => capi::context_var_get(m.bind(py)).map(|v| v.is_truthy()).transpose()?.unwrap_or(false),
            None => false,
        };
        let profile = if via_requests { &self.requests } else { &self.direct };
        let Some(profile) = profile else { return Ok(None) };
        let (Some(method), Some(target)) = (text(&method), text(&url)) else { return Ok(None) };
        let scheme = pool.getattr(intern!(py, "scheme"))?;
        let host = pool.getattr(intern!(py, "host"))?;
        let port_num = port(&pool.getattr(intern!(py, "port"))?);
        let (scheme, host) = (text(&scheme), text(&host));
        let out = Outgoing { method: &method, scheme: scheme.as_deref().unwrap_or("http"), host: host.as_deref().unwrap_or_default(), port: port_num, target: &target };
        let Some(span) = begin(py, profile, out)? else { return Ok(None) };
        if capturing(headers::Kind::ClientRequest) {
            if let Some(given) = args.keyword("headers").filter(|h| !h.is_none()) {
                if let Ok(items) = given.call_method0(intern!(py, "items")) {
                    capture(py, span.get(), headers::Kind::ClientRequest, &headers::pairs_of(&items)?);
                }
            }
        }
        let inject = if agent::get().is_none_or(|a| a.propagators.is_empty()) {
            Inject::Nothing
        } else if self.endheaders_injects(&conn)? {
            conn.setattr(intern!(py, "_ferrotel_out"), &span)?;
            Inject::Endheaders(conn.to_owned())
        } else if args.positional_count() > 4 {
            Inject::Nothing // headers given by position (urllib3 passes them by keyword): left alone
        } else {
            let headers = propagation_headers(span.get());
            Inject::Headers(with_headers(py, args.keyword("headers").map(|h| h.to_owned()), &headers)?)
        };
        Ok(Some((span, inject)))
    }

    /// Whether `conn`'s class writes the headers in the `endheaders` hook (cached per class).
    fn endheaders_injects(&self, conn: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = conn.py();
        let cls = conn.get_type();
        let known = |classes: &[(Py<PyAny>, bool)]| classes.iter().find(|(c, _)| c.as_ptr() == cls.as_ptr()).map(|(_, yes)| *yes);
        if let Some(yes) = known(&self.classes.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(yes);
        }
        // Looked up without the lock held (Python code may run, and let another thread in).
        let endheaders = cls.getattr(intern!(py, "endheaders"))?;
        let hooked = match endheaders.cast::<MethodHook>() {
            Ok(m) => m.get().name() == "endheaders",
            // The Python-level wrapper (ferrotel/hooks/http_client.py) says so itself.
            Err(_) => endheaders.getattr_opt(intern!(py, "_ferrotel_writes_headers"))?.is_some_and(|v| v.is_truthy().unwrap_or(false)),
        };
        let skipped = cls.getattr_opt(intern!(py, "_ferrotel_span"))?.is_some_and(|v| is_false(&v));
        let has_slot = cls.getattr_opt(intern!(py, "_ferrotel_out"))?.is_some();
        let yes = hooked && skipped && has_slot;
        let mut classes = self.classes.lock().unwrap_or_else(|p| p.into_inner());
        if known(&classes).is_none() {
            classes.push((cls.into_any().unbind(), yes));
        }
        Ok(yes)
    }

    /// A request of `conn`'s class went out without passing the `endheaders` hook (the method
    /// was replaced after the class was first seen): its class gets copied headers from now on.
    fn endheaders_skipped(&self, conn: &Bound<'_, PyAny>) {
        let cls = conn.get_type();
        let mut classes = self.classes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = classes.iter_mut().find(|(c, _)| c.as_ptr() == cls.as_ptr()) {
            entry.1 = false;
        }
    }
}

struct Urllib3Around {
    hook: Py<Urllib3Hook>,
}

impl Around for Urllib3Around {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        if agent::get().is_none() {
            return args.call(original);
        }
        let Some((span, inject)) = quietly("the urllib3 hook", || self.hook.get().start(args)).flatten() else {
            return args.call(original);
        };
        let result = match &inject {
            Inject::Headers(headers) => args.call_with_keyword(original, "headers", headers),
            _ => args.call(original),
        };
        quietly("the urllib3 hook", || {
            if let Inject::Endheaders(conn) = &inject {
                // Still there: the request never reached the `endheaders` hook.
                let attr = intern!(py, "_ferrotel_out");
                if !conn.getattr(attr)?.is_none() {
                    conn.setattr(attr, py.None())?;
                    if result.is_ok() {
                        self.hook.get().endheaders_skipped(conn);
                    }
                }
            }
            match &result {
                Ok(response) => {
                    capture_response(span.get(), response);
                    let (status, version) = numeric_response(response);
                    end_with_response(span.get(), status, version);
                }
                Err(err) => end_with_pyerr(py, span.get(), err),
            }
            Ok(())
        });
        result
    }
}

/// A copy of the request's headers (the caller's mapping is often shared: a pool's defaults,
/// or reused by retries) with the propagation headers the caller did not set.
fn with_headers<'py>(py: Python<'py>, given: Option<Bound<'py, PyAny>>, add: &[(Header, String)]) -> PyResult<Bound<'py, PyAny>> {
    let copy = match given.filter(|g| !g.is_none()) {
        None => PyDict::new(py).into_any(),
        Some(g) => match g.cast_exact::<PyDict>() {
            Ok(d) => d.copy()?.into_any(),
            Err(_) => match case_insensitive_copy(&g, add)? {
                Some(done) => return Ok(done),
                None => g.call_method0(intern!(py, "copy"))?,
            },
        },
    };
    let mut present = vec![false; add.len()];
    for key in copy.try_iter()? {
        let key = key?;
        if let Ok(s) = key.cast::<PyString>() {
            mark_present(s.to_cow()?.as_bytes(), add, &mut present);
        } else if let Ok(b) = key.cast::<PyBytes>() {
            mark_present(b.as_bytes(), add, &mut present);
        }
    }
    for ((name, value), here) in add.iter().zip(present) {
        if !here {
            copy.set_item(name.name(), value)?;
        }
    }
    Ok(copy)
}

/// requests' `CaseInsensitiveDict` (what requests hands urllib3) keeps `_store`: lower-case name
/// → (name, value). Copying and filling that dict directly is C-level work, several µs less than
/// the class's Python `copy()`/`__iter__`/`__setitem__`. None: not such a mapping (use the generic
/// path).
fn case_insensitive_copy<'py>(given: &Bound<'py, PyAny>, add: &[(Header, String)]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = given.py();
    let Some(store) = given.getattr_opt(intern!(py, "_store"))? else { return Ok(None) };
    let Ok(store) = store.cast_into::<PyDict>() else { return Ok(None) };
    let cls = given.get_type();
    let copy = cls.call_method1(intern!(py, "__new__"), (&cls,))?;
    let new_store = store.call_method0(intern!(py, "copy"))?;
    for (name, value) in add {
        // Names are lower case already: they are the store's keys.
        let name = name.name();
        if !new_store.contains(name)? {
            new_store.set_item(name, (name, value))?;
        }
    }
    copy.setattr(intern!(py, "_store"), new_store)?;
    Ok(Some(copy))
}

#[pymethods]
impl Urllib3Hook {
    #[new]
    #[pyo3(signature = (direct_enabled = true, direct_exclude = None, requests_enabled = true, requests_exclude = None, marker = None))]
    fn new(
        direct_enabled: bool,
        direct_exclude: Option<Bound<'_, PyAny>>,
        requests_enabled: bool,
        requests_exclude: Option<Bound<'_, PyAny>>,
        marker: Option<Bound<'_, PyAny>>,
    ) -> Self {
        Urllib3Hook {
            direct: direct_enabled.then(|| Profile::new("ferrotel.urllib3".into(), direct_exclude)),
            requests: requests_enabled.then(|| Profile::new("ferrotel.requests".into(), requests_exclude)),
            marker: marker.filter(|m| !m.is_none()).map(Bound::unbind),
            classes: Mutex::new(Vec::new()),
        }
    }

    /// The hook to put in place of `HTTPConnectionPool._make_request` (`original`).
    fn wrap<'py>(slf: &Bound<'py, Self>, original: Bound<'py, PyAny>) -> PyResult<Bound<'py, MethodHook>> {
        MethodHook::new(slf.py(), "_make_request", original, Box::new(Urllib3Around { hook: slf.clone().unbind() }))
    }
}

// ---- httpx ---------------------------------------------------------------------------------

/// The httpx transport hook: `handle_request(request)` / `handle_async_request(request)`.
///
/// Where the propagation headers go: through httpx's own API, a header costs more than the span
/// (≈ 27k instructions: httpcore's and h11's checks and copies of every header, in Python, and
/// again when the client builds a cookie request from the request's headers afterwards). So when
/// the request goes out over HTTP/1.1 through httpcore's connections, whose `h11.Connection` is
/// ferrotel's subclass (`H11_SYNC`/`H11_ASYNC`, set by the httpcore hook), the headers are written
/// into the request head h11 serialised, as for `http.client`: the transport hook puts them in
/// the `HTTPX_OUT` context variable for the length of the call, the h11 `send` hook adds those
/// the head lacks. Otherwise (HTTP/2 enabled, another httpcore) they are added to
/// `request.headers` for the length of the call.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct HttpxHook {
    profile: Profile,
}

/// The context variable (see `HttpxHook`), made on first use.
static HTTPX_OUT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// httpcore's sync / async HTTP/1.1 connections write `HTTPX_OUT`'s headers.
static H11_SYNC: AtomicBool = AtomicBool::new(false);
static H11_ASYNC: AtomicBool = AtomicBool::new(false);

fn httpx_out_var(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let var = HTTPX_OUT.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("contextvars")?.getattr("ContextVar")?.call1(("ferrotel_httpx_out",))?.unbind())
    })?;
    Ok(var.bind(py))
}

/// The pending headers of a traced httpx request, as one `bytes` (what `HTTPX_OUT` holds):
/// `METHOD TARGET\r\n`, the request they are for (a head is that request's only if its method
/// matches and its target ends with this one: not a proxy tunnel's `CONNECT`, say), then the
/// header lines to add, `name: value\r\n` each.
fn pending_head(method: &str, target: &str, headers: &[(Header, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(method.len() + target.len() + 4 + headers.iter().map(|(n, v)| n.name().len() + v.len() + 4).sum::<usize>());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.name().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The first line of `b` (without its CRLF) and the rest.
fn first_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let lf = b.iter().position(|&c| c == b'\n')?;
    Some((b[..lf].strip_suffix(b"\r")?, &b[lf + 1..]))
}

/// `head` (an HTTP/1.1 request head as h11 serialised it) with the header lines of `pending`
/// (see `pending_head`) it lacks added; None when it is not that request's head or lacks none.
fn splice_head(head: &[u8], pending: &[u8]) -> Option<Vec<u8>> {
    let (request, additions) = first_line(pending)?;
    let (method, target) = request.split_at(request.iter().position(|&c| c == b' ')?);
    let (line, _) = first_line(head)?;
    let rest = line.strip_prefix(method)?.strip_prefix(b" ")?;
    let head_target = &rest[..rest.iter().rposition(|&c| c == b' ')?];
    if !head_target.ends_with(&target[1..]) || !head.ends_with(b"\r\n\r\n") || head.len() < line.len() + 4 {
        return None;
    }
    let block = &head[line.len() + 2..head.len() - 2];
    let mut spliced: Option<Vec<u8>> = None;
    for add in additions.split_inclusive(|&c| c == b'\n') {
        let Some(colon) = add.iter().position(|&c| c == b':') else { continue };
        let name = &add[..colon];
        let present = block.split(|&c| c == b'\n').any(|l| l.len() > name.len() && l[name.len()] == b':' && l[..name.len()].eq_ignore_ascii_case(name));
        if !present {
            let out = spliced.get_or_insert_with(|| {
                let mut v = Vec::with_capacity(head.len() + additions.len());
                v.extend_from_slice(&head[..head.len() - 2]);
                v
            });
            out.extend_from_slice(add);
        }
    }
    let mut out = spliced?;
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// `splice(out, data)`, for the `send` of ferrotel's `h11.Connection` subclass (httpcore's
/// HTTP/1.1 connections only): `data`, what h11 serialised, with the headers of `out` (the
/// pending headers, see `pending_head`) written into it when it is that request's head.
struct H11Splice;

impl Around for H11Splice {
    fn call<'py>(&self, _none: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let (Some(out), Some(data)) = (args.positional(0), args.positional(1)) else { return Ok(py.None().into_bound(py)) };
        let spliced = quietly("the httpx hook", || {
            let (Ok(pending), Ok(head)) = (out.cast::<PyBytes>(), data.cast::<PyBytes>()) else { return Ok(None) };
            Ok(splice_head(head.as_bytes(), pending.as_bytes()).map(|s| PyBytes::new(py, &s).into_any()))
        });
        Ok(spliced.flatten().unwrap_or_else(|| data.to_owned()))
    }
}

/// The async transport's wrapper's `start(transport, request)`, `finish(pending, response)` and
/// `fail(pending, exc)`.
enum HttpxFn {
    Start,
    Finish,
    Fail,
}

struct HttpxFunction {
    hook: Py<HttpxHook>,
    which: HttpxFn,
}

impl Around for HttpxFunction {
    fn call<'py>(&self, _none: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let none = py.None().into_bound(py);
        let (Some(first), Some(second)) = (args.positional(0), args.positional(1)) else { return Ok(none) };
        match self.which {
            HttpxFn::Start => {
                if agent::get().is_none() {
                    return Ok(none);
                }
                let h11 = H11_ASYNC.load(Ordering::Relaxed);
                let started = quietly("the httpx hook", || {
                    let Some(call) = self.hook.get().outgoing_start(Some(&first), &second, h11)? else { return Ok(None) };
                    Ok(Some(Bound::new(py, HttpxPending::new(call))?.into_any()))
                });
                Ok(started.flatten().unwrap_or(none))
            }
            HttpxFn::Finish | HttpxFn::Fail => {
                if let Ok(pending) = first.cast::<HttpxPending>() {
                    let outcome = if matches!(self.which, HttpxFn::Finish) { Outcome::Response(&second) } else { Outcome::Raised(&second) };
                    pending.get().bind(py).end(outcome);
                }
                Ok(none)
            }
        }
    }
}

/// The propagation headers added to `request.headers` (when they cannot go into the head h11
/// writes), taken out again when the transport returns: the request object is the
/// application's (`response.request`), httpx's client reads its headers again afterwards
/// (cookies: a `urllib.request.Request` built from every header), and a redirect it follows
/// copies them into the next request, whose own span's headers must not be taken for the
/// application's.
struct Added<'py> {
    headers: Bound<'py, PyAny>,
    /// The entries appended to the headers' `_list` (removed by identity).
    entries: Vec<Bound<'py, PyAny>>,
    /// Names set through the public API instead (another httpx layout).
    names: Vec<&'static str>,
}

impl Added<'_> {
    fn remove(&self) -> PyResult<()> {
        let py = self.headers.py();
        if !self.entries.is_empty() {
            let list = self.headers.getattr(intern!(py, "_list"))?;
            let list = list.cast::<PyList>()?;
            for entry in self.entries.iter().rev() {
                if let Some(i) = (0..list.len()).rev().find(|&i| list.get_item(i).is_ok_and(|e| e.is(entry))) {
                    list.del_item(i)?;
                }
            }
        }
        for name in &self.names {
            self.headers.del_item(*name)?;
        }
        Ok(())
    }
}

/// Where a traced httpx request's propagation headers are.
enum Sent<'py> {
    Nothing,
    /// In `HTTPX_OUT` (the token that restores it).
    Head(Bound<'py, PyAny>),
    Added(Added<'py>),
}

/// A traced httpx request in flight.
struct HttpxCall<'py> {
    span: Bound<'py, Span>,
    sent: Sent<'py>,
}

impl<'py> HttpxCall<'py> {
    /// The transport returned (or raised): headers out of the request, span ended.
    fn end(self, outcome: Outcome<'_, 'py>) {
        let py = self.span.py();
        match &self.sent {
            Sent::Nothing => {}
            Sent::Head(token) => {
                if let Some(var) = HTTPX_OUT.get(py) {
                    // A token from another context (the app switched contexts): left as it is.
                    let _ = capi::context_var_reset(var.bind(py), token);
                }
            }
            Sent::Added(added) => {
                quietly("the httpx hook", || added.remove());
            }
        }
        quietly("the httpx hook", || {
            match outcome {
                Outcome::Response(response) => HttpxHook::finish_response(self.span.get(), response),
                Outcome::Raised(exc) => end_with_error(self.span.get(), exc),
                Outcome::Error(err) => end_with_pyerr(py, self.span.get(), err),
            }
            Ok(())
        });
    }
}

impl HttpxHook {
    fn outgoing_start<'py>(&self, transport: Option<&Bound<'py, PyAny>>, request: &Bound<'py, PyAny>, h11: bool) -> PyResult<Option<HttpxCall<'py>>> {
        let py = request.py();
        let method = request.getattr(intern!(py, "method"))?;
        let Some(method) = text(&method) else { return Ok(None) };
        let url = request.getattr(intern!(py, "url"))?;
        let (scheme, host, port_num, target) = match url_parts_fast(&url)? {
            Some(parts) => parts,
            None => {
                // httpx's public URL properties (a few hundred ns each).
                let scheme = text(&url.getattr(intern!(py, "scheme"))?).map_or_else(|| "http".to_string(), |t| t.into_owned());
                let host = text(&url.getattr(intern!(py, "host"))?).map(|t| t.into_owned()).unwrap_or_default();
                let port_num = port(&url.getattr(intern!(py, "port"))?);
                let raw_path = url.getattr(intern!(py, "raw_path"))?;
                let target = match raw_path.cast::<PyBytes>() {
                    Ok(b) => String::from_utf8_lossy(b.as_bytes()).into_owned(),
                    Err(_) => text(&raw_path).map_or_else(|| "/".to_string(), |t| t.into_owned()),
                };
                (scheme, host, port_num, target)
            }
        };
        let out = Outgoing { method: &method, scheme: &scheme, host: &host, port: port_num, target: &target };
        let Some(span) = begin(py, &self.profile, out)? else { return Ok(None) };
        if capturing(headers::Kind::ClientRequest) {
            let given = request.getattr(intern!(py, "headers"))?;
            if let Ok(items) = given.call_method0(intern!(py, "multi_items")) {
                capture(py, span.get(), headers::Kind::ClientRequest, &headers::pairs_of(&items)?);
            }
        }
        let add = propagation_headers(span.get());
        if add.is_empty() {
            return Ok(Some(HttpxCall { span, sent: Sent::Nothing }));
        }
        if h11 && transport.is_some_and(http1_only) {
            let pending = PyBytes::new(py, &pending_head(&method, &target, &add));
            let token = capi::context_var_set(httpx_out_var(py)?, pending.as_any())?;
            return Ok(Some(HttpxCall { span, sent: Sent::Head(token) }));
        }
        let headers = request.getattr(intern!(py, "headers"))?;
        let added = match header_list(&headers, &add)? {
            Some((list, present)) => Added { entries: append_headers(&list, &add, &present)?, headers, names: Vec::new() },
            None => {
                let keys = headers.call_method0(intern!(py, "keys"))?;
                let mut names = Vec::new();
                for (name, value) in add {
                    let name = name.name();
                    if !keys.contains(name)? {
                        headers.set_item(name, value)?;
                        names.push(name);
                    }
                }
                Added { headers, entries: Vec::new(), names }
            }
        };
        Ok(Some(HttpxCall { span, sent: Sent::Added(added) }))
    }

    /// The transport returned `response` (`status_code`; the HTTP version from the response's
    /// `extensions`, where httpx's `http_version` property reads it, or that property).
    fn finish_response(span: &Span, response: &Bound<'_, PyAny>) {
        let py = response.py();
        capture_response(span, response);
        let status = response.getattr(intern!(py, "status_code")).ok().and_then(|s| int(&s));
        let version = (|| -> Option<&'static str> {
            let ext = response.getattr(intern!(py, "extensions")).ok()?;
            let ext = ext.cast::<PyDict>().ok()?;
            let v = ext.get_item(intern!(py, "http_version")).ok()??;
            let v = v.cast::<PyBytes>().ok()?;
            static_protocol(std::str::from_utf8(v.as_bytes()).ok()?)
        })()
        .or_else(|| {
            let v = response.getattr(intern!(py, "http_version")).ok()?;
            static_protocol(&text(&v)?)
        });
        end_with_response(span, status, version);
    }
}

/// Whether an httpx transport sends HTTP/1.1 only (its httpcore pool has HTTP/2 off).
fn http1_only(transport: &Bound<'_, PyAny>) -> bool {
    let py = transport.py();
    (|| -> PyResult<bool> {
        let Some(pool) = transport.getattr_opt(intern!(py, "_pool"))? else { return Ok(false) };
        Ok(pool.getattr_opt(intern!(py, "_http2"))?.is_some_and(|v| is_false(&v)))
    })()
    .unwrap_or(false)
}

/// `HTTP/1.1` → `1.1`, as a static string (the versions there are).
fn static_protocol(v: &str) -> Option<&'static str> {
    match sc::protocol_version(v)? {
        "0.9" => Some("0.9"),
        "1.0" => Some("1.0"),
        "1.1" => Some("1.1"),
        "2" | "2.0" => Some("2"),
        "3" | "3.0" => Some("3"),
        _ => None,
    }
}

/// Scheme, host, port and request target of a URL.
type UrlParts = (String, String, Option<u16>, String);

/// httpx's `URL` keeps its parsed form in `_uri_reference` (scheme, host, port, path, query as
/// plain strings; port None when default): one attribute read instead of four properties. None when
/// it is not there (another httpx version): the public properties are used.
fn url_parts_fast(url: &Bound<'_, PyAny>) -> PyResult<Option<UrlParts>> {
    let py = url.py();
    let Some(r) = url.getattr_opt(intern!(py, "_uri_reference"))? else { return Ok(None) };
    let (Some(scheme), Some(host), Some(port_v), Some(path), Some(query)) = (
        r.getattr_opt(intern!(py, "scheme"))?,
        r.getattr_opt(intern!(py, "host"))?,
        r.getattr_opt(intern!(py, "port"))?,
        r.getattr_opt(intern!(py, "path"))?,
        r.getattr_opt(intern!(py, "query"))?,
    ) else {
        return Ok(None);
    };
    let (Some(scheme), Some(host), Some(path)) = (text(&scheme), text(&host), text(&path)) else { return Ok(None) };
    let mut target = String::with_capacity(path.len() + 32);
    target.push_str(if path.is_empty() { "/" } else { &path });
    if let Some(q) = text(&query) {
        target.push('?');
        target.push_str(&q);
    }
    Ok(Some((scheme.to_string(), host.to_string(), port(&port_v), target)))
}

/// httpx's `Headers` keeps `_list` of `(raw name, lower-case name, value)` byte triples: that
/// list, and which of `add` it has already. None when the layout is not that one (the public API
/// is used).
fn header_list<'py>(headers: &Bound<'py, PyAny>, add: &[(Header, String)]) -> PyResult<Option<(Bound<'py, PyList>, Vec<bool>)>> {
    let py = headers.py();
    let Some(list) = headers.getattr_opt(intern!(py, "_list"))? else { return Ok(None) };
    let Ok(list) = list.cast_into::<PyList>() else { return Ok(None) };
    let mut present = vec![false; add.len()];
    for item in list.iter() {
        let Ok(t) = item.cast::<pyo3::types::PyTuple>() else { return Ok(None) };
        if t.len() != 3 {
            return Ok(None);
        }
        let Ok(lower) = t.get_item(1)?.cast_into::<PyBytes>() else { return Ok(None) };
        mark_present(lower.as_bytes(), add, &mut present);
    }
    Ok(Some((list, present)))
}

/// Append the entries of `add` not `present` to the headers' `_list`, as `__setitem__` does for a
/// new name (skipping `keys()` and `__setitem__`, about 1 µs each). The entries appended.
fn append_headers<'py>(list: &Bound<'py, PyList>, add: &[(Header, String)], present: &[bool]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let py = list.py();
    let mut entries = Vec::with_capacity(add.len());
    for ((name, value), here) in add.iter().zip(present) {
        if !here {
            let key = PyBytes::new(py, name.name().as_bytes());
            let entry = pyo3::types::PyTuple::new(py, [&key, &key, &PyBytes::new(py, value.as_bytes())])?.into_any();
            list.append(&entry)?;
            entries.push(entry);
        }
    }
    Ok(entries)
}

struct HttpxAround {
    hook: Py<HttpxHook>,
}

impl Around for HttpxAround {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        if agent::get().is_none() {
            return args.call(original);
        }
        let started = match (args.positional(0), args.get(1, "request")) {
            (transport, Some(request)) => {
                let h11 = H11_SYNC.load(Ordering::Relaxed);
                quietly("the httpx hook", || self.hook.get().outgoing_start(transport.as_deref(), &request, h11)).flatten()
            }
            _ => None,
        };
        let Some(call) = started else { return args.call(original) };
        let result = args.call(original);
        call.end(match &result {
            Ok(response) => Outcome::Response(response),
            Err(err) => Outcome::Error(err),
        });
        result
    }
}

/// An async httpx request in flight (what `HttpxHook.start` gives the async transport's wrapper).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct HttpxPending {
    span: Py<Span>,
    token: Option<Py<PyAny>>,
    added: Option<PendingAdded>,
}

/// `Added`, kept across the `await`: the headers object, its appended entries, the names set.
struct PendingAdded(Py<PyAny>, Vec<Py<PyAny>>, Vec<&'static str>);

impl HttpxPending {
    fn new(call: HttpxCall<'_>) -> Self {
        let (token, added) = match call.sent {
            Sent::Nothing => (None, None),
            Sent::Head(token) => (Some(token.unbind()), None),
            Sent::Added(a) => (None, Some(PendingAdded(a.headers.unbind(), a.entries.into_iter().map(Bound::unbind).collect(), a.names))),
        };
        HttpxPending { span: call.span.unbind(), token, added }
    }

    fn bind<'py>(&self, py: Python<'py>) -> HttpxCall<'py> {
        let sent = match (&self.token, &self.added) {
            (Some(token), _) => Sent::Head(token.bind(py).clone()),
            (None, Some(PendingAdded(headers, entries, names))) => Sent::Added(Added {
                headers: headers.bind(py).clone(),
                entries: entries.iter().map(|e| e.bind(py).clone()).collect(),
                names: names.clone(),
            }),
            (None, None) => Sent::Nothing,
        };
        HttpxCall { span: self.span.bind(py).clone(), sent }
    }
}

#[pymethods]
impl HttpxHook {
    #[new]
    #[pyo3(signature = (scope = "ferrotel.httpx".to_string(), exclude = None))]
    fn new(scope: String, exclude: Option<Bound<'_, PyAny>>) -> Self {
        HttpxHook { profile: Profile::new(scope, exclude) }
    }

    /// The hook to put in place of `HTTPTransport.handle_request` (`original`).
    fn wrap<'py>(slf: &Bound<'py, Self>, original: Bound<'py, PyAny>) -> PyResult<Bound<'py, MethodHook>> {
        MethodHook::new(slf.py(), "handle_request", original, Box::new(HttpxAround { hook: slf.clone().unbind() }))
    }

    /// `(var, splice)` for the `send` of the `h11.Connection` subclass httpcore's HTTP/1.1
    /// connections are given: the context variable a traced request's pending headers are in,
    /// and the function that writes them into the head h11 serialised.
    #[staticmethod]
    fn h11_functions(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
        Ok((httpx_out_var(py)?.clone(), fast_function(py, "splice", Box::new(H11Splice))?))
    }

    /// httpcore's sync (`asynchronous` false) or async HTTP/1.1 connections now have that
    /// subclass: requests through them get their headers written into the head.
    #[staticmethod]
    fn h11_ready(asynchronous: bool) {
        if asynchronous { &H11_ASYNC } else { &H11_SYNC }.store(true, Ordering::Relaxed);
    }

    /// `(start, finish, fail)` for the async transport's wrapper: `start(transport, request)`
    /// gives the request in flight (None when not traced), its propagation headers pending until
    /// `finish(pending, response)` or `fail(pending, exc)`.
    fn functions<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let f = |name: &str, which: HttpxFn| fast_function(py, name, Box::new(HttpxFunction { hook: slf.clone().unbind(), which }));
        Ok((f("start", HttpxFn::Start)?, f("finish", HttpxFn::Finish)?, f("fail", HttpxFn::Fail)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn pending(method: &str, target: &str) -> Vec<u8> {
        pending_head(method, target, &[(Header::TraceParent, TP.to_string()), (Header::Baggage, "k=v".to_string())])
    }

    #[test]
    fn request_lines() {
        assert_eq!(request_line(b"GET /a?b=1 HTTP/1.1"), Some(("GET", "/a?b=1")));
        assert_eq!(request_line(b"GET http://h:1/x HTTP/1.0"), Some(("GET", "http://h:1/x")));
        assert_eq!(request_line(b"GET"), None);
        assert_eq!(request_line(b"GET  HTTP/1.1"), None);
        assert_eq!(request_line(b"\xff /x HTTP/1.1"), None);
    }

    #[test]
    fn headers_go_before_the_blank_line() {
        let head = b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
        let out = splice_head(head, &pending("GET", "/a?b=1")).unwrap();
        let want = format!("GET /a?b=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\ntraceparent: {TP}\r\nbaggage: k=v\r\n\r\n");
        assert_eq!(String::from_utf8(out).unwrap(), want);
        // No header line at all.
        let out = splice_head(b"GET / HTTP/1.1\r\n\r\n", &pending("GET", "/")).unwrap();
        assert!(out.starts_with(b"GET / HTTP/1.1\r\ntraceparent: ") && out.ends_with(b"\r\nbaggage: k=v\r\n\r\n"));
        // Nothing to add.
        assert_eq!(splice_head(b"GET / HTTP/1.1\r\n\r\n", &pending_head("GET", "/", &[])), None);
    }

    #[test]
    fn headers_the_request_has_are_kept() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nTraceParent: 00-1-2-01\r\n\r\n";
        let out = String::from_utf8(splice_head(head, &pending("GET", "/")).unwrap()).unwrap();
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: h\r\nTraceParent: 00-1-2-01\r\nbaggage: k=v\r\n\r\n");
        let both = b"GET / HTTP/1.1\r\ntraceparent: x\r\nBAGGAGE: y\r\n\r\n";
        assert_eq!(splice_head(both, &pending("GET", "/")), None);
        // A header whose name only starts with ours is another header.
        let longer = b"GET / HTTP/1.1\r\ntraceparent-x: 1\r\n\r\n";
        assert!(splice_head(longer, &pending("GET", "/")).unwrap().windows(13).any(|w| w == b"traceparent: "));
    }

    #[test]
    fn only_that_requests_head() {
        let p = pending("GET", "/a");
        // Through a forward proxy the target is absolute: it ends with ours.
        assert!(splice_head(b"GET http://h:8080/a HTTP/1.1\r\nHost: h\r\n\r\n", &p).is_some());
        // A tunnel's CONNECT, another method or target, a body chunk, an unfinished head: untouched.
        assert_eq!(splice_head(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", &p), None);
        assert_eq!(splice_head(b"POST /a HTTP/1.1\r\n\r\n", &p), None);
        assert_eq!(splice_head(b"GET /b HTTP/1.1\r\n\r\n", &p), None);
        assert_eq!(splice_head(b"0\r\n\r\n", &p), None);
        assert_eq!(splice_head(b"hello", &p), None);
        assert_eq!(splice_head(b"GET /a HTTP/1.1\r\nHost: h\r\n", &p), None);
        assert_eq!(splice_head(b"", &p), None);
        assert_eq!(splice_head(b"GET /a HTTP/1.1\r\n\r\n", b""), None);
    }
}
