//! Outgoing HTTP calls: one CLIENT span per request sent on the wire, a child of the active span
//! (a root when there is none, as the pure-Python agent does), with the configured propagators'
//! headers written into the request unless the application set them itself.
//!
//! Where the hooks sit (the Python side, `ferrotel/hooks/{http_client,urllib3,httpx}.py`,
//! installs them and keeps its wrappers to a few lines):
//! - `HttpClientHook`: `http.client.HTTPConnection` — `putrequest` starts the span (kept on the
//!   connection), `endheaders` writes the headers into the connection's buffer, `getresponse`
//!   ends it. Covers `urllib.request` and anything else built on `http.client`. urllib3's
//!   connections subclass it but are skipped (class attribute `_ferrotel_span = False`): urllib3
//!   is traced one layer up, where its connect errors and the pool's origin are visible.
//! - `Urllib3Hook`: `HTTPConnectionPool._make_request`, one call per request on the wire —
//!   covers urllib3 and requests (which sends through urllib3).
//! - `HttpxHook`: `httpx.HTTPTransport.handle_request` and the async transport's
//!   `handle_async_request` (httpx sends through httpcore, not `http.client`).
//!
//! Every entry point fails open: an agent fault costs the span, never the call.

use once_cell::sync::OnceCell;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use super::current;
use super::guard::quietly;
use super::span::Span;
use crate::agent;
use crate::config::InstrumentationConfig;
use crate::context::propagation;
use crate::context::TraceId;
use crate::sampler::Sampler;
use crate::semconv as sc;
use crate::span::{Scope, SpanKind, SpanRecord};

static INSTRUMENTATION: OnceCell<InstrumentationConfig> = OnceCell::new();

/// Called once by `start` with the configuration it read.
pub fn configure(c: &InstrumentationConfig) {
    let _ = INSTRUMENTATION.set(c.clone());
}

/// `(enabled, excluded-URL regexes)` for the instrumentation upstream calls `name` (`urllib`,
/// `urllib3`, `requests`, `httpx`, ...), from `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` and
/// `OTEL_PYTHON_<NAME>_EXCLUDED_URLS` / `OTEL_PYTHON_EXCLUDED_URLS`.
#[pyfunction]
pub fn instrumentation(name: &str) -> (bool, Vec<String>) {
    match INSTRUMENTATION.get() {
        Some(c) => (c.enabled(name), c.excluded_urls(name).to_vec()),
        None => (true, Vec::new()),
    }
}

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

/// Start the CLIENT span of a request (None: agent off, or the URL is excluded).
fn begin<'py>(py: Python<'py>, profile: &Profile, out: Outgoing<'_>) -> PyResult<Option<Bound<'py, Span>>> {
    let Some(agent) = agent::get() else { return Ok(None) };
    let url = sc::client_url(out.scheme, out.host, out.port, out.target);
    if profile.excluded(py, &url)? {
        return Ok(None);
    }
    let parent = current::get(py);
    let parent_span = parent.as_ref().map(|p| p.get());
    let parent_ctx = parent_span.map(|s| &s.context);
    let baggage = parent_span.and_then(|s| s.baggage.clone());
    let trace_id = parent_ctx.map_or_else(TraceId::random, |p| p.trace_id);
    let head = agent.sampler.decide(parent_ctx, trace_id);
    let recording = agent.records(head);
    let name = sc::client_span_name(out.method).to_string();
    let mut rec = SpanRecord::start(name, SpanKind::Client, profile.scope.clone(), parent_ctx, trace_id, head);
    if recording {
        sc::set_method(&mut rec, out.method);
        let absolute = if out.target.starts_with('/') { None } else { sc::url_origin(&url) };
        let (host, port) = match absolute {
            Some((_, h, p)) => (h.to_string(), p),
            None => (out.host.to_string(), out.port.or_else(|| sc::default_port(out.scheme))),
        };
        if !host.is_empty() {
            rec.set(sc::SERVER_ADDRESS, host);
        }
        if let Some(p) = port {
            rec.set(sc::SERVER_PORT, p as i64);
        }
        rec.set(sc::URL_FULL, url);
    }
    Ok(Some(Bound::new(py, Span::new(rec, baggage, recording, None))?))
}

