//! Databases and caches: one core every driver configures (`DbHook`), so a PEP 249 driver is a
//! few lines of Python (`python/ferrotel/hooks/databases/`).
//!
//! A statement's span is a CLIENT span of the `Db` family, a child of the active span, made
//! without any Python object in the synchronous case:
//! - sync methods (`Cursor.execute`, `executemany`, `callproc`, a connection's `execute`, redis'
//!   `execute_command`) are replaced by native `MethodHook`s whose `Around` is [`DbAround`]: it
//!   starts the record, calls the original with the caller's own arguments, and ends the record
//!   when the call returns or raises (the exception goes back to the app unchanged);
//! - async methods get a coroutine function of a few lines around `start`/`end`/`fail`
//!   (`DbHook.functions()`), which hand a `Span` back and forth.
//!
//! The statement travels as written (`SpanRecord::raw_query`); the export thread sanitises it and
//! derives the summary and names (`processors::db`, `semconv::db`). Parameters are never read.
//!
//! Per connection, the facts that do not change (`db.namespace`, `server.address`/`port`) are a
//! [`DbConnection`] kept on the connection object as `_ferrotel_db` (hooked classes carry a
//! class-level `None`, so looking it up never raises), made once by the driver's `describe`.

use std::borrow::Cow;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::current;
use super::guard::quietly;
use super::method::{fast_function, Args, Around, MethodHook};
use super::registry;
use super::span::{exception_info, Span};
use crate::agent;
use crate::context::TraceId;
use crate::pipeline;
use crate::sampler::Sampler;
use crate::semconv::{self as sc, db};
use crate::span::{now_ns, Family, Scope, SpanKind, SpanRecord, Text, Value};

/// Statements longer than this are cut before they leave the request thread (the sanitised text
/// is bounded far lower; this bounds the copy and the export thread's work).
const RAW_QUERY_MAX: usize = 64 * 1024;

/// One connection's fixed facts.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct DbConnection {
    /// The server's own `db.system.name` when it differs from the driver's (MariaDB behind a
    /// MySQL driver; SQLAlchemy's dialect).
    system: Option<&'static str>,
    namespace: Option<Text>,
    address: Option<Text>,
    port: Option<i64>,
}

#[pymethods]
impl DbConnection {
    #[new]
    #[pyo3(signature = (namespace = None, address = None, port = None, system = None))]
    fn new(namespace: Option<&str>, address: Option<&str>, port: Option<i64>, system: Option<&str>) -> Self {
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(Text::from);
        DbConnection { system: system.and_then(known_system), namespace: nonempty(namespace), address: nonempty(address), port: port.filter(|p| *p > 0) }
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    #[getter]
    fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }
    #[getter]
    fn port(&self) -> Option<i64> {
        self.port
    }
}

/// The `db.system.name` values a connection may name for itself (a closed set: no allocation
/// per connection, and nothing the application's data could put there).
fn known_system(s: &str) -> Option<&'static str> {
    const KNOWN: [&str; 12] = [
        "postgresql", "mysql", "mariadb", "sqlite", "redis", "microsoft.sql_server", "oracle.db", "cockroachdb", "trino", "clickhouse",
        "ibm.db2", "other_sql",
    ];
    KNOWN.iter().find(|k| **k == s).copied()
}

/// How a hooked method's arguments read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `execute(query, params...)`.
    Execute,
    /// `executemany(query, seq_of_params)`: `db.operation.batch.size` when the sequence has a
    /// length (a generator is never consumed).
    ExecuteMany,
    /// `callproc(name, params...)`: a stored procedure.
    CallProc,
    /// A key-value command: `execute_command(name, *args)` (redis).
    Command,
}

/// One driver's hook: its scope, `db.system.name`, and how to find a connection's facts.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct DbHook {
    scope: Scope,
    system: &'static str,
    /// The attribute of a cursor that holds its connection (`connection`); None: the hooked
    /// object is the connection (or knows its facts itself).
    connection_attr: Option<Py<PyString>>,
    /// `describe(connection) -> DbConnection`, called once per connection.
    describe: Option<Py<PyAny>>,
    /// The keyword name of the statement argument (`query`, `sql`, `operation`).
    query_keyword: String,
    /// Keep the connection's facts on the connection, and on the hooked object (a cursor) too,
    /// so the next call finds them at once; each off for classes with `__slots__`, where setting
    /// them would raise on every call.
    cache_on_connection: bool,
    cache_on_object: bool,
    /// The driver's `executemany` calls its own `execute` (PyMySQL, mysqlclient): while a batch
    /// runs on a cursor (`_ferrotel_batch`), its inner statements make no spans of their own.
    nested_executemany: bool,
}

