//! The span handle Python holds while a span is open: its identity (immutable) and the record
//! being filled (behind a mutex, taken exactly once when the span ends).

use std::borrow::Cow;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyTraceback;

use crate::context::{SpanContext, SpanId};
use crate::metrics::active;
use crate::pipeline;
use crate::semconv::{self, ExceptionInfo};
use super::convert;
use crate::config::limits::Limits;
use crate::span::{now_ns, Event, Family, Head, Scope, SpanKind, SpanRecord, Status, Text, Value};

/// The span limits in force (the specification's defaults before the agent started).
pub fn limits() -> &'static Limits {
    static DEFAULT: once_cell::sync::Lazy<Limits> = once_cell::sync::Lazy::new(Limits::default);
    crate::agent::get().map_or(&DEFAULT, |a| &a.limits)
}

/// A server span the head sampler dropped, while it is open: only what the RED metrics read and
/// what a record needs should it be made after all. No record is built unless something writes
/// to the span (an attribute, an exception: `Span::with` makes the record then) or it ends in
/// error or slow; otherwise it ends by counting in `metrics::cells` (see `Span::end`).
#[derive(Debug)]
pub struct Lite {
    pub start_ns: u64,
    pub parent_span_id: SpanId,
    pub parent_remote: bool,
    pub head: Head,
    pub scope: Scope,
    /// `http.request.method` as the conventions give it (`_OTHER` for unknown methods) and the
    /// method as sent when it is not a known one (`http.request.method_original`).
    pub method: Text,
    pub method_original: Option<Text>,
    pub scheme: Text,
    pub protocol: Option<Text>,
    pub status: Option<i64>,
    pub route: Option<Text>,
}

impl Lite {
    /// The record this span would have had (what a light record held: the RED attributes).
    fn into_record(self, context: &SpanContext) -> SpanRecord {
        let mut attributes = Vec::with_capacity(12);
        attributes.push((Cow::Borrowed(semconv::HTTP_REQUEST_METHOD), Value::Str(self.method)));
        if let Some(m) = self.method_original {
            attributes.push((Cow::Borrowed(semconv::HTTP_REQUEST_METHOD_ORIGINAL), Value::Str(m)));
        }
        attributes.push((Cow::Borrowed(semconv::URL_SCHEME), Value::Str(self.scheme)));
        if let Some(p) = self.protocol {
            attributes.push((Cow::Borrowed(semconv::NETWORK_PROTOCOL_VERSION), Value::Str(p)));
        }
        if let Some(c) = self.status {
            attributes.push((Cow::Borrowed(semconv::HTTP_RESPONSE_STATUS_CODE), Value::Int(c)));
        }
        if let Some(r) = self.route {
            attributes.push((Cow::Borrowed(semconv::HTTP_ROUTE), Value::Str(r)));
        }
        SpanRecord {
            trace_id: context.trace_id,
            span_id: context.span_id,
            parent_span_id: self.parent_span_id,
            parent_remote: self.parent_remote,
            flags: context.flags,
            trace_state: context.trace_state.clone(),
            name: Text::default(),
            kind: SpanKind::Server,
            start_ns: self.start_ns,
            end_ns: 0,
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Unset,
            scope: self.scope,
            head: self.head,
            dropped: Default::default(),
            family: Family::Http,
            raw_query: None,
        }
    }
}

/// An open span's state.
enum Open {
    Record(SpanRecord),
    Lite(Lite),
}

#[pyclass(frozen, module = "ferrotel._native")]
pub struct Span {
    pub context: SpanContext,
    pub baggage: Option<String>,
    /// The record (or the lite state) while the span is open and recording; None once ended (or
    /// never recorded).
    record: Mutex<Option<Open>>,
    /// The active-requests slot this span holds while open.
    active: Option<active::Slot>,
    /// A call whose library speaks HTTP underneath (an AWS SDK call): the HTTP client hooks make
    /// no span and inject nothing while it is current (`Span::leaf`).
    pub leaf: bool,
}

