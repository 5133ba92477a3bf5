//! Messaging (issue 16): Celery 5.x. The Python hook (`python/ferrotel/hooks/messaging/celery.py`)
//! wraps Celery's task sender and connects to Celery's own task signals; the work is here.
//!
//! - Sending: `MessagingHook.wrap_sender(send_task_message, default_queue)` returns a native
//!   callable (no Python frame of its own, `method::function_hook`) that stands in for the
//!   `send_task_message` closure of a Celery app's `AMQP` (every `delay`, `apply_async`,
//!   `send_task` and canvas primitive ends there). Around the original it makes a PRODUCER
//!   span `send {queue}`, child of the current span, current while the message is published
//!   (the broker client's own spans nest under it), and puts the propagation entries
//!   (`traceparent`, `tracestate`, `baggage` per `OTEL_PROPAGATORS`) into the message headers.
//!   A `headers=` mapping the caller passes (Celery's retry passes the retried request's
//!   headers, which carry the previous attempt's `traceparent`) is copied with the new entries,
//!   so the message always carries the context of its own send span. Arguments, return value
//!   and exceptions are the original's.
//! - Processing: `process_start(task_name, request)` -> `(span, token)` or None: a CONSUMER span
//!   `process {queue}` whose parent is the context the message carries (read from the task
//!   request's attributes, where Celery puts every message header), with a link to that same
//!   creation context, made current (`FERROTEL_CELERY_LINK_ONLY`: the link alone, the span's
//!   parent being the current span, normally none); `process_end(span, token, exc)`: the span no longer
//!   current, the exception (if any) recorded, the span ended. Without a carried context (an
//!   eagerly applied task, a message sent by an uninstrumented client) the parent is the
//!   current span, if any.
//!
//! A span that is not recorded still carries its identity, so propagation works under any
//! sampler. Every native step fails open (`guard::quietly`): the call goes on untraced.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::capi;
use super::current;
use super::guard::quietly;
use super::method::{fast_function, function_hook, Args, Around};
use super::span::Span;
use crate::agent;
use crate::context::propagation::{self, Header};
use crate::context::{SpanContext, TraceId};
use crate::sampler::Sampler;
use crate::semconv::messaging as mq;
use crate::span::{Family, Link, Scope, SpanKind, SpanRecord, Text};

/// One messaging library's hook (its instrumentation scope).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct MessagingHook {
    scope: Scope,
}

#[pymethods]
impl MessagingHook {
    #[new]
    fn new(scope: String) -> Self {
        // Hooks are made once per library and process: a leaked name makes every scope a borrow.
        MessagingHook { scope: Scope::fixed(Box::leak(scope.into_boxed_str())) }
    }

    /// A native stand-in for Celery's `send_task_message(producer, name, message, **options)`;
    /// `default_queue` names the destination when the call names neither a queue nor a routing
    /// key.
    fn wrap_sender<'py>(slf: &Bound<'py, Self>, original: Bound<'py, PyAny>, default_queue: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let around = CelerySend { hook: slf.clone().unbind(), default_queue: default_queue.filter(|q| !q.is_empty()) };
        function_hook(py, "send_task_message", original, Box::new(around))
    }

    /// `(process_start, process_end)`, `METH_FASTCALL` builtins (see the module doc).
    fn functions<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let f = |name: &str, which: Fn| fast_function(py, name, Box::new(ProcessFunction { hook: slf.clone().unbind(), which }));
        Ok((f("process_start", Fn::Start)?, f("process_end", Fn::End)?))
    }
}

/// A `str` argument's text (None for anything else).
fn text<'a>(v: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    capi::utf8(v.cast::<PyString>().ok()?)
}

fn owned<'py>(v: Option<Borrowed<'_, 'py, PyAny>>) -> Option<Bound<'py, PyAny>> {
    v.map(|b| b.to_owned()).filter(|v| !v.is_none())
}

impl MessagingHook {
    /// A span of `kind` under `parent` (with its baggage), `fill`ed when it records.
    fn start(&self, name: Text, kind: SpanKind, parent: Option<&SpanContext>, baggage: Option<String>, fill: impl FnOnce(&mut SpanRecord)) -> Option<Span> {
        let agent = agent::get()?;
        let trace_id = parent.map_or_else(TraceId::random, |p| p.trace_id);
        let head = agent.sampler.decide(parent, trace_id);
        let recording = agent.records(head);
        let mut rec = SpanRecord::start(name, kind, self.scope.clone(), parent, trace_id, head);
        rec.family = Family::Messaging;
        if recording {
            rec.push(mq::MESSAGING_SYSTEM, Text::const_new(mq::CELERY));
            fill(&mut rec);
        }
        Some(Span::new(rec, baggage, recording, None))
    }
}

