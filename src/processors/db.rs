//! Database statements (first in the chain, always on): the raw statement a database hook
//! recorded becomes the sanitised `db.query.text`, the summary, operation and collection names
//! and the span name (`semconv::db`). The raw text is dropped here, so no later processor, the
//! metrics or an exporter can see it.
//!
//! An application runs the same few statements over and over: analyses are kept by statement
//! text (bounded: the table is emptied when full), so the common case costs one hash lookup.

use std::cell::RefCell;
use std::collections::HashMap;

use super::{DropReason, SpanProcessor};
use crate::semconv::db;
use crate::semconv::sql::Analysis;
use crate::span::SpanRecord;

/// Statements remembered at most (per process).
const CACHE_ENTRIES: usize = 2048;
/// Statements longer than this are analysed each time, not remembered.
const CACHE_MAX_LEN: usize = 4096;

pub struct Queries {
    max_len: usize,
    cache: RefCell<HashMap<(Box<str>, u8), Analysis>>,
}

impl Queries {
    /// `max_len`: the longest `db.query.text` kept (bytes).
    pub fn new(max_len: usize) -> Self {
        Queries { max_len, cache: RefCell::new(HashMap::new()) }
    }
}

impl SpanProcessor for Queries {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        let Some(raw) = span.raw_query.take() else { return Ok(()) };
        self.apply(span, raw);
        if self.max_len == 0 {
            // FERROTEL_DB_QUERY_TEXT=false: the summary and names, never the text.
            span.attributes.retain(|(k, _)| k != db::DB_QUERY_TEXT);
        }
        Ok(())
    }
}

impl Queries {
    fn apply(&self, span: &mut SpanRecord, raw: Box<str>) {
        let dialect = db::dialect_of(span) as u8;
        if raw.len() > CACHE_MAX_LEN {
            let a = db::analyze(span, &raw, self.max_len);
            db::apply_query(span, &a);
            return;
        }
        let mut cache = self.cache.borrow_mut();
        let key = (raw, dialect);
        if let Some(a) = cache.get(&key) {
            db::apply_query(span, a);
            return;
        }
        let a = db::analyze(span, &key.0, self.max_len);
        db::apply_query(span, &a);
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceId;
    use crate::span::{Family, Head, Scope, SpanKind, Value};

    #[test]
    fn the_raw_statement_never_stays_on_the_record() {
        let q = Queries::new(2048);
        for _ in 0..2 {
            let mut s = SpanRecord::start("sqlite", SpanKind::Client, Scope::fixed("t"), None, TraceId::random(), Head::Sampled);
            s.family = Family::Db;
            s.set(db::DB_SYSTEM_NAME, "sqlite");
            s.raw_query = Some("SELECT * FROM users WHERE password = 'hunter2'".into());
            q.process(&mut s).unwrap();
            assert!(s.raw_query.is_none());
            let all = format!("{:?}", s);
            assert!(!all.contains("hunter2"), "{all}");
            assert!(matches!(s.get(db::DB_QUERY_TEXT), Some(Value::Str(_))));
        }
    }
}