#[pymethods]
impl DbHook {
    #[new]
    #[pyo3(signature = (scope, system, describe = None, connection_attr = None, query_keyword = "query".to_string(), cache_on_connection = true, cache_on_object = true, nested_executemany = false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        scope: String,
        system: String,
        describe: Option<Bound<'_, PyAny>>,
        connection_attr: Option<String>,
        query_keyword: String,
        cache_on_connection: bool,
        cache_on_object: bool,
        nested_executemany: bool,
    ) -> Self {
        DbHook {
            // Hooks are made once per driver and process: leaked names make every span's scope
            // and system a borrow.
            scope: Scope::fixed(Box::leak(scope.into_boxed_str())),
            system: Box::leak(system.into_boxed_str()),
            connection_attr: connection_attr.map(|a| PyString::intern(py, &a).unbind()),
            describe: describe.filter(|d| !d.is_none()).map(Bound::unbind),
            query_keyword,
            cache_on_connection,
            cache_on_object,
            nested_executemany,
        }
    }

    /// The native hook to put in place of a method whose implementation is `original`; `call`
    /// says how its arguments read: `execute`, `executemany`, `callproc` or `command`.
    fn wrap<'py>(slf: &Bound<'py, Self>, name: &str, original: Bound<'py, PyAny>, call: &str) -> PyResult<Bound<'py, MethodHook>> {
        let call = match call {
            "execute" => Call::Execute,
            "executemany" => Call::ExecuteMany,
            "callproc" => Call::CallProc,
            "command" => Call::Command,
            other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown database call kind {other}"))),
        };
        MethodHook::new(slf.py(), name, original, Box::new(DbAround { hook: slf.clone().unbind(), call }))
    }

    /// `(start, end, fail)` for Python-level (async) wrappers:
    /// `start(obj, statement, batch_size)` (batch_size -1: not a batch) gives a span or None;
    /// `start_command(obj, operation, text, batch_size)` the same for a command whose safe text
    /// the caller built (a redis pipeline); `end(span)`; `fail(span, exc)`.
    fn functions<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let f = |name: &str, which: Fn| fast_function(py, name, Box::new(DbFunction { hook: slf.clone().unbind(), which }));
        Ok((f("start", Fn::Start)?, f("start_command", Fn::StartCommand)?, f("end", Fn::End)?, f("fail", Fn::Fail)?))
    }

}

/// `/*traceparent='00-…-…-01'*/` (sqlcommenter's format: values URL-quoted, in single quotes).
fn sqlcomment(ctx: &crate::context::SpanContext) -> String {
    format!("/*traceparent='00-{}-{}-{:02x}'*/", ctx.trace_id, ctx.span_id, ctx.flags)
}

impl DbHook {
    /// The connection facts for `obj` (a cursor or a connection).
    fn connection<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, DbConnection>>> {
        let py = obj.py();
        if let Ok(c) = obj.cast::<DbConnection>() {
            return Ok(Some(c.clone()));
        }
        let key = intern!(py, "_ferrotel_db");
        if let Ok(found) = obj.getattr(key) {
            if let Ok(c) = found.cast_into::<DbConnection>() {
                return Ok(Some(c));
            }
        }
        let conn = match &self.connection_attr {
            Some(attr) => obj.getattr(attr.bind(py))?,
            None => obj.clone(),
        };
        if conn.as_ptr() != obj.as_ptr() {
            if let Ok(found) = conn.getattr(key) {
                if let Ok(c) = found.cast_into::<DbConnection>() {
                    if self.cache_on_object {
                        let _ = obj.setattr(key, &c);
                    }
                    return Ok(Some(c));
                }
            }
        }
        let Some(describe) = &self.describe else { return Ok(None) };
        let made = describe.bind(py).call1((&conn,))?;
        let Ok(c) = made.cast_into::<DbConnection>() else { return Ok(None) };
        if self.cache_on_connection {
            let _ = conn.setattr(key, &c);
        }
        if self.cache_on_object && conn.as_ptr() != obj.as_ptr() {
            let _ = obj.setattr(key, &c);
        }
        Ok(Some(c))
    }

