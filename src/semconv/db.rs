//! Database semantic conventions (stable since semantic-conventions 1.33): attribute names, the
//! span name, and what a raw statement becomes before anything exports it.
//!
//! A hook records the statement as the application passed it in `SpanRecord::raw_query`; the
//! export thread hands it to [`apply_query`] first of all (`processors::db`), which sets the
//! sanitised `db.query.text` (every literal a `?`, see `sql.rs`), `db.query.summary`,
//! `db.operation.name` and `db.collection.name` when the hook did not know them, and names the
//! span `{db.query.summary}` (else `{db.operation.name} {target}`, `{target}`, `{db.system.name}`).

use super::sql::{self, Analysis, Dialect};
use crate::span::{SpanRecord, Text, Value};

pub const DB_SYSTEM_NAME: &str = "db.system.name";
pub const DB_NAMESPACE: &str = "db.namespace";
pub const DB_COLLECTION_NAME: &str = "db.collection.name";
pub const DB_OPERATION_NAME: &str = "db.operation.name";
pub const DB_QUERY_SUMMARY: &str = "db.query.summary";
pub const DB_QUERY_TEXT: &str = "db.query.text";
pub const DB_RESPONSE_STATUS_CODE: &str = "db.response.status_code";
pub const DB_OPERATION_BATCH_SIZE: &str = "db.operation.batch.size";
pub const DB_STORED_PROCEDURE_NAME: &str = "db.stored_procedure.name";

/// `db.system.name` values of the SQL databases the hooks know, and how their text is quoted.
pub fn dialect(system: &str) -> Dialect {
    match system {
        "postgresql" | "cockroachdb" => Dialect::Postgres,
        "mysql" | "mariadb" => Dialect::MySql,
        "sqlite" => Dialect::Sqlite,
        _ => Dialect::Other,
    }
}

fn str_attr<'a>(span: &'a SpanRecord, key: &str) -> Option<&'a str> {
    match span.get(key) {
        Some(Value::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// The dialect of a database span's statements, from its `db.system.name`.
pub fn dialect_of(span: &SpanRecord) -> Dialect {
    dialect(str_attr(span, DB_SYSTEM_NAME).unwrap_or(""))
}

/// Analyse `raw` (the statement as the application passed it) for this span.
pub fn analyze(span: &SpanRecord, raw: &str, max_len: usize) -> Analysis {
    sql::analyze(raw, dialect_of(span), max_len)
}

/// Set what the analysis found on a database span, and its name. Attributes the hook already
/// set (a redis command's operation name, a stored procedure) win over what the text says.
/// `batch`: the statement ran once per parameter set (`executemany`), so the operation is
/// `BATCH {operation}` as the conventions ask.
pub fn apply_query(span: &mut SpanRecord, a: &Analysis) {
    let batch = matches!(span.get(DB_OPERATION_BATCH_SIZE), Some(Value::Int(n)) if *n > 1);
    if !a.text.is_empty() {
        span.set(DB_QUERY_TEXT, Text::from(a.text.as_str()));
    }
    if span.get(DB_OPERATION_NAME).is_none() {
        if let Some(op) = a.operation {
            if batch {
                span.set(DB_OPERATION_NAME, Text::from(format!("BATCH {op}")));
            } else {
                span.set(DB_OPERATION_NAME, Text::const_new(op));
            }
        }
    }
    if span.get(DB_COLLECTION_NAME).is_none() {
        if let Some(c) = &a.collection {
            span.set(DB_COLLECTION_NAME, Text::from(c.as_str()));
        }
    }
    if span.get(DB_QUERY_SUMMARY).is_none() {
        if let Some(s) = &a.summary {
            let s = if batch { format!("BATCH {s}") } else { s.clone() };
            span.set(DB_QUERY_SUMMARY, Text::from(s));
        }
    }
    span.name = span_name(span);
}

/// `{db.query.summary}`, else `{db.operation.name} {target}`, `{db.operation.name}`, `{target}`,
/// else `{db.system.name}`; the target is the collection (or stored procedure), else the namespace.
pub fn span_name(span: &SpanRecord) -> Text {
    if let Some(s) = str_attr(span, DB_QUERY_SUMMARY) {
        return Text::from(s);
    }
    let target = str_attr(span, DB_COLLECTION_NAME).or_else(|| str_attr(span, DB_STORED_PROCEDURE_NAME)).or_else(|| str_attr(span, DB_NAMESPACE));
    match (str_attr(span, DB_OPERATION_NAME), target) {
        (Some(op), Some(t)) => Text::from(format!("{op} {t}")),
        (Some(op), None) => Text::from(op),
        (None, Some(t)) => Text::from(t),
        (None, None) => Text::from(str_attr(span, DB_SYSTEM_NAME).unwrap_or("DB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceId;
    use crate::span::{Head, Scope, SpanKind};

    fn span(system: &str) -> SpanRecord {
        let mut s = SpanRecord::start(system.to_string(), SpanKind::Client, Scope::fixed("t"), None, TraceId::random(), Head::Sampled);
        s.set(DB_SYSTEM_NAME, system);
        s
    }

    #[test]
    fn names_fall_back_in_the_conventions_order() {
        let mut s = span("redis");
        assert_eq!(span_name(&s), "redis");
        s.set(DB_NAMESPACE, "0");
        assert_eq!(span_name(&s), "0");
        s.set(DB_OPERATION_NAME, "GET");
        assert_eq!(span_name(&s), "GET 0");
        s.set(DB_QUERY_SUMMARY, "GET");
        assert_eq!(span_name(&s), "GET");
    }

    #[test]
    fn batches_name_their_operation() {
        let mut s = span("sqlite");
        s.set(DB_OPERATION_BATCH_SIZE, 3i64);
        let a = Analysis { text: "INSERT INTO t VALUES (?)".into(), operation: Some("INSERT"), collection: Some("t".into()), summary: Some("INSERT t".into()) };
        apply_query(&mut s, &a);
        assert_eq!(s.get(DB_OPERATION_NAME), Some(&Value::Str("BATCH INSERT".into())));
        assert_eq!(s.name, "BATCH INSERT t");
        assert_eq!(s.get(DB_COLLECTION_NAME), Some(&Value::Str("t".into())));
    }
}
