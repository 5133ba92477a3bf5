//! RPC, and HTTP libraries that are neither WSGI/ASGI nor the blocking clients (issue 16): gRPC
//! (grpcio, sync and `grpc.aio`) and aiohttp (client and `aiohttp.web`). Their Python hooks
//! (`python/ferrotel/hooks/rpc/grpc.py`, `servers/aiohttp.py`, `http_clients/aiohttp.py`) live in
//! the libraries' own extension points (gRPC interceptors, an aiohttp request hook) and call the
//! four native functions an [`RpcHook`] hands out (`functions()`), all `METH_FASTCALL` builtins:
//!
//! - `client_start(...) -> (span, [(header, value), ...])` or `None` with the agent off: a CLIENT
//!   span, child of the current span, and the propagation entries to add to the outgoing call
//!   (gRPC metadata keys are the lower-case HTTP header names);
//! - `server_start(...) -> span` or `None`: a SERVER span whose parent is extracted from the
//!   incoming metadata / headers per `OTEL_PROPAGATORS` (the caller makes it current);
//! - `end(span, status)`: the gRPC status code (a `grpc.StatusCode` or its name) or the HTTP
//!   status; the conventions' error rules per side (`semconv::rpc`, `semconv::http`);
//! - `fail(span, exc, status)`: the same after an exception (`exception` event, `error.type`).
//!
//! A span that is not recorded still carries its identity, so propagation works under any
//! sampler. Every native step fails open (`guard::quietly`): the call goes on untraced.

pub mod botocore;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::capi;
use super::current;
use super::guard::quietly;
use super::http::server;
use super::method::{fast_function, Args, Around};
use super::span::Span;
use crate::agent;
use crate::context::propagation::{self, Header};
use crate::context::TraceId;
use crate::sampler::Sampler;
use crate::semconv::{self as sc, rpc};
use crate::span::{Family, Scope, SpanKind, SpanRecord, Text};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

/// One library's hook: its instrumentation scope and protocol.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct RpcHook {
    scope: Scope,
    protocol: Protocol,
}

#[pymethods]
impl RpcHook {
    /// `RpcHook(scope, protocol)`: `protocol` is `grpc` or `http`.
    #[new]
    fn new(scope: String, protocol: &str) -> PyResult<Self> {
        let protocol = match protocol {
            "grpc" => Protocol::Grpc,
            "http" => Protocol::Http,
            other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown RPC protocol {other}"))),
        };
        // Hooks are made once per library and process: a leaked name makes every scope a borrow.
        Ok(RpcHook { scope: Scope::fixed(Box::leak(scope.into_boxed_str())), protocol })
    }

    /// `(client_start, server_start, end, fail)`; their arguments, by protocol:
    /// - gRPC: `client_start(method_path, target)`, `server_start(method_path, metadata,
    ///   recognized)`; `end(span, code)`, `fail(span, exc, code)` (code: `grpc.StatusCode`,
    ///   its name, or None);
    /// - HTTP: `client_start(method, url)`, `server_start(method, scheme, host, path, query,
    ///   headers, peer, version)`; `end(span, status)`, `fail(span, exc, status)` (status: int
    ///   or None); the client's `end` takes the response's HTTP version `(major, minor)` third.
    fn functions<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let f = |name: &str, which: Fn| fast_function(py, name, Box::new(RpcFunction { hook: slf.clone().unbind(), which }));
        Ok((f("client_start", Fn::ClientStart)?, f("server_start", Fn::ServerStart)?, f("end", Fn::End)?, f("fail", Fn::Fail)?))
    }
}

#[derive(Clone, Copy)]
enum Fn {
    ClientStart,
    ServerStart,
    End,
    Fail,
}

struct RpcFunction {
    hook: Py<RpcHook>,
    which: Fn,
}

/// A `str` argument's text (None for anything else).
fn text<'a>(v: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    capi::utf8(v.cast::<PyString>().ok()?)
}

/// A `str` or UTF-8 `bytes` argument's text.
fn text_or_bytes<'a>(v: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(t) = text(v) {
        return Some(t);
    }
    let b = v.cast::<PyBytes>().ok()?;
    std::str::from_utf8(b.as_bytes()).ok().map(std::borrow::Cow::Borrowed)
}

