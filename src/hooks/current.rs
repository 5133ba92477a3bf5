//! The current span, kept in a `contextvars.ContextVar`: the one store that follows a request
//! across threads started with a copied context, `await` and asyncio tasks, and that the
//! OpenTelemetry API bridge can read.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::intern;

use super::span::Span;

static VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

pub fn init(py: Python<'_>) -> PyResult<()> {
    if VAR.get(py).is_none() {
        let var = py.import("contextvars")?.getattr("ContextVar")?.call1(("ferrotel_current_span",))?;
        let _ = VAR.set(py, var.unbind());
    }
    Ok(())
}

/// Make `span` current; returns the token that restores the previous one.
pub fn enter<'py>(py: Python<'py>, span: &Bound<'py, Span>) -> PyResult<Option<Bound<'py, PyAny>>> {
    match VAR.get(py) {
        Some(var) => Ok(Some(var.bind(py).call_method1(intern!(py, "set"), (span,))?)),
        None => Ok(None),
    }
}

pub fn exit(py: Python<'_>, token: Option<Bound<'_, PyAny>>) {
    if let (Some(var), Some(token)) = (VAR.get(py), token) {
        let _ = var.bind(py).call_method1(intern!(py, "reset"), (token,));
    }
}

/// The active span in this context, if any.
pub fn get(py: Python<'_>) -> Option<Bound<'_, Span>> {
    let var = VAR.get(py)?.bind(py);
    let value = var.call_method1(intern!(py, "get"), (py.None(),)).ok()?;
    value.cast_into::<Span>().ok()
}
