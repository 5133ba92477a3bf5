//! WSGI server spans, in Rust: the middleware (`ferrotel.wsgi.Middleware(app)`, and what the
//! Flask hook gives every Flask app as its instance `wsgi_app`), the `start_response` wrapper (status,
//! and Flask's route template while the request context is still alive) and the response-body
//! wrapper whose `close()` ends the span, so streamed responses are timed to the last chunk.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyIterator, PyString, PyTuple};

use crate::hooks::capi;
use crate::hooks::current;
use super::headers;
use super::server;
use crate::hooks::guard::{self, quietly};
use crate::config::TestFault;
use crate::hooks::span::Span;
use crate::agent::{self, Agent};
use crate::context::propagation::{self, Header};
use crate::semconv::{self as sc};
use crate::span::{Scope, SpanRecord, Text, Value};

#[derive(Clone)]
struct Options {
    scope: Scope,
    /// Read Flask's route template (`environ["werkzeug.request"].url_rule.rule`).
    flask_route: bool,
    /// The app is Django's WSGI handler: its usual responses end the span from their own close.
    django: bool,
}

/// WSGI middleware: `Middleware(app)` is a WSGI app that traces every request to `app`.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct WsgiMiddleware {
    app: Py<PyAny>,
    opts: Options,
    /// `OTEL_PYTHON_<NAME>_EXCLUDED_URLS` / `OTEL_PYTHON_EXCLUDED_URLS`: a callable (the
    /// compiled regex's `search`) given the request's full URL; a match leaves it untraced.
    excluded: Option<Py<PyAny>>,
}

#[pymethods]
impl WsgiMiddleware {
    #[new]
    /// `flask=True`: the wrapped callable is a Flask app's `wsgi_app`; read its route template.
    /// `excluded`: called with each request's full URL; a true answer leaves it untraced.
    /// `django=True`: the wrapped callable is Django's `WSGIHandler.__call__`.
    #[pyo3(signature = (app, scope = "ferrotel.wsgi".to_string(), flask = false, excluded = None, django = false))]
    fn new(py: Python<'_>, app: Py<PyAny>, scope: String, flask: bool, excluded: Option<Py<PyAny>>, django: bool) -> Self {
        let scope = match scope.as_str() {
            "ferrotel.wsgi" => Scope::fixed("ferrotel.wsgi"),
            "ferrotel.flask" => Scope::fixed("ferrotel.flask"),
            _ => Scope { name: scope.into(), version: Some(env!("CARGO_PKG_VERSION").into()) },
        };
        WsgiMiddleware { app, opts: Options { scope, flask_route: flask, django }, excluded: excluded.filter(|e| !e.is_none(py)) }
    }

    fn __call__(&self, py: Python<'_>, environ: Bound<'_, PyAny>, start_response: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Some(excluded) = &self.excluded {
            if quietly("the WSGI hook", || excluded.bind(py).call1((wsgi_url(&environ)?,))?.is_truthy()) == Some(true) {
                return Ok(self.app.bind(py).call1((environ, start_response))?.unbind());
            }
        }
        handle(py, self.app.bind(py), environ, start_response, &self.opts)
    }

    /// The wrapped application.
    #[getter]
    fn app(&self, py: Python<'_>) -> Py<PyAny> {
        self.app.clone_ref(py)
    }
}

