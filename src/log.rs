//! The agent's own messages: one line each on stderr, prefixed `ferrotel:`; some only once per
//! process.

use std::collections::HashSet;
use std::sync::Mutex;

static ONCE: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

pub fn warn(msg: &str) {
    eprintln!("ferrotel: {msg}");
}

/// Print `msg` the first time `key` is seen in this process.
pub fn warn_once(key: &'static str, msg: &str) {
    let first = match ONCE.try_lock() {
        Ok(mut guard) => guard.get_or_insert_with(HashSet::new).insert(key),
        Err(_) => false,
    };
    if first {
        warn(msg);
    }
}