impl Span {
    /// A span handle; `recording` false keeps only the identity (context propagation).
    pub fn new(record: SpanRecord, baggage: Option<String>, recording: bool, active: Option<active::Slot>) -> Self {
        let context = record.context();
        pipeline::note_started();
        Span { context, baggage, record: Mutex::new(recording.then_some(Open::Record(record))), active: active.filter(|_| recording), leaf: false }
    }

    /// A head-dropped server span that keeps only its lite state (see `Lite`).
    pub fn lite(context: SpanContext, baggage: Option<String>, lite: Lite, active: Option<active::Slot>) -> Self {
        pipeline::note_started();
        Span { context, baggage, record: Mutex::new(Some(Open::Lite(lite))), active, leaf: false }
    }

    /// A handle for a record a hook already counted as started (`pipeline::note_started`).
    pub fn recorded(record: SpanRecord) -> Self {
        let context = record.context();
        Span { context, baggage: None, record: Mutex::new(Some(Open::Record(record))), active: None, leaf: false }
    }

    /// A handle that only carries an identity (and baggage): another tracer's span or a remote
    /// parent made current through the OpenTelemetry API, so spans started under it are its
    /// children. Records nothing and counts as no started span.
    pub fn context_only(context: SpanContext, baggage: Option<String>) -> Self {
        Span { context, baggage, record: Mutex::new(None), active: None, leaf: false }
    }

    /// This span as a leaf: the HTTP request its library sends is part of it, so the HTTP client
    /// hooks stay out while it is current (no second span for the same call, no header added to
    /// a request the library has already signed).
    pub fn leaf(mut self) -> Self {
        self.leaf = true;
        self
    }

    /// Work on the open record, if the span is still recording.
    /// A lite span gets its record here (it may be exported after all, so what is written to
    /// it must be kept).
    pub fn with<R>(&self, f: impl FnOnce(&mut SpanRecord) -> R) -> Option<R> {
        let mut guard = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*guard, Some(Open::Lite(_))) {
            if let Some(Open::Lite(lite)) = guard.take() {
                *guard = Some(Open::Record(lite.into_record(&self.context)));
            }
        }
        match guard.as_mut() {
            Some(Open::Record(rec)) => Some(f(rec)),
            _ => None,
        }
    }

    /// Work on the lite state of a head-dropped server span (None: it has a record, or ended).
    pub fn with_lite<R>(&self, f: impl FnOnce(&mut Lite) -> R) -> Option<R> {
        let mut guard = self.record.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(Open::Lite(lite)) => Some(f(lite)),
            _ => None,
        }
    }

    /// The head decision of an open span (None once ended or when not recording).
    pub fn head(&self) -> Option<Head> {
        match self.record.lock().unwrap_or_else(|p| p.into_inner()).as_ref()? {
            Open::Record(r) => Some(r.head),
            Open::Lite(l) => Some(l.head),
        }
    }

    /// End the span (once; later calls do nothing) and hand it to the pipeline. A lite span that
    /// ended neither in error nor slow only counts in the metrics cells (`server::count_only`);
    /// otherwise it gets its record now, which goes the usual way.
    pub fn end(&self, finish: impl FnOnce(&mut SpanRecord)) {
        self.end_at(0, finish)
    }

    /// As `end`, timed at `end_ns` when the hook knows the end better than the clock does now
    /// (ASGI: the last body chunk sent), never before the start nor after now; 0: now. A record
    /// whose end a hook already set keeps it.
    pub fn end_at(&self, end_ns: u64, finish: impl FnOnce(&mut SpanRecord)) {
        let Some(open) = self.record.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        if let Some(slot) = self.active {
            active::leave(slot);
        }
        let now = now_ns();
        let at = |start: u64| if end_ns != 0 { end_ns.clamp(start, now.max(start)) } else { now.max(start) };
        let mut rec = match open {
            Open::Record(rec) => rec,
            Open::Lite(lite) => {
                let end_ns = at(lite.start_ns);
                if super::http::server::count_only(&lite, end_ns) {
                    return;
                }
                let mut rec = lite.into_record(&self.context);
                rec.end_ns = end_ns;
                rec
            }
        };
        if rec.end_ns == 0 {
            rec.end_ns = at(rec.start_ns);
        }
        finish(&mut rec);
        pipeline::submit(rec);
    }

    /// Record a Python exception as an `exception` event (first one only: a framework hook and
    /// the WSGI layer may both see the same failure).
    pub fn record_exception(&self, err: &Bound<'_, PyAny>) {
        self.record_exception_with_traceback(err, None);
    }

    /// Record an error raised through Rust: its traceback travels beside the exception object
    /// (on 3.11 and older the object's `__traceback__` is not set yet).
    pub fn record_pyerr(&self, py: Python<'_>, err: &PyErr) {
        self.record_exception_with_traceback(err.value(py).as_any(), err.traceback(py));
    }

    fn record_exception_with_traceback(&self, err: &Bound<'_, PyAny>, tb: Option<Bound<'_, PyTraceback>>) {
        self.with(|rec| {
            if rec.events.iter().any(|e| e.name == "exception") {
                return;
            }
            let info = exception_info(err, tb);
            semconv::record_exception(rec, info, now_ns());
        });
    }
}

