//! The current span, kept in a `contextvars.ContextVar`: the one store that follows a request
//! across threads started with a copied context, `await` and asyncio tasks, and that the
//! OpenTelemetry API bridge can read.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::capi;
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
        Some(var) => Ok(Some(capi::context_var_set(var.bind(py), span.as_any())?)),
        None => Ok(None),
    }
}

pub fn exit(py: Python<'_>, token: Option<Bound<'_, PyAny>>) {
    if let (Some(var), Some(token)) = (VAR.get(py), token) {
        if capi::context_var_reset(var.bind(py), &token).is_err() {
            // A token from another context (the app switched contexts mid-request): leave the
            // variable as the app left it.
        }
    }
}

/// The active span in this context, if any.
pub fn get(py: Python<'_>) -> Option<Bound<'_, Span>> {
    capi::context_var_get(VAR.get(py)?.bind(py))?.cast_into::<Span>().ok()
}

/// The ContextVar itself, for Python code that reads or sets the current span on its own hot
/// path (the OpenTelemetry API bridge): `var.get(None)` / `set` / `reset` are C calls.
pub fn var(py: Python<'_>) -> Option<&Bound<'_, PyAny>> {
    VAR.get(py).map(|v| v.bind(py))
}