/// The configured propagators' headers for a request whose parent is `span`.
fn propagation_headers(span: &Span) -> Vec<(&'static str, String)> {
    match agent::get() {
        Some(a) => propagation::inject(&a.propagators, &span.context, span.baggage.as_deref()).into_iter().map(|(h, v)| (h.name(), v)).collect(),
        None => Vec::new(),
    }
}

/// End a span whose request got a response.
fn end_with_response(span: &Span, status: Option<i64>, version: Option<&str>) {
    span.end(|rec| {
        if let Some(v) = version {
            rec.set(sc::NETWORK_PROTOCOL_VERSION, v.to_string());
        }
        sc::finish_client_span(rec, status);
    });
}

/// End a span whose request raised: `exception` event, `error.type`, status ERROR.
fn end_with_error(span: &Span, exc: &Bound<'_, PyAny>) {
    span.record_exception(exc);
    span.end(|_| {});
}

fn text(v: &Bound<'_, PyAny>) -> Option<String> {
    v.cast::<PyString>().ok()?.to_cow().ok().map(|c| c.into_owned())
}

fn int(v: &Bound<'_, PyAny>) -> Option<i64> {
    v.extract::<i64>().ok()
}

fn port(v: &Bound<'_, PyAny>) -> Option<u16> {
    v.extract::<u16>().ok()
}

/// Which of `names` a header name (as bytes or str) matches, case-insensitively.
fn mark_present(name: &[u8], names: &[(&'static str, String)], present: &mut [bool]) {
    let name = name.trim_ascii();
    for (i, (n, _)) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case(n.as_bytes()) {
            present[i] = true;
        }
    }
}

// ---- http.client -------------------------------------------------------------------------

/// The `http.client.HTTPConnection` hook (see the module doc). The span of the request in flight
/// lives in the connection's `_ferrotel_span` attribute (None between requests).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct HttpClientHook {
    profile: Profile,
    /// `http.client.HTTPSConnection` (absent when Python has no `ssl`).
    https_class: Option<Py<PyAny>>,
}

impl HttpClientHook {
    fn take_span<'py>(conn: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, Span>>> {
        let py = conn.py();
        let attr = intern!(py, "_ferrotel_span");
        let span = conn.getattr(attr)?.cast_into::<Span>().ok();
        if span.is_some() {
            conn.setattr(attr, py.None())?;
        }
        Ok(span)
    }

    fn outgoing_start(&self, conn: &Bound<'_, PyAny>, method: &Bound<'_, PyAny>, url: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = conn.py();
        // A request abandoned before its response (no getresponse) ends here, unfinished.
        if let Some(stale) = Self::take_span(conn)? {
            stale.get().end(|_| {});
        }
        let (Some(method), Some(target)) = (text(method), text(url)) else { return Ok(()) };
        let https = match &self.https_class {
            Some(cls) => conn.is_instance(cls.bind(py))?,
            None => false,
        };
        let scheme = if https { "https" } else { "http" };
        // Through a CONNECT tunnel the connection's host is the proxy; the origin is the tunnel's.
        let tunnel = conn.getattr_opt(intern!(py, "_tunnel_host"))?.and_then(|h| text(&h));
        let (host, port_num) = match tunnel {
            Some(h) => (h, conn.getattr_opt(intern!(py, "_tunnel_port"))?.and_then(|p| port(&p))),
            None => (text(&conn.getattr(intern!(py, "host"))?).unwrap_or_default(), port(&conn.getattr(intern!(py, "port"))?)),
        };
        let out = Outgoing { method: &method, scheme, host: &host, port: port_num, target: &target };
        if let Some(span) = begin(py, &self.profile, out)? {
            conn.setattr(intern!(py, "_ferrotel_span"), span)?;
        }
        Ok(())
    }

    /// Append the propagation headers to the connection's header buffer (the request line and
    /// the `putheader` lines so far), skipping any the application already put.
    fn write_headers(conn: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = conn.py();
        let Ok(span) = conn.getattr(intern!(py, "_ferrotel_span"))?.cast_into::<Span>() else { return Ok(()) };
        let headers = propagation_headers(span.get());
        if headers.is_empty() {
            return Ok(());
        }
        let buffer = conn.getattr(intern!(py, "_buffer"))?;
        let Ok(buffer) = buffer.cast::<PyList>() else {
            for (name, value) in headers {
                conn.call_method1(intern!(py, "putheader"), (name, value))?;
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
                let mut line = Vec::with_capacity(name.len() + value.len() + 2);
                line.extend_from_slice(name.as_bytes());
                line.extend_from_slice(b": ");
                line.extend_from_slice(value.as_bytes());
                buffer.append(PyBytes::new(py, &line))?;
            }
        }
        Ok(())
    }
}