fn handle(py: Python<'_>, app: &Bound<'_, PyAny>, environ: Bound<'_, PyAny>, start_response: Bound<'_, PyAny>, opts: &Options) -> PyResult<Py<PyAny>> {
    let begun = agent::get().and_then(|agent| quietly("the WSGI hook", || begin(py, agent, &environ, &start_response, opts)));
    let Some((span, wrapped_sr, light)) = begun else {
        return Ok(app.call1((environ, start_response))?.unbind());
    };
    let token = quietly("the current-span store", || current::enter(py, &span)).flatten();
    let result = app.call1((environ.clone(), wrapped_sr.clone()));
    current::exit(py, token);
    // A light record (the head sampler dropped it) keeps the environ until it ends, to read the
    // attributes it skipped should it be exported after all (`server::late_fill_needed`).
    let late = if light { environ.cast::<PyDict>().ok().map(|e| e.clone().unbind()) } else { None };
    match result {
        Ok(body) => {
            if opts.flask_route || opts.django {
                // Flask's usual body: end the span from Werkzeug's own close callbacks instead of
                // wrapping the body; Django's: from the response's own closers. The callback is
                // the `start_response` wrapper itself (called without arguments): no further
                // object per request, and nothing between the server and the body.
                let attached = quietly("the WSGI hook", || {
                    let callbacks = if opts.django { django_closers(&body)? } else { closing_callbacks(&body)? };
                    callbacks
                        .map(|cbs| {
                            let sr = wrapped_sr.get();
                            sr.closing.store(true, std::sync::atomic::Ordering::Relaxed);
                            cbs.append(&wrapped_sr)
                        })
                        .transpose()
                });
                if attached.flatten().is_some() {
                    return Ok(body.unbind());
                }
            }
            // (Checked after Flask's usual body, a Werkzeug ClosingIterator, which is never the
            // server's file wrapper: one environ lookup fewer per Flask request.)
            if is_file_wrapper(&environ, &body) {
                // The server sends it with sendfile() when it recognises its own wrapper: hand it
                // back untouched; the app's work is done, so the span ends here.
                end_span(py, span.get(), late.as_ref());
                return Ok(body.unbind());
            }
            let body = body.unbind();
            let wrapped = quietly("the WSGI hook", || {
                let wrapper = ResponseBody { body: body.clone_ref(py), iter: PyOnceLock::new(), span: span.clone().unbind(), late: late.as_ref().map(|e| e.clone_ref(py)) };
                // Servers size one-chunk bodies with len() (waitress sets Content-Length that way):
                // a body with a length keeps it through the wrapper.
                if body.bind(py).is_instance_of::<pyo3::types::PyList>() || body.bind(py).is_instance_of::<pyo3::types::PyTuple>() {
                    Ok(Py::new(py, PyClassInitializer::from(wrapper).add_subclass(SizedResponseBody))?.into_any())
                } else {
                    Ok(Py::new(py, wrapper)?.into_any())
                }
            });
            match wrapped {
                Some(w) => Ok(w),
                None => {
                    end_span(py, span.get(), late.as_ref());
                    Ok(body)
                }
            }
        }
        Err(err) => {
            quietly("the WSGI hook", || {
                let span = span.get();
                span.record_pyerr(py, &err);
                // The app raised before start_response (Flask in debug mode or with
                // PROPAGATE_EXCEPTIONS re-raises out of wsgi_app and never calls it): the client
                // gets the server's 500 (gunicorn, waitress, Werkzeug's server and debugger all
                // answer so). A status start_response already recorded stays.
                span.with(|rec| {
                    if rec.get(sc::HTTP_RESPONSE_STATUS_CODE).is_none() {
                        rec.set(sc::HTTP_RESPONSE_STATUS_CODE, 500i64);
                    }
                });
                end_span(py, span, late.as_ref());
                Ok(())
            });
            Err(err)
        }
    }
}

static CLOSING_ITERATOR: PyOnceLock<Option<Py<pyo3::types::PyType>>> = PyOnceLock::new();

/// The close-callback list of a Werkzeug `ClosingIterator` over a response that is not streamed
/// (its body is a list or tuple, so iterating it cannot fail): the span can end when the server
/// closes the body, with nothing between the server and the body. None for anything else
/// (streamed bodies keep the wrapper, which records an error raised while iterating).
fn closing_callbacks<'py>(body: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, pyo3::types::PyList>>> {
    let py = body.py();
    let ty = body.get_type();
    let known = CLOSING_ITERATOR.get_or_init(py, || {
        (|| -> PyResult<Option<Py<pyo3::types::PyType>>> {
            let module = py.import("sys")?.getattr("modules")?.get_item("werkzeug.wsgi").ok();
            Ok(match module {
                Some(m) => m.getattr_opt("ClosingIterator")?.and_then(|t| t.cast_into::<pyo3::types::PyType>().ok()).map(Bound::unbind),
                None => None,
            })
        })()
        .unwrap_or(None)
    });
    if !known.as_ref().is_some_and(|k| ty.is(k.bind(py))) {
        return Ok(None);
    }
    let Some(callbacks) = body.getattr_opt(intern!(py, "_callbacks"))?.and_then(|c| c.cast_into::<pyo3::types::PyList>().ok()) else { return Ok(None) };
    // Werkzeug puts `Response.close` last: its response tells whether the body is streamed.
    let Some(last) = callbacks.len().checked_sub(1).map(|i| callbacks.get_item(i)).transpose()? else { return Ok(None) };
    let Some(response) = last.getattr_opt(intern!(py, "__self__"))? else { return Ok(None) };
    let Some(inner) = response.getattr_opt(intern!(py, "response"))? else { return Ok(None) };
    Ok((inner.is_instance_of::<pyo3::types::PyList>() || inner.is_instance_of::<PyTuple>()).then_some(callbacks))
}

