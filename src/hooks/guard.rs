//! Fail open: agent bookkeeping on the request path must never raise into the app. A Python
//! error or a Rust panic inside it is reported once and the request carries on untraced; after
//! `MAX_FAULTS` faults in a process the agent turns itself off there (one more line) and every
//! hook passes straight through.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};

use pyo3::PyResult;

const MAX_FAULTS: u32 = 100;
static FAULTS: AtomicU32 = AtomicU32::new(0);

/// Run agent-side work; `None` (after one warning per `what`) if it failed or panicked.
pub fn quietly<T>(what: &'static str, f: impl FnOnce() -> PyResult<T>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            crate::log::warn_once(what, &format!("internal error in {what}: {e}; continuing without it"));
            fault();
            None
        }
        Err(_) => {
            crate::log::warn_once(what, &format!("internal panic in {what}; continuing without it"));
            fault();
            None
        }
    }
}

fn fault() {
    if FAULTS.fetch_add(1, Ordering::Relaxed) + 1 == MAX_FAULTS {
        crate::log::warn(&format!("{MAX_FAULTS} internal faults in this process; the agent turns itself off here"));
        crate::agent::turn_off();
    }
}

/// Keep Rust panics inside the agent from printing Rust's panic message (the agent reports them
/// itself, once). The hook belongs to this library's own copy of std, so other Rust extensions
/// in the process keep theirs.
pub fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// `FERROTEL_TEST_FAULT`: panic here when the configured fault is `at` (tests only).
#[inline]
pub fn inject(at: crate::config::TestFault) {
    if let Some(agent) = crate::agent::get() {
        if agent.test_fault == Some(at) {
            panic!("injected fault ({at:?})");
        }
    }
}