#[pymethods]
impl HttpClientHook {
    #[new]
    #[pyo3(signature = (scope = "ferrotel.urllib".to_string(), exclude = None, https_class = None))]
    fn new(scope: String, exclude: Option<Bound<'_, PyAny>>, https_class: Option<Bound<'_, PyAny>>) -> Self {
        HttpClientHook { profile: Profile::new(scope, exclude), https_class: https_class.filter(|c| !c.is_none()).map(Bound::unbind) }
    }

    /// After `putrequest(method, url)`: start this request's span.
    fn start(&self, conn: &Bound<'_, PyAny>, method: &Bound<'_, PyAny>, url: &Bound<'_, PyAny>) {
        quietly("the http.client hook", || self.outgoing_start(conn, method, url));
    }

    /// Before `endheaders()`: write the propagation headers.
    fn inject(&self, conn: &Bound<'_, PyAny>) {
        quietly("the http.client hook", || Self::write_headers(conn));
    }

    /// `endheaders()` or `getresponse()` raised `exc`: end the span as failed.
    fn fail(&self, conn: &Bound<'_, PyAny>, exc: &Bound<'_, PyAny>) {
        quietly("the http.client hook", || {
            if let Some(span) = Self::take_span(conn)? {
                end_with_error(span.get(), exc);
            }
            Ok(())
        });
    }

    /// `getresponse()` returned `response`: status, protocol version, end.
    fn finish(&self, conn: &Bound<'_, PyAny>, response: &Bound<'_, PyAny>) {
        quietly("the http.client hook", || {
            let py = conn.py();
            if let Some(span) = Self::take_span(conn)? {
                let status = response.getattr(intern!(py, "status")).ok().and_then(|s| int(&s));
                let version = response.getattr(intern!(py, "version")).ok().and_then(|v| int(&v)).and_then(sc::protocol_from_number);
                end_with_response(span.get(), status, version);
            }
            Ok(())
        });
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
}

impl Urllib3Hook {
    fn outgoing_start<'py>(
        &self,
        pool: &Bound<'py, PyAny>,
        method: &Bound<'py, PyAny>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, Span>>> {
        let py = pool.py();
        let via_requests = match &self.marker {
            Some(m) => m.bind(py).call_method0(intern!(py, "get"))?.is_truthy()?,
            None => false,
        };
        let profile = if via_requests { &self.requests } else { &self.direct };
        let Some(profile) = profile else { return Ok(None) };
        let (Some(method), Some(target)) = (text(method), text(url)) else { return Ok(None) };
        let scheme = text(&pool.getattr(intern!(py, "scheme"))?).unwrap_or_else(|| "http".into());
        let host = text(&pool.getattr(intern!(py, "host"))?).unwrap_or_default();
        let port_num = port(&pool.getattr(intern!(py, "port"))?);
        let out = Outgoing { method: &method, scheme: &scheme, host: &host, port: port_num, target: &target };
        let Some(span) = begin(py, profile, out)? else { return Ok(None) };
        let headers = propagation_headers(span.get());
        if let (false, Some(kwargs)) = (headers.is_empty(), kwargs) {
            let key = intern!(py, "headers");
            let given = kwargs.get_item(key)?;
            kwargs.set_item(key, with_headers(py, given, &headers)?)?;
        }
        Ok(Some(span))
    }
}