static DJANGO_RESPONSE: PyOnceLock<Option<Py<pyo3::types::PyType>>> = PyOnceLock::new();

/// The closer list of a Django `HttpResponse` (not streamed: its content is bytes already, so
/// iterating it cannot fail): `close()`, which the server calls, calls each closer (and ignores
/// their exceptions), so the span can end there with nothing between the server and the body.
/// None for anything else (streamed responses keep the wrapper, which records an error raised
/// while iterating; `FileResponse` is streamed).
fn django_closers<'py>(body: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, pyo3::types::PyList>>> {
    let py = body.py();
    let known = DJANGO_RESPONSE.get_or_init(py, || {
        (|| -> PyResult<Option<Py<pyo3::types::PyType>>> {
            let module = py.import("sys")?.getattr("modules")?.get_item("django.http.response").ok();
            Ok(match module {
                Some(m) => m.getattr_opt("HttpResponse")?.and_then(|t| t.cast_into::<pyo3::types::PyType>().ok()).map(Bound::unbind),
                None => None,
            })
        })()
        .unwrap_or(None)
    });
    let Some(known) = known else { return Ok(None) };
    if !body.is_instance(known.bind(py))? {
        return Ok(None);
    }
    Ok(body.getattr_opt(intern!(py, "_resource_closers"))?.and_then(|c| c.cast_into::<pyo3::types::PyList>().ok()))
}

/// Whether `body` is the server's `wsgi.file_wrapper` (lists and tuples, the usual bodies, are
/// ruled out without a lookup).
fn is_file_wrapper(environ: &Bound<'_, PyAny>, body: &Bound<'_, PyAny>) -> bool {
    if body.is_instance_of::<pyo3::types::PyList>() || body.is_instance_of::<pyo3::types::PyTuple>() {
        return false;
    }
    let py = body.py();
    let Ok(environ) = environ.cast::<PyDict>() else { return false };
    match environ.get_item(intern!(py, "wsgi.file_wrapper")) {
        Ok(Some(wrapper)) => wrapper.cast::<pyo3::types::PyType>().is_ok_and(|t| body.is_instance(t).unwrap_or(false)),
        _ => false,
    }
}

static INBOUND_KEYS: PyOnceLock<Vec<(Header, Py<PyString>)>> = PyOnceLock::new();

fn inbound_keys<'a>(py: Python<'_>, agent: &Agent) -> &'a [(Header, Py<PyString>)]
where
    'static: 'a,
{
    INBOUND_KEYS.get_or_init(py, || agent.inbound_headers.iter().map(|h| (*h, PyString::intern(py, h.cgi_name()).unbind())).collect())
}

fn begin<'py>(
    py: Python<'py>,
    agent: &Agent,
    environ: &Bound<'py, PyAny>,
    start_response: &Bound<'py, PyAny>,
    opts: &Options,
) -> PyResult<(Bound<'py, Span>, Bound<'py, StartResponse>, bool)> {
    guard::inject(TestFault::Panic);
    let environ = environ.cast::<PyDict>()?;
    let mut found: Vec<(Header, String)> = Vec::new();
    for (header, key) in inbound_keys(py, agent) {
        if let Some(v) = environ.get_item(key.bind(py))? {
            if let Ok(s) = v.cast::<PyString>() {
                if let Some(v) = capi::utf8(s) {
                    found.push((*header, v.to_string()));
                }
            }
        }
    }
    let extracted = propagation::extract(&agent.propagators, |h| found.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_str()));
    let (span, recording) = server::start_lite(py, agent, &opts.scope, extracted, red_values(environ)?, |rec| {
        request_attributes(environ, rec)?;
        capture_request_headers(py, agent, environ, rec)
    })?;
    let light = recording == server::Recording::Light;
    let recording = recording != server::Recording::No;
    let sr = StartResponse {
        inner: start_response.clone().unbind(),
        span: span.clone().unbind(),
        environ: (opts.flask_route && recording).then(|| environ.clone().unbind()),
        capture: recording && !agent.capture_response_headers.is_empty(),
        closing: std::sync::atomic::AtomicBool::new(false),
        late: light.then(|| environ.clone().unbind()),
    };
    Ok((span, Bound::new(py, sr)?, light))
}