#[pymethods]
impl Span {
    /// The trace id as 32 hex digits.
    #[getter]
    fn trace_id(&self) -> String {
        self.context.trace_id.to_string()
    }
    /// The span id as 16 hex digits.
    #[getter]
    fn span_id(&self) -> String {
        self.context.span_id.to_string()
    }
    #[getter]
    fn sampled(&self) -> bool {
        self.context.is_sampled()
    }
    /// True when the span may be exported (attributes set on it can matter). A span recorded
    /// only for metrics after its parent or `always_off` dropped it is not "recording".
    #[getter]
    fn is_recording(&self) -> bool {
        self.head().is_some_and(|h| h != Head::Dropped)
    }
    #[getter]
    fn trace_flags(&self) -> u8 {
        self.context.flags
    }
    #[getter]
    fn trace_state(&self) -> Option<String> {
        self.context.trace_state.clone()
    }
    #[getter]
    fn baggage(&self) -> Option<String> {
        self.baggage.clone()
    }
    #[pyo3(name = "record_exception", signature = (exc, attributes = None))]
    fn py_record_exception(&self, exc: &Bound<'_, PyAny>, attributes: Option<Bound<'_, PyAny>>) {
        self.record_exception(exc);
        let extra = convert::attributes(attributes.as_ref());
        if !extra.is_empty() {
            let l = limits();
            self.with(|r| {
                if let Some(e) = r.events.iter_mut().rev().find(|e| e.name == "exception") {
                    e.attributes.extend(extra);
                    e.dropped_attributes += crate::span::limit_attributes(&mut e.attributes, l.event_attribute_count, l.attribute_value_length);
                }
            });
        }
    }
    fn set_attribute(&self, key: String, value: &Bound<'_, PyAny>) {
        if let Some(v) = convert::value(value) {
            let l = limits();
            self.with(|r| r.set_limited(key, v, l));
        }
    }
    fn set_attributes(&self, attributes: &Bound<'_, PyAny>) {
        let attrs = convert::attributes(Some(attributes));
        let l = limits();
        self.with(|r| attrs.into_iter().for_each(|(k, v)| r.set_limited(k, v, l)));
    }
    #[pyo3(signature = (name, attributes = None, timestamp_ns = None))]
    fn add_event(&self, name: String, attributes: Option<Bound<'_, PyAny>>, timestamp_ns: Option<u64>) {
        let attributes = convert::attributes(attributes.as_ref());
        let l = limits();
        self.with(|r| r.add_event_limited(Event { name: name.into(), time_ns: timestamp_ns.unwrap_or_else(now_ns), attributes, dropped_attributes: 0 }, l));
    }
    /// What the open span holds, as the OpenTelemetry SDK's `ReadableSpan` shows it:
    /// `(attributes, [(event name, event attributes)], [(link trace id, link span id, link
    /// attributes)], (dropped attributes, dropped events, dropped links))`. None once ended or
    /// when not recording.
    fn snapshot(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some((attrs, events, links, dropped)) = self.with(|r| {
            (
                r.attributes.clone(),
                r.events.iter().map(|e| (e.name.to_string(), e.attributes.clone())).collect::<Vec<_>>(),
                r.links.iter().map(|l| (l.trace_id.to_string(), l.span_id.to_string(), l.attributes.clone())).collect::<Vec<_>>(),
                (r.dropped.attributes, r.dropped.events, r.dropped.links),
            )
        }) else {
            return Ok(None);
        };
        let dict = |a: &crate::span::Attributes| -> PyResult<Bound<'_, pyo3::types::PyDict>> {
            let d = pyo3::types::PyDict::new(py);
            for (k, v) in a {
                d.set_item(k.as_ref(), value_to_py(py, v)?)?;
            }
            Ok(d)
        };
        let events = events.iter().map(|(n, a)| Ok((n.clone(), dict(a)?))).collect::<PyResult<Vec<_>>>()?;
        let links = links.iter().map(|(t, s, a)| Ok((t.clone(), s.clone(), dict(a)?))).collect::<PyResult<Vec<_>>>()?;
        Ok(Some((dict(&attrs)?, events, links, dropped).into_pyobject(py)?.into_any().unbind()))
    }
    /// OpenTelemetry API status codes: 0 unset, 1 ok, 2 error. OK is final; a description is
    /// kept only for errors.
    #[pyo3(signature = (code, description = None))]
    fn set_status(&self, code: u8, description: Option<String>) {
        self.with(|r| match (code, &r.status) {
            (_, Status::Ok) | (0, _) => {}
            (1, _) => r.status = Status::Ok,
            _ => r.status = Status::Error(description.unwrap_or_default()),
        });
    }
    fn update_name(&self, name: String) {
        self.with(|r| r.name = name.into());
    }
    /// End the span (once); `end_time_ns` defaults to now.
    #[pyo3(name = "end", signature = (end_time_ns = None))]
    fn py_end(&self, end_time_ns: Option<u64>) {
        if end_time_ns.is_some() {
            self.with(|_| ()); // a lite span ends at the given time: through its record
        }
        self.end(|r| {
            if let Some(t) = end_time_ns {
                r.end_ns = t.max(r.start_ns);
            }
        });
    }
    fn __repr__(&self) -> String {
        format!("<ferrotel Span trace_id={} span_id={}>", self.context.trace_id, self.context.span_id)
    }
}