/// A copy of the request's headers (the caller's mapping is often shared: a pool's defaults,
/// or reused by retries) with the propagation headers the caller did not set.
fn with_headers<'py>(py: Python<'py>, given: Option<Bound<'py, PyAny>>, add: &[(&'static str, String)]) -> PyResult<Bound<'py, PyAny>> {
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
            copy.set_item(*name, value)?;
        }
    }
    Ok(copy)
}

/// requests' `CaseInsensitiveDict` (what requests hands urllib3) keeps `_store`: lower-case name
/// → (name, value). Copying and filling that dict directly is C-level work, several µs less than
/// the class's Python `copy()`/`__iter__`/`__setitem__`. None: not such a mapping (use the generic
/// path).
fn case_insensitive_copy<'py>(given: &Bound<'py, PyAny>, add: &[(&'static str, String)]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = given.py();
    let Some(store) = given.getattr_opt(intern!(py, "_store"))? else { return Ok(None) };
    let Ok(store) = store.cast_into::<PyDict>() else { return Ok(None) };
    let cls = given.get_type();
    let copy = cls.call_method1(intern!(py, "__new__"), (&cls,))?;
    let new_store = store.call_method0(intern!(py, "copy"))?;
    for (name, value) in add {
        // Names are lower case already: they are the store's keys.
        if !new_store.contains(*name)? {
            new_store.set_item(*name, (*name, value))?;
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
        }
    }

    /// Before `_make_request(conn, method, url, **kwargs)`: the span, with the propagation
    /// headers put into a copy of `kwargs["headers"]`; None when this call is not traced.
    fn start<'py>(
        &self,
        pool: &Bound<'py, PyAny>,
        method: &Bound<'py, PyAny>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> Option<Bound<'py, Span>> {
        quietly("the urllib3 hook", || self.outgoing_start(pool, method, url, kwargs.as_ref())).flatten()
    }

    /// The request returned `response` (urllib3's `HTTPResponse`: `status`, `version`).
    fn finish(&self, span: &Bound<'_, Span>, response: &Bound<'_, PyAny>) {
        quietly("the urllib3 hook", || {
            let py = span.py();
            let status = response.getattr(intern!(py, "status")).ok().and_then(|s| int(&s));
            let version = response.getattr(intern!(py, "version")).ok().and_then(|v| int(&v)).and_then(sc::protocol_from_number);
            end_with_response(span.get(), status, version);
            Ok(())
        });
    }

    fn fail(&self, span: &Bound<'_, Span>, exc: &Bound<'_, PyAny>) {
        quietly("the urllib3 hook", || {
            end_with_error(span.get(), exc);
            Ok(())
        });
    }
}

// ---- httpx ---------------------------------------------------------------------------------

/// The httpx transport hook: `handle_request(request)` / `handle_async_request(request)`.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct HttpxHook {
    profile: Profile,
}

impl HttpxHook {
    fn outgoing_start<'py>(&self, request: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, Span>>> {
        let py = request.py();
        let Some(method) = text(&request.getattr(intern!(py, "method"))?) else { return Ok(None) };
        let url = request.getattr(intern!(py, "url"))?;
        let (scheme, host, port_num, target) = match url_parts_fast(&url)? {
            Some(parts) => parts,
            None => {
                // httpx's public URL properties (a few hundred ns each).
                let scheme = text(&url.getattr(intern!(py, "scheme"))?).unwrap_or_else(|| "http".into());
                let host = text(&url.getattr(intern!(py, "host"))?).unwrap_or_default();
                let port_num = port(&url.getattr(intern!(py, "port"))?);
                let raw_path = url.getattr(intern!(py, "raw_path"))?;
                let target = match raw_path.cast::<PyBytes>() {
                    Ok(b) => String::from_utf8_lossy(b.as_bytes()).into_owned(),
                    Err(_) => text(&raw_path).unwrap_or_else(|| "/".into()),
                };
                (scheme, host, port_num, target)
            }
        };
        let out = Outgoing { method: &method, scheme: &scheme, host: &host, port: port_num, target: &target };
        let Some(span) = begin(py, &self.profile, out)? else { return Ok(None) };
        let add = propagation_headers(span.get());
        if !add.is_empty() {
            let headers = request.getattr(intern!(py, "headers"))?;
            if !add_headers_fast(&headers, &add)? {
                let keys = headers.call_method0(intern!(py, "keys"))?;
                for (name, value) in add {
                    if !keys.contains(name)? {
                        headers.set_item(name, value)?;
                    }
                }
            }
        }
        Ok(Some(span))
    }
}