    /// Start a statement's record (None: agent off, or this span is not recorded).
    fn begin(&self, obj: &Bound<'_, PyAny>, statement: Statement<'_>, batch: Option<i64>) -> PyResult<Option<SpanRecord>> {
        let Some(agent) = agent::get() else { return Ok(None) };
        let py = obj.py();
        let parent = current::get(py);
        let parent_ctx = parent.as_ref().map(|p| &p.get().context);
        let trace_id = parent_ctx.map_or_else(TraceId::random, |p| p.trace_id);
        let head = agent.sampler.decide(parent_ctx, trace_id);
        if !agent.records(head) {
            return Ok(None);
        }
        let conn = self.connection(obj)?;
        let system = conn.as_ref().and_then(|c| c.get().system).unwrap_or(self.system);
        let mut rec = SpanRecord::start(Text::const_new(system), SpanKind::Client, self.scope.clone(), parent_ctx, trace_id, head);
        rec.family = Family::Db;
        rec.push(db::DB_SYSTEM_NAME, Text::const_new(system));
        if let Some(c) = conn {
            let c = c.get();
            if let Some(ns) = &c.namespace {
                rec.push(db::DB_NAMESPACE, ns.clone());
            }
            if let Some(a) = &c.address {
                rec.push(sc::SERVER_ADDRESS, a.clone());
            }
            if let Some(p) = c.port {
                rec.push(sc::SERVER_PORT, p);
            }
        }
        if let Some(n) = batch.filter(|n| *n > 1) {
            rec.push(db::DB_OPERATION_BATCH_SIZE, n);
        }
        match statement {
            Statement::Sql(q) => rec.raw_query = query_text(&q),
            Statement::Procedure(name) => {
                if let Some(name) = name.as_ref().and_then(|n| text_of(n)) {
                    rec.push(db::DB_STORED_PROCEDURE_NAME, Text::from(name.as_ref()));
                }
                rec.push(db::DB_OPERATION_NAME, Text::const_new("CALL"));
            }
            Statement::Command { operation, text } => {
                // The command name is the statement's summary (and so the span's name).
                rec.push(db::DB_OPERATION_NAME, operation.clone());
                rec.push(db::DB_QUERY_SUMMARY, operation.clone());
                if registry::database().query_text {
                    if let Some(t) = text {
                        rec.push(db::DB_QUERY_TEXT, t);
                    }
                }
                rec.name = operation;
            }
        }
        pipeline::note_started();
        Ok(Some(rec))
    }
}

/// What a call executes.
enum Statement<'py> {
    /// SQL text (a `str`, `bytes`, or an object whose `str()` is the statement).
    Sql(Option<Bound<'py, PyAny>>),
    Procedure(Option<Bound<'py, PyAny>>),
    /// A command whose name and safe text (`GET ?`) the hook built.
    Command { operation: Text, text: Option<Text> },
}

fn text_of<'a>(v: &'a Bound<'_, PyAny>) -> Option<Cow<'a, str>> {
    if let Ok(s) = v.cast::<PyString>() {
        return crate::hooks::capi::utf8(s);
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Some(Cow::Owned(String::from_utf8_lossy(b.as_bytes()).into_owned()));
    }
    None
}

/// The statement as text, cut to `RAW_QUERY_MAX` on a character boundary. Composed statement
/// objects (psycopg's `sql.Composed`) are not rendered: that needs the connection's encoding.
fn query_text(q: &Option<Bound<'_, PyAny>>) -> Option<Box<str>> {
    let q = q.as_ref()?;
    let text = text_of(q)?;
    let mut end = text.len().min(RAW_QUERY_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].into())
}

/// A redis-style command's operation name (`GET`, `CLIENT SETNAME`), upper case; anything that
/// does not look like a command name is withheld.
fn command_name(v: &Bound<'_, PyAny>) -> Text {
    match text_of(v) {
        Some(name) if !name.is_empty() && name.len() <= 40 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_' || b == b'.' || b == b'-') => {
            Text::from(name.to_ascii_uppercase())
        }
        _ => Text::const_new("?"),
    }
}