static CAPTURE_KEYS: PyOnceLock<Vec<(String, Py<PyString>)>> = PyOnceLock::new();

/// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`: `http.request.header.<name>`.
/// Plain names are looked up by their CGI keys; a list with a pattern in it (`.*`, `x-.*`) is
/// matched against every header of the environ (`HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`,
/// whose names WSGI gives with `_` for `-`).
fn capture_request_headers(py: Python<'_>, agent: &Agent, environ: &Bound<'_, PyDict>, rec: &mut SpanRecord) -> PyResult<()> {
    if !headers::wanted(agent, headers::Kind::ServerRequest) {
        return Ok(());
    }
    let mut found: Vec<(String, String)> = Vec::new();
    if agent.capture_request_headers.iter().all(|n| crate::config::plain_header_name(n)) {
        let keys = CAPTURE_KEYS.get_or_init(py, || {
            agent
                .capture_request_headers
                .iter()
                .map(|name| {
                    let cgi = match name.as_str() {
                        "content-type" | "content-length" => name.to_ascii_uppercase().replace('-', "_"),
                        _ => format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
                    };
                    (name.clone(), PyString::intern(py, &cgi).unbind())
                })
                .collect()
        });
        for (name, key) in keys {
            if let Some(v) = get_str(environ, key.bind(py))? {
                found.push((name.clone(), v));
            }
        }
    } else {
        for (k, v) in environ.iter() {
            let (Ok(k), Ok(v)) = (k.cast::<PyString>(), v.cast::<PyString>()) else { continue };
            let (Some(k), Some(v)) = (capi::utf8(k), capi::utf8(v)) else { continue };
            let (k, v): (&str, &str) = (&k, &v);
            let name = match k {
                "CONTENT_TYPE" | "CONTENT_LENGTH" => k,
                _ => match k.strip_prefix("HTTP_") {
                    Some(rest) => rest,
                    None => continue,
                },
            };
            found.push((name.to_ascii_lowercase().replace('_', "-"), wsgi_to_utf8(v).to_string()));
        }
    }
    headers::capture(py, rec, headers::Kind::ServerRequest, found.iter().map(|(n, v)| (n.as_str(), v.clone())));
    Ok(())
}

/// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE`: `http.response.header.<name>`.
fn capture_response_headers(list: &Bound<'_, PyAny>, rec: &mut SpanRecord) -> PyResult<()> {
    let pairs = headers::pairs_of(list)?;
    headers::capture(list.py(), rec, headers::Kind::ServerResponse, pairs.iter().map(|(n, v)| (n.as_str(), v.clone())));
    Ok(())
}

