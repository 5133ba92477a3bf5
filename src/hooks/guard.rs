//! Fail open: agent bookkeeping on the request path must never raise into the app. A Python
//! error or a Rust panic inside it is reported once and the request carries on untraced.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::PyResult;

/// Run agent-side work; `None` (after one warning per `what`) if it failed or panicked.
pub fn quietly<T>(what: &'static str, f: impl FnOnce() -> PyResult<T>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            crate::log::warn_once(what, &format!("internal error in {what}: {e}; continuing without it"));
            None
        }
        Err(_) => {
            crate::log::warn_once(what, &format!("internal panic in {what}; continuing without it"));
            None
        }
    }
}
