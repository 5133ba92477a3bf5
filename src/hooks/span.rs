//! The span handle Python holds while a span is open: its identity (immutable) and the record
//! being filled (behind a mutex, taken exactly once when the span ends).

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyTraceback;

use crate::context::SpanContext;
use crate::metrics::active;
use crate::pipeline;
use crate::semconv::{self, ExceptionInfo};
use crate::span::{now_ns, Head, SpanRecord};

#[pyclass(frozen, module = "ferrotel._native")]
pub struct Span {
    pub context: SpanContext,
    pub baggage: Option<String>,
    /// The record while the span is open and recording; None once ended (or never recorded).
    record: Mutex<Option<SpanRecord>>,
    /// The active-requests slot this span holds while open.
    active: Option<active::Slot>,
}

impl Span {
    /// A span handle; `recording` false keeps only the identity (context propagation).
    pub fn new(record: SpanRecord, baggage: Option<String>, recording: bool, active: Option<active::Slot>) -> Self {
        let context = record.context();
        pipeline::note_started();
        Span { context, baggage, record: Mutex::new(recording.then_some(record)), active: active.filter(|_| recording) }
    }

    /// Work on the open record, if the span is still recording.
    pub fn with<R>(&self, f: impl FnOnce(&mut SpanRecord) -> R) -> Option<R> {
        let mut guard = self.record.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().map(f)
    }

    /// End the span (once; later calls do nothing) and hand it to the pipeline.
    pub fn end(&self, finish: impl FnOnce(&mut SpanRecord)) {
        let taken = self.record.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut rec) = taken {
            if let Some(slot) = self.active {
                active::leave(slot);
            }
            rec.end_ns = now_ns().max(rec.start_ns);
            finish(&mut rec);
            pipeline::submit(rec);
        }
    }

    /// Record a Python exception as an `exception` event (first one only: a framework hook and
    /// the WSGI layer may both see the same failure).
    pub fn record_exception(&self, err: &Bound<'_, PyAny>) {
        self.with(|rec| {
            if rec.events.iter().any(|e| e.name == "exception") {
                return;
            }
            let info = exception_info(err);
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
        self.with(|r| r.head != Head::Dropped).unwrap_or(false)
    }
    #[pyo3(name = "record_exception")]
    fn py_record_exception(&self, exc: &Bound<'_, PyAny>) {
        self.record_exception(exc);
    }
    fn __repr__(&self) -> String {
        format!("<ferrotel Span trace_id={} span_id={}>", self.context.trace_id, self.context.span_id)
    }
}

/// Qualified type name (`ValueError`, `app.errors.PaymentError`), message and formatted
/// traceback of an exception object.
pub fn exception_info(err: &Bound<'_, PyAny>) -> ExceptionInfo {
    let py = err.py();
    let ty = err.get_type();
    let qualname = ty.qualname().map(|s| s.to_string()).unwrap_or_else(|_| "Exception".into());
    let module = ty.module().map(|s| s.to_string()).unwrap_or_default();
    let type_name = if module.is_empty() || module == "builtins" || module == "__main__" { qualname } else { format!("{module}.{qualname}") };
    let message = err.str().map(|s| s.to_string()).unwrap_or_default();
    let stacktrace = (|| -> PyResult<String> {
        let tb = err.getattr("__traceback__")?;
        let tb = if tb.is_none() { None } else { Some(tb.cast_into::<PyTraceback>()?) };
        let lines = py.import("traceback")?.call_method1("format_exception", (ty, err, tb))?;
        Ok(lines.try_iter()?.filter_map(|l| l.ok()?.extract::<String>().ok()).collect())
    })()
    .unwrap_or_default();
    ExceptionInfo { type_name, message, stacktrace }
}