fn get_str(environ: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> PyResult<Option<String>> {
    Ok(get_pystr(environ, key)?.and_then(|s| capi::utf8(&s).map(|t| t.into_owned())))
}

/// The environ's `str` under `key` (None when absent or not a `str`), to borrow text from.
fn get_pystr<'py>(environ: &Bound<'py, PyDict>, key: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyString>>> {
    Ok(environ.get_item(key)?.and_then(|v| v.cast_into::<PyString>().ok()))
}

/// The text of an optional `str` (None when absent or not valid UTF-8).
fn text<'a>(s: &'a Option<Bound<'_, PyString>>) -> Option<std::borrow::Cow<'a, str>> {
    s.as_ref().and_then(|s| capi::utf8(s))
}

/// PEP 3333 "native strings" carry the request's bytes as latin-1 code points; URLs are UTF-8.
fn wsgi_to_utf8(s: &str) -> Text {
    if s.is_ascii() || s.chars().any(|c| c as u32 > 0xff) {
        return Text::new(s);
    }
    let bytes: Vec<u8> = s.chars().map(|c| c as u8).collect();
    Text::new(String::from_utf8_lossy(&bytes))
}

/// The request's full URL as upstream's excluded-URL rule sees it:
/// `scheme://host[:port]/script/path[?query]`.
fn wsgi_url(environ: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = environ.py();
    let environ = environ.cast::<PyDict>()?;
    let get = |k: &Bound<'_, PyString>| -> PyResult<String> { Ok(get_pystr(environ, k)?.as_ref().and_then(|s| capi::utf8(s)).map(|s| wsgi_to_utf8(&s).to_string()).unwrap_or_default()) };
    let scheme = get(intern!(py, "wsgi.url_scheme"))?;
    let scheme = if scheme.is_empty() { "http".to_string() } else { scheme };
    let mut host = get(intern!(py, "HTTP_HOST"))?;
    if host.is_empty() {
        host = get(intern!(py, "SERVER_NAME"))?;
        let port = get(intern!(py, "SERVER_PORT"))?;
        if !port.is_empty() && sc::default_port(&scheme).map(|d| d.to_string()) != Some(port.clone()) {
            host = format!("{host}:{port}");
        }
    }
    let mut url = format!("{scheme}://{host}{}{}", get(intern!(py, "SCRIPT_NAME"))?, get(intern!(py, "PATH_INFO"))?);
    let query = get(intern!(py, "QUERY_STRING"))?;
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    Ok(url)
}

/// What every recorded server span carries, sampled or not: the attributes the RED metrics and
/// the active-requests gauge read (the route and status come from `start_response`). Each value
/// is borrowed from the environ's own str (no copy); values that are nearly always one of a few
/// constants are kept as static text.
fn red_values(environ: &Bound<'_, PyDict>) -> PyResult<server::RedValues> {
    let py = environ.py();
    let method = get_pystr(environ, intern!(py, "REQUEST_METHOD"))?;
    let scheme = get_pystr(environ, intern!(py, "wsgi.url_scheme"))?;
    let proto = get_pystr(environ, intern!(py, "SERVER_PROTOCOL"))?;
    let proto = text(&proto);
    Ok(server::RedValues::new(
        text(&method).as_deref().unwrap_or("GET"),
        text(&scheme).as_deref().unwrap_or("http"),
        proto.as_deref().and_then(sc::protocol_version),
    ))
}

/// The rest of a sampled server span's request attributes (after `red_attributes`).
fn request_attributes<'py>(environ: &Bound<'py, PyDict>, rec: &mut SpanRecord) -> PyResult<()> {
    let py = environ.py();
    let get = |k: &Bound<'py, PyString>| get_pystr(environ, k);
    let script = get(intern!(py, "SCRIPT_NAME"))?;
    let path = get(intern!(py, "PATH_INFO"))?;
    let (script, path) = (text(&script), text(&path));
    let full = match (script.as_deref().unwrap_or(""), path.as_deref().unwrap_or("")) {
        ("", "") => Text::const_new("/"),
        ("", p) => wsgi_to_utf8(p),
        (s, p) => wsgi_to_utf8(&[s, p].concat()),
    };
    rec.push(sc::URL_PATH, full);
    let query = get(intern!(py, "QUERY_STRING"))?;
    if let Some(q) = text(&query).filter(|q| !q.is_empty()) {
        rec.push(sc::URL_QUERY, wsgi_to_utf8(&q));
    }
    let scheme_obj = get(intern!(py, "wsgi.url_scheme"))?;
    let scheme_text = text(&scheme_obj);
    let scheme = scheme_text.as_deref().unwrap_or("http");
    let host = get(intern!(py, "HTTP_HOST"))?;
    let (server_name, server_port, server_name_text);
    let host_text = text(&host);
    let (address, port) = match host_text.as_deref() {
        Some(host) => {
            let (a, p) = sc::split_host(host);
            (a, p.or_else(|| sc::default_port(scheme)))
        }
        None => {
            server_name = get(intern!(py, "SERVER_NAME"))?;
            server_port = get(intern!(py, "SERVER_PORT"))?;
            server_name_text = text(&server_name);
            (server_name_text.as_deref().unwrap_or(""), text(&server_port).and_then(|p| p.parse().ok()))
        }
    };
    if !address.is_empty() {
        rec.push(sc::SERVER_ADDRESS, Text::new(address));
        if let Some(p) = port {
            rec.push(sc::SERVER_PORT, p as i64);
        }
    }
    let forwarded = get(intern!(py, "HTTP_FORWARDED"))?;
    let xff = get(intern!(py, "HTTP_X_FORWARDED_FOR"))?;
    let (forwarded, xff) = (text(&forwarded), text(&xff));
    match sc::forwarded_client(forwarded.as_deref(), xff.as_deref()) {
        Some(c) if !c.is_empty() => rec.push(sc::CLIENT_ADDRESS, Text::from(c)),
        Some(_) => {}
        None => {
            let remote = get(intern!(py, "REMOTE_ADDR"))?;
            if let Some(c) = text(&remote).filter(|c| !c.is_empty()) {
                rec.push(sc::CLIENT_ADDRESS, Text::new(&c));
            }
        }
    }
    let ua = get(intern!(py, "HTTP_USER_AGENT"))?;
    if let Some(ua) = text(&ua) {
        rec.push(sc::USER_AGENT_ORIGINAL, Text::new(&ua));
    }
    Ok(())
}