/// Put the common attributes of a Celery span on `rec`.
fn celery_attributes(rec: &mut SpanRecord, operation: &'static str, queue: Option<&str>, task_id: Option<&str>, task_name: Option<&str>) {
    rec.push(mq::MESSAGING_OPERATION_TYPE, Text::const_new(operation));
    rec.push(mq::MESSAGING_OPERATION_NAME, Text::const_new(operation));
    if let Some(q) = queue.filter(|q| !q.is_empty()) {
        rec.push(mq::MESSAGING_DESTINATION_NAME, Text::from(q));
    }
    if let Some(id) = task_id.filter(|i| !i.is_empty()) {
        rec.push(mq::MESSAGING_MESSAGE_ID, Text::from(id));
    }
    if let Some(n) = task_name.filter(|n| !n.is_empty()) {
        rec.push(mq::CELERY_TASK_NAME, Text::from(n));
    }
}

// ---- sending ----------------------------------------------------------------------------------

struct CelerySend {
    hook: Py<MessagingHook>,
    default_queue: Option<String>,
}

/// What the send wrapper prepared: the span (current while publishing) and, when the caller
/// passed `headers=`, the copy to pass instead.
struct Sending<'py> {
    span: Bound<'py, Span>,
    token: Option<Bound<'py, PyAny>>,
    headers: Option<Bound<'py, PyDict>>,
}

impl CelerySend {
    /// The destination: the `queue` argument (a name or a kombu `Queue`), else the routing key,
    /// else the app's default queue.
    fn destination(&self, args: &Args<'_, '_>) -> Option<String> {
        if let Some(q) = owned(args.keyword("queue")) {
            if let Some(t) = text(&q) {
                return Some(t.into_owned());
            }
            let name = q.getattr(intern!(q.py(), "name")).ok()?;
            return text(&name).map(|t| t.into_owned());
        }
        if let Some(r) = owned(args.keyword("routing_key")) {
            if let Some(t) = text(&r) {
                return Some(t.into_owned());
            }
        }
        self.default_queue.clone()
    }

    fn prepare<'py>(&self, args: &Args<'_, 'py>) -> PyResult<Option<Sending<'py>>> {
        let py = args.py();
        let Some(agent) = agent::get() else { return Ok(None) };
        // send_task_message(producer, name, message, ...): message is (headers, properties, body, sent_event).
        let (Some(name), Some(message)) = (owned(args.positional(1)), owned(args.positional(2))) else { return Ok(None) };
        let Ok(message) = message.cast_into::<PyTuple>() else { return Ok(None) };
        let Ok(headers) = message.get_item(0)?.cast_into::<PyDict>() else { return Ok(None) };
        let task_name = text(&name).map(|t| t.into_owned());
        let task_id = headers.get_item(intern!(py, "id"))?;
        let task_id = task_id.as_ref().and_then(|i| text(i)).map(|t| t.into_owned());
        let queue = self.destination(args);

        let parent = current::get(py);
        let parent_span = parent.as_ref().map(|p| p.get());
        let baggage = parent_span.and_then(|s| s.baggage.clone());
        let name = mq::span_name(mq::SEND, queue.as_deref());
        let span = self.hook.get().start(name, SpanKind::Producer, parent_span.map(|s| &s.context), baggage, |rec| {
            celery_attributes(rec, mq::SEND, queue.as_deref(), task_id.as_deref(), task_name.as_deref());
        });
        let Some(span) = span else { return Ok(None) };
        let entries = propagation::inject(&agent.propagators, &span.context, span.baggage.as_deref());
        let span = Bound::new(py, span)?;
        let given = owned(args.keyword("headers")).and_then(|h| h.cast_into::<PyDict>().ok()).filter(|h| !h.is_empty());
        let copy = match given {
            Some(h) => Some(h.copy()?),
            None => None,
        };
        for (h, v) in &entries {
            let key = PyString::intern(py, h.name());
            headers.set_item(&key, v)?;
            if let Some(c) = &copy {
                c.set_item(&key, v)?;
            }
        }
        let token = current::enter(py, &span)?;
        Ok(Some(Sending { span, token, headers: copy }))
    }
}

impl Around for CelerySend {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let Some(sending) = quietly("the Celery send hook", || self.prepare(args)).flatten() else {
            return args.call(original);
        };
        let result = match &sending.headers {
            Some(h) => args.call_with_keyword(original, "headers", h.as_any()),
            None => args.call(original),
        };
        current::exit(py, sending.token);
        let span = sending.span.get();
        match &result {
            Ok(_) => span.end(|_| {}),
            Err(e) => {
                let _ = quietly("the Celery send hook", || {
                    span.record_pyerr(py, e);
                    span.end(|_| {});
                    Ok(())
                });
            }
        }
        result
    }
}

