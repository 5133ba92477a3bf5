//! The one enable gate of every instrumentation, and the settings hooks read when they are
//! installed. Which library each instrumentation hooks, and when, is the Python registry's job
//! (`python/ferrotel/_registry.py`); this module only answers "may `name` run, and with what".

use once_cell::sync::OnceCell;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::{InstrumentationConfig, ProcessingConfig};

static INSTRUMENTATION: OnceCell<InstrumentationConfig> = OnceCell::new();
static DATABASE: OnceCell<DbSettings> = OnceCell::new();
/// `FERROTEL_CELERY_LINK_ONLY` (see `hooks::messaging`).
static CELERY_LINK_ONLY: OnceCell<bool> = OnceCell::new();

/// What the database hooks need on the request thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct DbSettings {
    /// Append a `traceparent` comment to SQL statements (sqlcommenter).
    pub sqlcommenter: bool,
    /// Keep the statement at all (`FERROTEL_DB_QUERY_TEXT`).
    pub query_text: bool,
}

/// Called once by `start` with the configuration it read.
pub fn configure(c: &InstrumentationConfig, p: &ProcessingConfig) {
    let _ = INSTRUMENTATION.set(c.clone());
    let _ = DATABASE.set(DbSettings { sqlcommenter: p.db_sqlcommenter, query_text: p.db_query_max_len > 0 });
    let _ = CELERY_LINK_ONLY.set(p.celery_link_only);
}

/// Whether a Celery process span only links to the message's creation context.
pub fn celery_link_only() -> bool {
    CELERY_LINK_ONLY.get().copied().unwrap_or(false)
}

pub fn database() -> DbSettings {
    DATABASE.get().copied().unwrap_or(DbSettings { sqlcommenter: false, query_text: true })
}

/// Whether the instrumentation upstream calls `name` may run.
pub fn enabled(name: &str) -> bool {
    INSTRUMENTATION.get().is_none_or(|c| c.enabled(name))
}

/// `(enabled, excluded-URL regexes)` for the instrumentation upstream calls `name` (`urllib`,
/// `urllib3`, `requests`, `httpx`, `sqlite3`, ...), from `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`
/// and `OTEL_PYTHON_<NAME>_EXCLUDED_URLS` / `OTEL_PYTHON_EXCLUDED_URLS`.
#[pyfunction]
pub fn instrumentation(name: &str) -> (bool, Vec<String>) {
    match INSTRUMENTATION.get() {
        Some(c) => (c.enabled(name), c.excluded_urls(name).to_vec()),
        None => (true, Vec::new()),
    }
}

/// The database hooks' settings, as a dict (read once when a driver is hooked).
#[pyfunction]
pub fn database_settings(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = database();
    let d = PyDict::new(py);
    d.set_item("sqlcommenter", s.sqlcommenter)?;
    d.set_item("query_text", s.query_text)?;
    Ok(d)
}