/// End a WSGI server span (once). `late`: the environ of a light record (the head sampler dropped
/// it), which gets the attributes it skipped if it turns out to be exported after all (an error
/// or a slow request that keep-errors-and-slow keeps) or needs its path for the slow metric.
fn end_span(py: Python<'_>, span: &Span, late: Option<&Py<PyDict>>) {
    match late {
        None => span.end(finish),
        Some(environ) => span.end(|rec| {
            finish(rec);
            if server::late_fill_needed(rec) {
                let environ = environ.bind(py);
                quietly("the WSGI hook", || {
                    request_attributes(environ, rec)?;
                    match agent::get() {
                        Some(agent) => capture_request_headers(py, agent, environ, rec),
                        None => Ok(()),
                    }
                });
            }
        }),
    }
}

/// Close a WSGI server span: status code and error rules, then its name.
fn finish(rec: &mut SpanRecord) {
    let status = match rec.get(sc::HTTP_RESPONSE_STATUS_CODE) {
        Some(Value::Int(c)) => Some(*c),
        _ => None,
    };
    sc::finish_server_span(rec, status);
}

/// The `start_response` the app receives: records status (and Flask's route, which is only
/// reachable until Flask pops its request context), then calls the server's. For Flask's usual
/// bodies it is also the close callback Werkzeug calls (without arguments) when the server
/// closes the body, which ends the span (see `closing_callbacks`): one object for both.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct StartResponse {
    inner: Py<PyAny>,
    span: Py<Span>,
    environ: Option<Py<PyDict>>,
    /// Response headers are to be captured.
    capture: bool,
    /// Set when it became a close callback: it ends the span then, or when it goes away (the
    /// server never closed the body).
    closing: std::sync::atomic::AtomicBool,
    /// A light record's environ (see `end_span`).
    late: Option<Py<PyDict>>,
}

impl StartResponse {
    fn end(&self, py: Python<'_>) {
        end_span(py, self.span.get(), self.late.as_ref());
    }
}

impl Drop for StartResponse {
    fn drop(&mut self) {
        if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            // Never called as the close callback (the server did not close the body).
            Python::attach(|py| self.end(py));
        }
    }
}