fn arg<'py>(args: &Args<'_, 'py>, i: usize) -> Option<Bound<'py, PyAny>> {
    args.positional(i).map(|b| b.to_owned()).filter(|v| !v.is_none())
}

impl Around for RpcFunction {
    fn call<'py>(&self, _none: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let none = py.None().into_bound(py);
        let hook = self.hook.get();
        let out = match self.which {
            Fn::ClientStart => quietly("the RPC client hook", || hook.client_start(args)).flatten(),
            Fn::ServerStart => quietly("the RPC server hook", || hook.server_start(args)).flatten(),
            Fn::End | Fn::Fail => {
                let fail = matches!(self.which, Fn::Fail);
                if let Some(span) = arg(args, 0) {
                    if let Ok(span) = span.cast::<Span>() {
                        let exc = if fail { arg(args, 1) } else { None };
                        let status = arg(args, if fail { 2 } else { 1 });
                        let version = if fail { None } else { arg(args, 2) };
                        let _ = quietly("the RPC hook", || {
                            hook.finish(span.get(), exc.as_ref(), status.as_ref(), version.as_ref());
                            Ok(())
                        });
                    }
                }
                None
            }
        };
        Ok(out.unwrap_or(none))
    }
}

impl RpcHook {
    /// A child of the current span: the record (filled by `fill` when it records) and the handle.
    fn child<'py>(&self, py: Python<'py>, name: Text, fill: impl FnOnce(&mut SpanRecord)) -> Option<(Bound<'py, Span>, Vec<(Header, String)>)> {
        let agent = agent::get()?;
        let parent = current::get(py);
        let parent_span = parent.as_ref().map(|p| p.get());
        let parent_ctx = parent_span.map(|s| &s.context);
        let baggage = parent_span.and_then(|s| s.baggage.clone());
        let trace_id = parent_ctx.map_or_else(TraceId::random, |p| p.trace_id);
        let head = agent.sampler.decide(parent_ctx, trace_id);
        let recording = agent.records(head);
        let mut rec = SpanRecord::start(name, SpanKind::Client, self.scope.clone(), parent_ctx, trace_id, head);
        rec.family = self.family();
        if recording {
            fill(&mut rec);
        }
        let span = Span::new(rec, baggage, recording, None);
        let headers = propagation::inject(&agent.propagators, &span.context, span.baggage.as_deref());
        Some((Bound::new(py, span).ok()?, headers))
    }

    fn family(&self) -> Family {
        match self.protocol {
            Protocol::Grpc => Family::Rpc,
            Protocol::Http => Family::Http,
        }
    }

    fn client_start<'py>(&self, args: &Args<'_, 'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = args.py();
        let (Some(a), Some(b)) = (arg(args, 0), arg(args, 1)) else { return Ok(None) };
        // grpcio keeps a call's method and its channel's target as bytes.
        let (Some(first), Some(second)) = (text_or_bytes(&a), text_or_bytes(&b)) else { return Ok(None) };
        let (first, second): (&str, &str) = (&first, &second);
        let started = match self.protocol {
            Protocol::Grpc => {
                let method = rpc::grpc_method(first);
                self.child(py, Text::from(method), |rec| {
                    rec.push(rpc::RPC_SYSTEM_NAME, Text::const_new(rpc::GRPC));
                    rec.push(rpc::RPC_METHOD, Text::from(method));
                    let (address, port) = rpc::grpc_target(second);
                    rec.push(sc::SERVER_ADDRESS, address);
                    if let Some(p) = port {
                        rec.push(sc::SERVER_PORT, p);
                    }
                })
            }
            Protocol::Http => {
                let url = sc::redact_userinfo(second);
                self.child(py, Text::from(sc::client_span_name(first)), |rec| {
                    sc::set_method(rec, first);
                    if let Some((_, host, port)) = sc::url_origin(&url) {
                        if !host.is_empty() {
                            rec.push(sc::SERVER_ADDRESS, Text::from(host));
                        }
                        if let Some(p) = port {
                            rec.push(sc::SERVER_PORT, i64::from(p));
                        }
                    }
                    rec.push(sc::URL_FULL, Text::from(url.as_str()));
                })
            }
        };
        let Some((span, headers)) = started else { return Ok(None) };
        let list = PyList::empty(py);
        for (h, v) in headers {
            list.append((PyString::intern(py, h.name()), v))?;
        }
        Ok(Some(PyTuple::new(py, [span.into_any(), list.into_any()])?.into_any()))
    }

    fn server_start<'py>(&self, args: &Args<'_, 'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = args.py();
        let Some(agent) = agent::get() else { return Ok(None) };
        let carrier = arg(args, match self.protocol {
            Protocol::Grpc => 1,
            Protocol::Http => 5,
        });
        let found = match &carrier {
            Some(c) => read_carrier(c, &agent.inbound_headers)?,
            None => Vec::new(),
        };
        let extracted = propagation::extract(&agent.propagators, |h| found.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_str()));
        let (span, _) = match self.protocol {
            Protocol::Grpc => {
                let path = arg(args, 0);
                let path = path.as_ref().and_then(|p| text(p)).unwrap_or_default();
                let path: &str = &path;
                let recognized = arg(args, 2).is_none_or(|r| r.is_truthy().unwrap_or(true));
                let method = rpc::grpc_method(path);
                // Not `server::start`: that one counts HTTP's active requests.
                let parent = extracted.parent.as_ref();
                let trace_id = parent.map_or_else(TraceId::random, |p| p.trace_id);
                let head = agent.sampler.decide(parent, trace_id);
                let recording = agent.records(head);
                let named = recognized && !method.is_empty();
                let name = if named { Text::from(method) } else { Text::const_new(rpc::GRPC) };
                let mut rec = SpanRecord::start(name, SpanKind::Server, self.scope.clone(), parent, trace_id, head);
                rec.family = Family::Rpc;
                if recording {
                    rec.push(rpc::RPC_SYSTEM_NAME, Text::const_new(rpc::GRPC));
                    if named {
                        rec.push(rpc::RPC_METHOD, Text::from(method));
                    } else {
                        rec.push(rpc::RPC_METHOD, Text::const_new(rpc::OTHER));
                        if !method.is_empty() {
                            rec.push(rpc::RPC_METHOD_ORIGINAL, Text::from(method));
                        }
                    }
                }
                let span = Bound::new(py, Span::new(rec, extracted.baggage, recording, None))?;
                (span, recording)
            }
            Protocol::Http => {
                let s = |i| arg(args, i);
                let (method, scheme, host, path, query, peer, version) = (s(0), s(1), s(2), s(3), s(4), s(6), s(7));
                let get = |v: &Option<Bound<'py, PyAny>>| v.as_ref().and_then(|v| text(v)).map(|t| t.into_owned());
                let user_agent = match &carrier {
                    Some(c) => header(c, intern!(py, "User-Agent")),
                    None => None,
                };
                server::start(py, agent, &self.scope, extracted, |rec| {
                    sc::set_method(rec, get(&method).as_deref().unwrap_or("GET"));
                    let scheme = get(&scheme).unwrap_or_else(|| "http".into());
                    rec.set(sc::URL_PATH, get(&path).unwrap_or_else(|| "/".into()));
                    if let Some(q) = get(&query).filter(|q| !q.is_empty()) {
                        rec.set(sc::URL_QUERY, q);
                    }
                    if let Some(h) = get(&host) {
                        let (a, p) = sc::split_host(&h);
                        if !a.is_empty() {
                            rec.set(sc::SERVER_ADDRESS, a.to_string());
                            if let Some(p) = p.or_else(|| sc::default_port(&scheme)) {
                                rec.set(sc::SERVER_PORT, i64::from(p));
                            }
                        }
                    }
                    rec.set(sc::URL_SCHEME, sc::known_or_owned(&scheme, &sc::SCHEMES));
                    if let Some(p) = get(&peer).filter(|p| !p.is_empty()) {
                        rec.set(sc::CLIENT_ADDRESS, p);
                    }
                    if let Some(ua) = user_agent {
                        rec.set(sc::USER_AGENT_ORIGINAL, ua);
                    }
                    if let Some(v) = get(&version) {
                        rec.set(sc::NETWORK_PROTOCOL_VERSION, sc::known_or_owned(&v, &sc::PROTOCOL_VERSIONS));
                    }
                    Ok(())
                })?
            }
        };
        Ok(Some(span.into_any()))
    }

    fn finish(&self, span: &Span, exc: Option<&Bound<'_, PyAny>>, status: Option<&Bound<'_, PyAny>>, version: Option<&Bound<'_, PyAny>>) {
        if let Some(e) = exc {
            span.record_exception(e);
        }
        match self.protocol {
            Protocol::Grpc => {
                let code = status.and_then(grpc_code_of);
                span.end(|rec| rpc::finish_grpc_span(rec, code));
            }
            Protocol::Http => {
                let code = status.and_then(|s| s.extract::<i64>().ok());
                let version = version.and_then(http_version);
                span.end(|rec| {
                    if let Some(v) = version {
                        rec.set(sc::NETWORK_PROTOCOL_VERSION, Text::const_new(v));
                    }
                    match rec.kind {
                        SpanKind::Server => sc::finish_server_span(rec, code),
                        _ => sc::finish_client_span(rec, code),
                    }
                });
            }
        }
    }
}