/// httpx's `URL` keeps its parsed form in `_uri_reference` (scheme, host, port, path, query as
/// plain strings; port None when default): one attribute read instead of four properties. None when
/// it is not there (another httpx version): the public properties are used.
fn url_parts_fast(url: &Bound<'_, PyAny>) -> PyResult<Option<(String, String, Option<u16>, String)>> {
    let py = url.py();
    let Some(r) = url.getattr_opt(intern!(py, "_uri_reference"))? else { return Ok(None) };
    let (Some(scheme), Some(host), Some(port_v), Some(path), Some(query)) = (
        r.getattr_opt(intern!(py, "scheme"))?.and_then(|v| text(&v)),
        r.getattr_opt(intern!(py, "host"))?.and_then(|v| text(&v)),
        r.getattr_opt(intern!(py, "port"))?,
        r.getattr_opt(intern!(py, "path"))?.and_then(|v| text(&v)),
        r.getattr_opt(intern!(py, "query"))?,
    ) else {
        return Ok(None);
    };
    let mut target = if path.is_empty() { "/".to_string() } else { path };
    if let Some(q) = text(&query) {
        target.push('?');
        target.push_str(&q);
    }
    Ok(Some((scheme, host, port(&port_v), target)))
}

/// httpx's `Headers` keeps `_list` of `(raw name, lower-case name, value)` byte triples; its
/// `__setitem__` for a new name appends one. Doing that here skips `keys()` and `__setitem__`
/// (about 1 µs each). False when the layout is not that one (the public API is used).
fn add_headers_fast(headers: &Bound<'_, PyAny>, add: &[(&'static str, String)]) -> PyResult<bool> {
    let py = headers.py();
    let Some(list) = headers.getattr_opt(intern!(py, "_list"))? else { return Ok(false) };
    let Ok(list) = list.cast_into::<PyList>() else { return Ok(false) };
    let mut present = vec![false; add.len()];
    for item in list.iter() {
        let Ok(t) = item.cast::<pyo3::types::PyTuple>() else { return Ok(false) };
        if t.len() != 3 {
            return Ok(false);
        }
        let Ok(lower) = t.get_item(1)?.cast_into::<PyBytes>() else { return Ok(false) };
        mark_present(lower.as_bytes(), add, &mut present);
    }
    for ((name, value), here) in add.iter().zip(present) {
        if !here {
            let key = PyBytes::new(py, name.as_bytes());
            list.append((&key, &key, PyBytes::new(py, value.as_bytes())))?;
        }
    }
    Ok(true)
}

#[pymethods]
impl HttpxHook {
    #[new]
    #[pyo3(signature = (scope = "ferrotel.httpx".to_string(), exclude = None))]
    fn new(scope: String, exclude: Option<Bound<'_, PyAny>>) -> Self {
        HttpxHook { profile: Profile::new(scope, exclude) }
    }

    /// Before the transport sends `request`: the span (None when not traced), with the
    /// propagation headers added to `request.headers`.
    fn start<'py>(&self, request: &Bound<'py, PyAny>) -> Option<Bound<'py, Span>> {
        quietly("the httpx hook", || self.outgoing_start(request)).flatten()
    }

    /// The transport returned `response` (`status_code`, `http_version` such as `HTTP/1.1`).
    fn finish(&self, span: &Bound<'_, Span>, response: &Bound<'_, PyAny>) {
        quietly("the httpx hook", || {
            let py = span.py();
            let status = response.getattr(intern!(py, "status_code")).ok().and_then(|s| int(&s));
            let version = response.getattr(intern!(py, "http_version")).ok().and_then(|v| text(&v));
            end_with_response(span.get(), status, version.as_deref().and_then(sc::protocol_version));
            Ok(())
        });
    }

    fn fail(&self, span: &Bound<'_, Span>, exc: &Bound<'_, PyAny>) {
        quietly("the httpx hook", || {
            end_with_error(span.get(), exc);
            Ok(())
        });
    }
}