fn value_to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Str(s) => s.as_str().into_pyobject(py)?.into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::F64(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::StrArray(a) => pyo3::types::PyTuple::new(py, a)?.into_any().unbind(),
        Value::BoolArray(a) => pyo3::types::PyTuple::new(py, a)?.into_any().unbind(),
        Value::IntArray(a) => pyo3::types::PyTuple::new(py, a)?.into_any().unbind(),
        Value::F64Array(a) => pyo3::types::PyTuple::new(py, a)?.into_any().unbind(),
    })
}

/// Qualified type name (`ValueError`, `app.errors.PaymentError`), message and formatted
/// traceback of an exception object.
pub fn exception_info(err: &Bound<'_, PyAny>, tb: Option<Bound<'_, PyTraceback>>) -> ExceptionInfo {
    let py = err.py();
    let ty = err.get_type();
    let qualname = ty.qualname().map(|s| s.to_string()).unwrap_or_else(|_| "Exception".into());
    let module = ty.module().map(|s| s.to_string()).unwrap_or_default();
    let type_name = if module.is_empty() || module == "builtins" || module == "__main__" { qualname } else { format!("{module}.{qualname}") };
    let message = err.str().map(|s| s.to_string()).unwrap_or_default();
    let stacktrace = (|| -> PyResult<String> {
        let tb = match tb {
            Some(tb) => Some(tb),
            None => {
                let own = err.getattr("__traceback__")?;
                if own.is_none() { None } else { Some(own.cast_into::<PyTraceback>()?) }
            }
        };
        let lines = py.import("traceback")?.call_method1("format_exception", (ty, err, tb))?;
        Ok(lines.try_iter()?.filter_map(|l| l.ok()?.extract::<String>().ok()).collect())
    })()
    .unwrap_or_default();
    ExceptionInfo { type_name, message, stacktrace }
}