/// An HTTP version given as `(major, minor)` (aiohttp's `HttpVersion`), as the
/// `network.protocol.version` text (`1.1`, `2`).
fn http_version(v: &Bound<'_, PyAny>) -> Option<&'static str> {
    let (major, minor): (i64, i64) = v.extract().ok()?;
    sc::protocol_from_number(major * 10 + minor)
}

/// A `grpc.StatusCode` (its `name`) or a code name, as the static name.
fn grpc_code_of(v: &Bound<'_, PyAny>) -> Option<&'static str> {
    if let Some(t) = text(v) {
        return rpc::grpc_code(&t);
    }
    let name = v.getattr(intern!(v.py(), "name")).ok()?;
    text(&name).and_then(|t| rpc::grpc_code(&t))
}

/// One header of a mapping carrier (case-insensitive where the mapping is, as aiohttp's are).
/// A header sent several times is one comma-separated value, as HTTP defines it (RFC 9110 5.3)
/// and as WSGI servers hand it over: `tracestate` split over two header lines is one list, and a
/// duplicated `traceparent` becomes invalid (a new trace), as W3C Trace Context asks. Multidicts
/// (aiohttp's `CIMultiDictProxy`) give every value with `getall`.
fn header(carrier: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> Option<String> {
    let py = carrier.py();
    if let Ok(all) = carrier.call_method1(intern!(py, "getall"), (name, PyTuple::empty(py))) {
        let mut joined: Option<String> = None;
        for v in all.try_iter().ok()? {
            let v = v.ok()?;
            let t = text(&v)?;
            match joined.as_mut() {
                Some(j) => {
                    j.push(',');
                    j.push_str(&t);
                }
                None => joined = Some(t.into_owned()),
            }
        }
        return joined;
    }
    let v = carrier.call_method1(intern!(py, "get"), (name,)).ok()?;
    text(&v).map(|t| t.into_owned())
}

/// The propagation entries of a carrier: a sequence of `(key, value)` pairs (gRPC metadata,
/// whose keys are lower case) or a mapping with `get` (aiohttp's case-insensitive headers).
fn read_carrier(carrier: &Bound<'_, PyAny>, wanted: &[Header]) -> PyResult<Vec<(Header, String)>> {
    let py = carrier.py();
    let mut found = Vec::new();
    let pairs = carrier.cast::<PyTuple>().is_ok() || carrier.cast::<PyList>().is_ok() || !carrier.hasattr(intern!(py, "get"))?;
    if pairs {
        for item in carrier.try_iter()? {
            let item = item?;
            let (Ok(k), Ok(v)) = (item.get_item(0), item.get_item(1)) else { continue };
            let Some(k) = text(&k) else { continue };
            if let Some(h) = wanted.iter().find(|h| h.name() == k.as_ref()) {
                if let Some(v) = text(&v) {
                    found.push((*h, v.into_owned()));
                }
            }
        }
    } else {
        for h in wanted {
            if let Some(v) = header(carrier, &PyString::intern(py, h.name())) {
                found.push((*h, v));
            }
        }
    }
    Ok(found)
}