/// `NAME ? ?`: the command with each argument withheld.
fn command_text(name: &str, nargs: usize) -> Text {
    let mut t = Text::with_capacity(name.len() + 2 * nargs);
    t.push_str(name);
    for _ in 0..nargs.min(64) {
        t.push_str(" ?");
    }
    t
}

/// The length of an `executemany` parameter sequence, without iterating it.
fn batch_size(v: Option<Borrowed<'_, '_, PyAny>>) -> Option<i64> {
    let v = v?;
    if let Ok(l) = v.cast::<PyList>() {
        return Some(l.len() as i64);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return Some(t.len() as i64);
    }
    None
}

/// A database error's response code: SQLSTATE (psycopg, psycopg2, asyncpg), SQLite's result
/// code, MySQL's and MariaDB's error number (the first argument, as their conventions say; not
/// the SQLSTATE PyMySQL also carries), or a redis error prefix (`WRONGTYPE`).
fn response_code(system: &str, exc: &Bound<'_, PyAny>) -> Option<String> {
    let py = exc.py();
    if matches!(system, "mysql" | "mariadb") {
        let first = exc.getattr(intern!(py, "args")).ok()?.get_item(0).ok()?;
        return first.extract::<i64>().ok().map(|n| n.to_string());
    }
    for attr in [intern!(py, "sqlstate"), intern!(py, "pgcode"), intern!(py, "sqlite_errorcode")] {
        if let Ok(v) = exc.getattr(attr) {
            if let Ok(s) = v.cast::<PyString>() {
                let s = s.to_string();
                if !s.is_empty() {
                    return Some(s);
                }
            } else if let Ok(i) = v.extract::<i64>() {
                return Some(i.to_string());
            }
        }
    }
    unsafe { pyo3::ffi::PyErr_Clear() };
    match system {
        "redis" => {
            let msg = exc.str().ok()?.to_string();
            let word = msg.split_whitespace().next()?;
            (word.len() >= 2 && word.bytes().all(|b| b.is_ascii_uppercase())).then(|| word.to_string())
        }
        _ => None,
    }
}

/// Record a failure: the `exception` event, status ERROR, `db.response.status_code` and
/// `error.type` (the response code where there is one, as the conventions ask; else the
/// exception's type).
fn record_failure(system: &str, rec: &mut SpanRecord, exc: &Bound<'_, PyAny>, tb: Option<Bound<'_, pyo3::types::PyTraceback>>) {
    let info = exception_info(exc, tb);
    sc::record_exception(rec, info, now_ns());
    if let Some(code) = response_code(system, exc) {
        rec.set(db::DB_RESPONSE_STATUS_CODE, Text::from(code.as_str()));
        rec.set(sc::ERROR_TYPE, Value::Str(Text::from(code)));
    }
}

fn end(mut rec: SpanRecord, end_ns: u64) {
    rec.end_ns = end_ns.max(rec.start_ns);
    pipeline::submit(rec);
}

/// The native method hook (sync calls).
struct DbAround {
    hook: Py<DbHook>,
    call: Call,
}

impl Around for DbAround {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let hook = self.hook.get();
        let Some(obj) = args.positional(0) else { return args.call(original) };
        let obj = obj.to_owned();
        let batch_flag = intern!(py, "_ferrotel_batch");
        if hook.nested_executemany {
            if self.call == Call::Execute && obj.getattr(batch_flag).is_ok_and(|v| v.is_truthy().unwrap_or(false)) {
                return args.call(original);
            }
            if self.call == Call::ExecuteMany {
                let _ = obj.setattr(batch_flag, true);
            }
        }
        let result = self.traced(original, args, &obj);
        if hook.nested_executemany && self.call == Call::ExecuteMany {
            let _ = obj.setattr(batch_flag, false);
        }
        result
    }
}