#[pymethods]
impl StartResponse {
    /// `exc_info` as PEP 3333 gives it (an optional third argument): a fixed signature, so the
    /// call passes its arguments without building a tuple for `*args`.
    /// Without arguments: Werkzeug's close callback (it returns None).
    #[pyo3(signature = (status = None, headers = None, exc_info = None))]
    fn __call__(&self, py: Python<'_>, status: Option<Bound<'_, PyAny>>, headers: Option<Bound<'_, PyAny>>, exc_info: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let (Some(status), Some(headers)) = (status, headers) else {
            if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
                quietly("the WSGI body hook", || {
                    guard::inject(TestFault::Body);
                    Ok(())
                });
                self.end(py);
                return Ok(py.None());
            }
            return Err(pyo3::exceptions::PyTypeError::new_err("start_response() takes a status and a list of headers"));
        };
        quietly("the WSGI start_response hook", || {
            guard::inject(TestFault::StartResponse);
            let code = status.cast::<PyString>().ok().and_then(|s| capi::utf8(s).and_then(|t| sc::status_code(&t)));
            let mut route = match &self.environ {
                Some(env) => flask_route(env.bind(py))?,
                None => None,
            };
            let span = self.span.get();
            // A head-dropped span keeps its lite state: no record for the status and route.
            let lite = span.with_lite(|l| {
                l.status = code.or(l.status);
                if let Some(r) = route.take() {
                    l.route = Some(r);
                }
            });
            if lite.is_some() && !self.capture {
                return Ok(());
            }
            span
                .with(|rec| {
                    if let Some(c) = code {
                        rec.set(sc::HTTP_RESPONSE_STATUS_CODE, c);
                    }
                    if let Some(r) = route {
                        rec.set(sc::HTTP_ROUTE, r);
                    }
                    if self.capture {
                        capture_response_headers(&headers, rec)?;
                    }
                    Ok(())
                })
                .unwrap_or(Ok(()))
        });
        let inner = self.inner.bind(py);
        let result = match exc_info {
            None => inner.call1((status, headers))?,
            Some(exc_info) => inner.call1((status, headers, exc_info))?,
        };
        Ok(result.unbind())
    }
}

fn flask_route(environ: &Bound<'_, PyDict>) -> PyResult<Option<Text>> {
    let py = environ.py();
    let Some(request) = environ.get_item(intern!(py, "werkzeug.request"))?.filter(|r| !r.is_none()) else { return Ok(None) };
    let Some(rule) = request.getattr_opt(intern!(py, "url_rule"))?.filter(|r| !r.is_none()) else { return Ok(None) };
    let rule = rule.getattr_opt(intern!(py, "rule"))?.and_then(|r| r.cast_into::<PyString>().ok());
    Ok(text(&rule).map(|r| Text::new(&r)))
}

/// The response iterable the server receives. Iteration passes through; `close()` closes the
/// app's iterable and ends the span. If the server never calls `close()`, the span ends when
/// this wrapper is garbage-collected.
#[pyclass(frozen, subclass, module = "ferrotel._native")]
pub struct ResponseBody {
    body: Py<PyAny>,
    iter: PyOnceLock<Py<PyIterator>>,
    span: Py<Span>,
    /// A light record's environ (see `end_span`).
    late: Option<Py<PyDict>>,
}

#[pymethods]
impl ResponseBody {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let iter = self.iter.get_or_try_init(py, || Ok::<_, PyErr>(self.body.bind(py).try_iter()?.unbind()));
        let step = match iter {
            Ok(it) => it.bind(py).clone().next().transpose(),
            Err(e) => Err(e),
        };
        match step {
            Ok(item) => Ok(item),
            Err(err) => {
                self.fail(py, &err);
                Err(err)
            }
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        quietly("the WSGI body hook", || {
            guard::inject(TestFault::Body);
            Ok(())
        });
        let body = self.body.bind(py);
        let closed = match body.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => close.call0().map(drop),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        match closed {
            Ok(()) => {
                end_span(py, self.span.get(), self.late.as_ref());
                Ok(())
            }
            Err(err) => {
                self.fail(py, &err);
                Err(err)
            }
        }
    }
}

impl ResponseBody {
    fn fail(&self, py: Python<'_>, err: &PyErr) {
        quietly("the WSGI body hook", || {
            let span = self.span.get();
            span.record_pyerr(py, err);
            end_span(py, span, self.late.as_ref());
            Ok(())
        });
    }
}

/// The response wrapper for list and tuple bodies: also passes `len()` through.
#[pyclass(frozen, extends = ResponseBody, module = "ferrotel._native")]
pub struct SizedResponseBody;

#[pymethods]
impl SizedResponseBody {
    fn __len__(slf: PyRef<'_, Self>) -> PyResult<usize> {
        let base = slf.as_super();
        base.body.bind(slf.py()).len()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        Python::attach(|py| end_span(py, self.span.get(), self.late.as_ref()));
    }
}
