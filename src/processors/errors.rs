//! Error enrichment: spans with status ERROR get `ferrotel.error=true`, an `error.type` (the
//! semantic conventions' `_OTHER` when nothing more precise is known) and, when an exception was
//! recorded, `exception.type` and `exception.message` as span attributes — most backends index
//! span attributes but not event attributes, so this is what makes errors searchable.

use super::{DropReason, SpanProcessor};
use crate::semconv as sc;
use crate::span::{SpanRecord, Status, Value};

pub const ERROR: &str = "ferrotel.error";

pub struct ErrorEnrichment;

impl SpanProcessor for ErrorEnrichment {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        if !matches!(span.status, Status::Error(_)) {
            return Ok(());
        }
        span.set(ERROR, true);
        if span.get(sc::ERROR_TYPE).is_none() {
            span.set(sc::ERROR_TYPE, "_OTHER");
        }
        let exception = span.events.iter().find(|e| e.name == "exception").map(|e| {
            let get = |k: &str| e.attributes.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            (get("exception.type"), get("exception.message"))
        });
        if let Some((ty, msg)) = exception {
            if let Some(Value::Str(t)) = ty {
                span.set("exception.type", t);
            }
            if let Some(Value::Str(m)) = msg {
                span.set("exception.message", m);
            }
        }
        Ok(())
    }
}

pub fn is_error(span: &SpanRecord) -> bool {
    matches!(span.status, Status::Error(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::server_span;
    use crate::semconv::{record_exception, ExceptionInfo};

    #[test]
    fn enriches_only_errors() {
        let mut ok = server_span("/", 1);
        ErrorEnrichment.process(&mut ok).unwrap();
        assert!(ok.get(ERROR).is_none());
        let mut s = server_span("/error", 1);
        record_exception(&mut s, ExceptionInfo { type_name: "ValueError".into(), message: "boom".into(), stacktrace: String::new() }, 1);
        ErrorEnrichment.process(&mut s).unwrap();
        assert_eq!(s.get(ERROR), Some(&Value::Bool(true)));
        assert_eq!(s.get("exception.type"), Some(&Value::Str("ValueError".into())));
        assert_eq!(s.get("exception.message"), Some(&Value::Str("boom".into())));
        let mut s = server_span("/e", 1);
        s.status = Status::Error(String::new());
        ErrorEnrichment.process(&mut s).unwrap();
        assert_eq!(s.get(sc::ERROR_TYPE), Some(&Value::Str("_OTHER".into())));
    }
}