// ---- processing -------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Fn {
    Start,
    End,
}

struct ProcessFunction {
    hook: Py<MessagingHook>,
    which: Fn,
}

impl Around for ProcessFunction {
    fn call<'py>(&self, _none: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let none = py.None().into_bound(py);
        match self.which {
            Fn::Start => Ok(quietly("the Celery worker hook", || self.start(args)).flatten().unwrap_or(none)),
            Fn::End => {
                if let Some(span) = owned(args.positional(0)) {
                    if let Ok(span) = span.cast::<Span>() {
                        current::exit(py, owned(args.positional(1)));
                        let exc = owned(args.positional(2));
                        let _ = quietly("the Celery worker hook", || {
                            let span = span.get();
                            if let Some(e) = &exc {
                                span.record_exception(e);
                            }
                            span.end(|_| {});
                            Ok(())
                        });
                    }
                }
                Ok(none)
            }
        }
    }
}

impl ProcessFunction {
    /// `process_start(task_name, request)`: `request` is the task's `Context` (`task.request`),
    /// whose attributes are the message's headers and delivery information.
    fn start<'py>(&self, args: &Args<'_, 'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = args.py();
        let Some(agent) = agent::get() else { return Ok(None) };
        let task_name = owned(args.positional(0));
        let task_name = task_name.as_ref().and_then(|n| text(n)).map(|t| t.into_owned());
        let fields = match owned(args.positional(1)) {
            Some(r) => r.getattr(intern!(py, "__dict__")).ok().and_then(|d| d.cast_into::<PyDict>().ok()),
            None => None,
        };
        let get = |key: &Bound<'py, PyString>| -> Option<Bound<'py, PyAny>> { fields.as_ref()?.get_item(key).ok().flatten().filter(|v| !v.is_none()) };
        // The carried context: each header the configured propagators read, as Celery set it.
        let mut found: Vec<(Header, String)> = Vec::new();
        for h in &agent.inbound_headers {
            if let Some(v) = get(&PyString::intern(py, h.name())) {
                if let Some(t) = text(&v) {
                    found.push((*h, t.into_owned()));
                }
            }
        }
        let extracted = propagation::extract(&agent.propagators, |h| found.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_str()));
        let task_id = get(intern!(py, "id"));
        let task_id = task_id.as_ref().and_then(|i| text(i)).map(|t| t.into_owned());
        let queue = get(intern!(py, "delivery_info"))
            .and_then(|d| d.cast_into::<PyDict>().ok())
            .and_then(|d| d.get_item(intern!(py, "routing_key")).ok().flatten())
            .and_then(|r| text(&r).map(|t| t.into_owned()));

        let name = mq::span_name(mq::PROCESS, queue.as_deref());
        let fill = |rec: &mut SpanRecord| celery_attributes(rec, mq::PROCESS, queue.as_deref(), task_id.as_deref(), task_name.as_deref());
        let hook = self.hook.get();
        let ambient = || {
            let parent = current::get(py);
            let parent_span = parent.as_ref().map(|p| p.get());
            (parent_span.map(|s| s.context.clone()), parent_span.and_then(|s| s.baggage.clone()))
        };
        let span = match extracted.parent {
            // The message's creation context: the parent (unless FERROTEL_CELERY_LINK_ONLY), and
            // (as the conventions ask of every process span) a link.
            Some(creation) => {
                let (parent, baggage) = if super::registry::celery_link_only() { ambient() } else { (Some(creation.clone()), extracted.baggage) };
                hook.start(name, SpanKind::Consumer, parent.as_ref(), baggage, |rec| {
                    fill(rec);
                    let link = Link { trace_id: creation.trace_id, span_id: creation.span_id, trace_state: creation.trace_state.clone(), flags: creation.flags, attributes: Vec::new(), dropped_attributes: 0 };
                    rec.add_link_limited(link, super::span::limits());
                })
            }
            None => {
                let (parent, baggage) = ambient();
                hook.start(name, SpanKind::Consumer, parent.as_ref(), baggage, fill)
            }
        };
        let Some(span) = span else { return Ok(None) };
        let span = Bound::new(py, span)?;
        let token = current::enter(py, &span)?;
        let token = token.unwrap_or_else(|| py.None().into_bound(py));
        Ok(Some(PyTuple::new(py, [span.into_any(), token])?.into_any()))
    }
}