impl DbAround {
    fn traced<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let hook = self.hook.get();
        let started = quietly("the database hook", || {
            let (statement, batch) = match self.call {
                Call::Execute => (Statement::Sql(args.get(1, &hook.query_keyword).map(|b| b.to_owned())), None),
                Call::ExecuteMany => (Statement::Sql(args.get(1, &hook.query_keyword).map(|b| b.to_owned())), batch_size(args.positional(2).or_else(|| args.keyword("seq_of_parameters")).or_else(|| args.keyword("params_seq")).or_else(|| args.keyword("args")).or_else(|| args.keyword("vars_list")))),
                Call::CallProc => (Statement::Procedure(args.get(1, "procname").map(|b| b.to_owned())), None),
                Call::Command => {
                    let Some(name) = args.positional(1) else { return Ok(None) };
                    let operation = command_name(&name);
                    let text = command_text(&operation, args.positional_count().saturating_sub(2));
                    (Statement::Command { operation, text: Some(text) }, None)
                }
            };
            let rec = hook.begin(obj, statement, batch)?;
            // sqlcommenter: the statement the driver gets carries the span's context.
            let comment = match (&rec, self.call) {
                (Some(r), Call::Execute | Call::ExecuteMany) if registry::database().sqlcommenter => {
                    args.positional(1).and_then(|q| q.cast::<PyString>().ok().map(|s| s.to_string())).map(|q| format!("{q} {}", sqlcomment(&r.context())))
                }
                _ => None,
            };
            Ok(rec.map(|r| (r, comment)))
        })
        .flatten();
        let Some((mut rec, comment)) = started else { return args.call(original) };
        let result = match comment {
            Some(q) => args.call_with_positional(original, 1, &PyString::new(py, &q).into_any()),
            None => args.call(original),
        };
        let end_ns = now_ns();
        if let Err(err) = &result {
            let _ = quietly("the database hook", || {
                record_failure(hook.system, &mut rec, err.value(py).as_any(), err.traceback(py));
                Ok(())
            });
        }
        end(rec, end_ns);
        result
    }
}

#[derive(Clone, Copy)]
enum Fn {
    Start,
    StartCommand,
    End,
    Fail,
}

/// The fast functions behind `DbHook.functions()`.
struct DbFunction {
    hook: Py<DbHook>,
    which: Fn,
}

impl Around for DbFunction {
    fn call<'py>(&self, _none: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let none = py.None().into_bound(py);
        let hook = self.hook.get();
        let int = |i: usize| args.positional(i).and_then(|v| v.extract::<i64>().ok()).filter(|n| *n >= 0);
        match self.which {
            Fn::Start | Fn::StartCommand => {
                let Some(obj) = args.positional(0) else { return Ok(none) };
                let obj = obj.to_owned();
                let started = quietly("the database hook", || {
                    let (statement, batch) = if matches!(self.which, Fn::Start) {
                        (Statement::Sql(args.positional(1).map(|b| b.to_owned())), int(2))
                    } else {
                        let operation = args.positional(1).map(|n| command_name(&n)).unwrap_or(Text::const_new("?"));
                        let text = args.positional(2).and_then(|t| text_of(&t).map(|t| Text::from(t.as_ref())));
                        (Statement::Command { operation, text }, int(3))
                    };
                    match hook.begin(&obj, statement, batch)? {
                        Some(rec) => Ok(Some(Bound::new(py, Span::recorded(rec))?.into_any())),
                        None => Ok(None),
                    }
                })
                .flatten();
                Ok(started.unwrap_or(none))
            }
            Fn::End => {
                if let Some(span) = args.positional(0).and_then(|s| s.cast::<Span>().ok().map(|s| s.to_owned())) {
                    span.get().end(|_| {});
                }
                Ok(none)
            }
            Fn::Fail => {
                if let (Some(span), Some(exc)) = (args.positional(0), args.positional(1)) {
                    if let Ok(span) = span.cast::<Span>() {
                        let end_ns = now_ns();
                        let exc = exc.to_owned();
                        let _ = quietly("the database hook", || {
                            span.get().with(|rec| record_failure(hook.system, rec, &exc, None));
                            Ok(())
                        });
                        span.get().end(|rec| rec.end_ns = end_ns.max(rec.start_ns));
                    }
                }
                Ok(none)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_text_withholds_every_argument() {
        assert_eq!(command_text("SET", 2), "SET ? ?");
        assert_eq!(command_text("PING", 0), "PING");
    }
}
