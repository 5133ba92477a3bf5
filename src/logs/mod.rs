//! The log record: what a Python `logging.LogRecord` becomes once it leaves the request thread.
//! Plain Rust data, no Python references (like `span::SpanRecord`), so the export thread handles
//! it without the GIL. `hooks/logs.rs` builds it; `pipeline` queues it; `export/otlp_wire.rs`
//! encodes it.

use crate::context::{SpanId, TraceId};
use crate::span::{Attributes, Key, Text, Value};

/// A log body: the OTLP `AnyValue` shapes a Python log message can take (`logging` allows a
/// non-string `msg`, e.g. a dict, when no formatting arguments are given).
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// From `body_text` (a recycled buffer when one is free).
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    Array(Vec<Body>),
    Map(Vec<(String, Body)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// When the event happened (`LogRecord.created`), ns since the Unix epoch.
    pub time_ns: u64,
    /// When ferrotel saw it.
    pub observed_ns: u64,
    /// The specification's severity number (1–24; 0 unspecified).
    pub severity_number: u8,
    pub severity_text: Key,
    pub body: Option<Body>,
    /// The record's own extra attributes (`extra=`) and the exception's: empty, so no allocation,
    /// for most records.
    pub attributes: Attributes,
    /// Where it was logged, exported as `code.*` attributes after `attributes`.
    pub code: Code,
    /// The span active when the record was emitted (`TraceId::INVALID`-like zeros when none).
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    /// W3C trace flags of that span (bit 0: sampled).
    pub flags: u8,
    /// The instrumentation scope: the Python logger's name, as upstream.
    pub scope: Key,
}

/// Buffers of exported bodies, handed back by the logs export thread (`recycle`) for the logging
/// threads to reuse (`body_text`): a body otherwise is malloc'ed on the logging thread and freed
/// on the export thread, and that pattern keeps glibc's allocator on its slow path (~1k
/// instructions per record here, against ~50 for the queue). Bounded: `POOL_SIZE` buffers of at
/// most `POOL_MAX_CAPACITY` bytes.
static POOL: once_cell::sync::Lazy<crossbeam_queue::ArrayQueue<String>> = once_cell::sync::Lazy::new(|| crossbeam_queue::ArrayQueue::new(POOL_SIZE));
const POOL_SIZE: usize = 512;
const POOL_MAX_CAPACITY: usize = 1024;

/// `text` in a buffer of the pool when one is free, else in a new one.
pub fn body_text(text: &str) -> String {
    match POOL.pop() {
        Some(mut buffer) => {
            buffer.clear();
            buffer.push_str(text);
            buffer
        }
        None => text.to_owned(),
    }
}

/// Give the bodies of exported records back to the pool (the rest is dropped).
pub fn recycle(records: Vec<LogRecord>) {
    for r in records {
        if let Some(Body::Str(s)) = r.body {
            if s.capacity() <= POOL_MAX_CAPACITY && POOL.push(s).is_err() {
                return; // full: the rest is freed
            }
        }
    }
}

/// Where a record was logged: `code.file.path`, `code.function.name`, `code.line.number`. Kept
/// out of the attribute list so that a record without extras carries no list at all; the file
/// and function names repeat from record to record and are usually borrowed (`hooks::logs`
/// interns them), so the record allocates nothing for them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Code {
    pub file: Option<Key>,
    pub function: Option<Key>,
    pub line: Option<i64>,
}

impl Code {
    /// The `code.*` attributes, in this order: file, function, line.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, Value)> + '_ {
        let text = |k: &Key| Value::Str(match k {
            Key::Borrowed(s) => Text::const_new(s),
            Key::Owned(s) => Text::new(s),
        });
        self.file
            .as_ref()
            .map(|f| ("code.file.path", text(f)))
            .into_iter()
            .chain(self.function.as_ref().map(|f| ("code.function.name", text(f))))
            .chain(self.line.map(|l| ("code.line.number", Value::Int(l))))
    }
}

impl LogRecord {
    /// Every attribute as exported: the record's own, then the `code.*` ones.
    pub fn all_attributes(&self) -> Attributes {
        let mut all = self.attributes.clone();
        all.extend(self.code.attributes().map(|(k, v)| (Key::Borrowed(k), v)));
        all
    }
}

/// Python's numeric level (`logging.INFO` = 20, ...) to the specification's severity number,
/// exactly as the upstream SDK maps it: below DEBUG → 0 (unspecified); 10 → DEBUG (5), 11–13 →
/// DEBUG2–4, 14–19 → DEBUG4; likewise per band of ten up to 50 → FATAL (21); above 53 → FATAL4.
pub fn severity_number(levelno: i64) -> u8 {
    if levelno < 10 {
        return 0;
    }
    if levelno > 53 {
        return 24;
    }
    let band = (levelno / 10) as u8; // 1 (DEBUG) .. 5 (FATAL)
    1 + 4 * band + (levelno % 10).min(3) as u8
}

/// Python's level name to the specification's severity text (upstream: WARNING → WARN,
/// CRITICAL → FATAL; anything else as is).
pub fn severity_text(levelname: &str) -> Key {
    match levelname {
        "WARNING" => Key::Borrowed("WARN"),
        "CRITICAL" => Key::Borrowed("FATAL"),
        "DEBUG" => Key::Borrowed("DEBUG"),
        "INFO" => Key::Borrowed("INFO"),
        "ERROR" => Key::Borrowed("ERROR"),
        other => Key::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_numbers_follow_the_upstream_table() {
        let cases = [
            (0, 0), (9, 0), (10, 5), (11, 6), (13, 8), (14, 8), (19, 8), (20, 9), (23, 12), (25, 12), (30, 13),
            (33, 16), (40, 17), (42, 19), (49, 20), (50, 21), (53, 24), (54, 24), (100, 24), (-5, 0),
        ];
        for (level, number) in cases {
            assert_eq!(severity_number(level), number, "level {level}");
        }
    }

    #[test]
    fn severity_texts() {
        assert_eq!(severity_text("WARNING"), "WARN");
        assert_eq!(severity_text("CRITICAL"), "FATAL");
        assert_eq!(severity_text("INFO"), "INFO");
        assert_eq!(severity_text("Level 25"), "Level 25");
    }
}
