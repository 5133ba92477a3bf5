//! Python `logging`: trace correlation on every `LogRecord` (a record factory, the upstream
//! field names) and the OTLP log path (`emit_log`, called by the handler the logging hook puts
//! on the root logger). `python/ferrotel/hooks/logging_hook.py` installs both when the app
//! imports `logging`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::capi;
use super::convert;
use super::current;
use super::guard::quietly;
use super::span::{exception_info, Span};
use crate::logs::{self, Body, Code, LogRecord};
use crate::pipeline;
use crate::resource::Resource;
use crate::span::{now_ns, Attributes, Key, Value};

/// `logging.setLogRecordFactory(LogRecordFactory(previous, service_name))`: builds the record
/// with the previous factory, then sets `otelTraceID`, `otelSpanID` (hex, or "0" outside a span),
/// `otelTraceSampled` (bool) and `otelServiceName`, as the upstream logging instrumentation does.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct LogRecordFactory {
    inner: Py<PyAny>,
    service_name: Py<PyString>,
    /// The last span seen and its ids as Python strings: the records of one request reuse them.
    /// Holding the span keeps its address from being reused by another span.
    last: Mutex<Option<(Py<Span>, Py<PyString>, Py<PyString>)>>,
}

#[pymethods]
impl LogRecordFactory {
    #[new]
    fn new(py: Python<'_>, inner: Py<PyAny>, service_name: &str) -> Self {
        LogRecordFactory { inner, service_name: PyString::new(py, service_name).unbind(), last: Mutex::new(None) }
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
        let record = self.inner.bind(py).call(args, kwargs)?;
        quietly("log correlation", || self.correlate(py, &record));
        Ok(record.unbind())
    }

    /// The factory this one wraps.
    #[getter]
    fn wrapped(&self, py: Python<'_>) -> Py<PyAny> {
        self.inner.clone_ref(py)
    }
}

impl LogRecordFactory {
    fn correlate(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<()> {
        match current::get(py) {
            Some(span) => {
                let (trace_id, span_id) = self.ids(py, &span);
                record.setattr(intern!(py, "otelTraceID"), trace_id)?;
                record.setattr(intern!(py, "otelSpanID"), span_id)?;
                record.setattr(intern!(py, "otelTraceSampled"), span.get().context.is_sampled())?;
            }
            None => {
                let zero = intern!(py, "0");
                record.setattr(intern!(py, "otelTraceID"), zero)?;
                record.setattr(intern!(py, "otelSpanID"), zero)?;
                record.setattr(intern!(py, "otelTraceSampled"), false)?;
            }
        }
        record.setattr(intern!(py, "otelServiceName"), self.service_name.bind(py))
    }

    /// The span's ids as hex strings, from the one-entry cache when it is the last span seen.
    fn ids<'py>(&self, py: Python<'py>, span: &Bound<'py, Span>) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        if let Ok(guard) = self.last.try_lock() {
            if let Some((s, t, i)) = guard.as_ref() {
                if s.as_ptr() == span.as_ptr() {
                    return (t.bind(py).clone(), i.bind(py).clone());
                }
            }
        }
        let c = &span.get().context;
        let trace_id = PyString::new(py, &c.trace_id.to_string());
        let span_id = PyString::new(py, &c.span_id.to_string());
        if let Ok(mut guard) = self.last.try_lock() {
            *guard = Some((span.clone().unbind(), trace_id.clone().unbind(), span_id.clone().unbind()));
        }
        (trace_id, span_id)
    }
}

/// What the Python side needs to set logging up: the switches from the configuration and the
/// service name (`service.name` of the resource the spans carry). None before the agent started.
#[pyfunction]
pub fn logging_settings(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Some(s) = pipeline::settings() else { return Ok(None) };
    let l = &s.config.logs;
    let resource = Resource::build(&s.config, &s.runtime);
    let service = match resource.get("service.name") {
        Some(Value::Str(name)) => name.to_string(),
        _ => String::new(),
    };
    let d = PyDict::new(py);
    d.set_item("service_name", service)?;
    d.set_item("export", l.export_enabled())?;
    d.set_item("correlation_format", l.correlation_format)?;
    d.set_item("format", l.format.clone())?;
    d.set_item("level", l.level)?;
    Ok(Some(d))
}

/// Export one `logging.LogRecord` as an OTLP log record (the handler's `emit`). Never raises;
/// never blocks (a full queue drops and counts).
#[pyfunction]
pub fn emit_log(py: Python<'_>, record: Bound<'_, PyAny>) {
    if !pipeline::logs_enabled() {
        return;
    }
    if let Some(rec) = quietly("the logging handler", || build(py, &record)) {
        pipeline::submit_log(rec);
    }
}

/// `LogRecord` attributes that are not user data (upstream's list, plus the correlation fields).
const RESERVED: &[&str] = &[
    "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "getMessage", "levelname", "levelno", "lineno",
    "message", "module", "msecs", "msg", "name", "pathname", "process", "processName", "relativeCreated", "stack_info", "taskName",
    "thread", "threadName", "otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName",
];

/// The reserved names as interned strings (kept alive here) and their addresses, sorted:
/// `LogRecord.__init__` sets its attributes with interned names, so an address lookup recognises
/// them without reading the text.
static RESERVED_INTERNED: PyOnceLock<(Vec<Py<PyString>>, Vec<usize>)> = PyOnceLock::new();

fn is_reserved(py: Python<'_>, key: &Bound<'_, PyString>) -> bool {
    let (_, addresses) = RESERVED_INTERNED.get_or_init(py, || {
        let names: Vec<Py<PyString>> = RESERVED.iter().map(|k| PyString::intern(py, k).unbind()).collect();
        let mut addresses: Vec<usize> = names.iter().map(|n| n.as_ptr() as usize).collect();
        addresses.sort_unstable();
        (names, addresses)
    });
    if addresses.binary_search(&(key.as_ptr() as usize)).is_ok() {
        return true;
    }
    capi::utf8(key).is_none_or(|k| RESERVED.contains(&&*k))
}

/// Text a log record repeats from call to call (its logger's name, file path, function name) is
/// the same Python `str` object each time (the logger's `name`, the code object's `co_filename`
/// and `co_name`): its text is kept once, leaked, and handed out as `&'static str` by the
/// object's address, so the record carries borrowed text instead of three copies made on the
/// logging thread and freed on the export thread. Each entry holds a reference to its `str`, so
/// the address cannot be reused by another object. Bounded: at most `INTERN_MAX` entries and
/// `INTERN_BYTES` of text in a process; past that, text is copied per record as before.
struct Interner {
    by_address: HashMap<usize, (Py<PyString>, &'static str), BuildHasherDefault<AddressHasher>>,
    bytes: usize,
}

const INTERN_MAX: usize = 4096;
const INTERN_BYTES: usize = 1 << 20;

static INTERNER: Mutex<Option<Interner>> = Mutex::new(None);

/// Addresses are already well spread: one multiplication.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Interner {
    /// The text of `s`, borrowed when it is (or can now be) interned, else copied.
    fn text(&mut self, s: &Bound<'_, PyString>) -> Option<Key> {
        let address = s.as_ptr() as usize;
        if let Some((_, t)) = self.by_address.get(&address) {
            return Some(Key::Borrowed(t));
        }
        let t = capi::utf8(s)?;
        if self.by_address.len() >= INTERN_MAX || self.bytes + t.len() > INTERN_BYTES {
            return Some(Key::Owned(t.into_owned()));
        }
        let leaked: &'static str = Box::leak(t.into_owned().into_boxed_str());
        self.bytes += leaked.len();
        self.by_address.insert(address, (s.clone().unbind(), leaked));
        Some(Key::Borrowed(leaked))
    }
}

fn interned(interner: &mut Option<Interner>, v: Option<Bound<'_, PyAny>>) -> Option<Key> {
    let v = v?;
    let s = v.cast::<PyString>().ok()?;
    interner.get_or_insert_with(|| Interner { by_address: HashMap::default(), bytes: 0 }).text(s)
}

fn build<'py>(py: Python<'py>, record: &Bound<'py, PyAny>) -> PyResult<LogRecord> {
    let observed_ns = now_ns();
    // The record's attributes are plain instance attributes: read them from its dict (cheaper
    // than getattr, which looks at the class first).
    let dict = record.getattr(intern!(py, "__dict__"))?.cast_into::<PyDict>()?;
    let get = |k: &Bound<'py, PyString>| -> Option<Bound<'py, PyAny>> { dict.get_item(k).ok().flatten() };
    let levelno: i64 = get(intern!(py, "levelno")).and_then(|v| v.extract().ok()).unwrap_or(0);
    let levelname = get(intern!(py, "levelname"));
    let severity_text = logs::severity_text(levelname.as_ref().and_then(|v| v.cast::<PyString>().ok()).and_then(|s| capi::utf8(s)).as_deref().unwrap_or(""));
    let time_ns = match get(intern!(py, "created")).and_then(|v| v.extract::<f64>().ok()) {
        Some(secs) if secs > 0.0 => (secs * 1e9) as u64,
        _ => observed_ns,
    };
    let body = message(py, record, &dict)?;
    // The GIL is held: the lock is never contended (and not held across Python code).
    let (scope, code) = {
        let mut interner = INTERNER.lock().unwrap_or_else(|p| p.into_inner());
        let scope = interned(&mut interner, get(intern!(py, "name"))).unwrap_or(Key::Borrowed(""));
        let code = Code {
            file: interned(&mut interner, get(intern!(py, "pathname"))),
            function: interned(&mut interner, get(intern!(py, "funcName"))),
            line: get(intern!(py, "lineno")).and_then(|v| v.extract::<i64>().ok()),
        };
        (scope, code)
    };

    // Most records carry no extras: the list stays empty (no allocation).
    let mut attributes: Attributes = Vec::new();
    extras(py, &dict, &mut attributes);
    if let Some(exc_info) = get(intern!(py, "exc_info")) {
        if let Ok(t) = exc_info.cast::<PyTuple>() {
            if t.len() == 3 {
                let value = t.get_item(1)?;
                if !value.is_none() {
                    let tb = t.get_item(2)?.cast_into().ok();
                    let info = exception_info(&value, tb);
                    attributes.push(("exception.type".into(), Value::Str(info.type_name.into())));
                    attributes.push(("exception.message".into(), Value::Str(info.message.into())));
                    attributes.push(("exception.stacktrace".into(), Value::Str(info.stacktrace.into())));
                }
            }
        }
    }

    let (trace_id, span_id, flags) = match current::get(py) {
        Some(span) => {
            let c = &span.get().context;
            (Some(c.trace_id), Some(c.span_id), c.flags)
        }
        None => (None, None, 0),
    };
    Ok(LogRecord {
        time_ns,
        observed_ns,
        severity_number: logs::severity_number(levelno),
        severity_text,
        body,
        attributes,
        code,
        trace_id,
        span_id,
        flags,
        scope,
    })
}

/// How many of a record's last attributes `extras` looks at first.
const EXTRAS_WINDOW: usize = 8;

/// The record's own attributes (`extra=`, or set by a filter): its names that are not
/// `LogRecord`'s. `LogRecord.__init__` sets the standard attributes first, the record factory the
/// correlation fields, `makeRecord` the `extra=` ones after both, and filters and formatters
/// append theirs (a formatter's `message` and `asctime` come last); a dict iterates in insertion
/// order. So every name of the record's own follows the last of those set before it: the last
/// `EXTRAS_WINDOW` entries are read first, and all of them only when the first entry of that
/// window is not one set before the extras (more extras than the window holds). Reading ~8
/// entries instead of ~28 is most of what a record costs here. (An attribute the app deleted and
/// set again moves to the end; a standard one treated so could hide extras before it: nothing
/// does that to a `LogRecord`.)
fn extras(py: Python<'_>, dict: &Bound<'_, PyDict>, attributes: &mut Attributes) {
    let start = dict.len().saturating_sub(EXTRAS_WINDOW);
    if start > 0 && scan(py, dict, start, attributes) {
        return;
    }
    attributes.clear();
    scan(py, dict, 0, attributes);
}

/// The non-reserved entries from dict position `start` on (insertion order; a position past
/// deleted entries only starts earlier, never later). With `start` > 0: false, having read
/// nothing, when the first entry is not a standard attribute set before the extras.
fn scan(py: Python<'_>, dict: &Bound<'_, PyDict>, start: usize, attributes: &mut Attributes) -> bool {
    let mut pos = start as pyo3::ffi::Py_ssize_t;
    let mut key: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    let mut first = start > 0;
    // SAFETY: `PyDict_Next` (stable ABI) on a dict, with the GIL held; it hands out borrowed
    // references, which `from_borrowed_ptr` turns into owned ones before any other call.
    while unsafe { pyo3::ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut key, &mut value) } != 0 {
        let (k, v) = unsafe { (Bound::from_borrowed_ptr(py, key), Bound::from_borrowed_ptr(py, value)) };
        let Ok(k) = k.cast_into::<PyString>() else {
            if first {
                return false;
            }
            continue;
        };
        if first {
            if !is_reserved(py, &k) || capi::utf8(&k).is_some_and(|n| n == "message" || n == "asctime") {
                return false;
            }
            first = false;
            continue;
        }
        if is_reserved(py, &k) {
            continue;
        }
        if let (Some(key), Some(v)) = (capi::utf8(&k), convert::value(&v)) {
            attributes.push((key.to_string().into(), v));
        }
    }
    true
}

/// The body: the formatted message (`getMessage()`), or, as upstream, the object itself when a
/// non-string `msg` comes without formatting arguments (a dict stays a map).
fn message(py: Python<'_>, record: &Bound<'_, PyAny>, dict: &Bound<'_, PyDict>) -> PyResult<Option<Body>> {
    let msg = match dict.get_item(intern!(py, "msg"))? {
        Some(m) => m,
        None => record.getattr(intern!(py, "msg"))?,
    };
    let has_args = match dict.get_item(intern!(py, "args"))? {
        Some(args) => !args.is_none() && args.is_truthy().unwrap_or(true),
        None => false,
    };
    if !has_args && !msg.is_instance_of::<PyString>() {
        return Ok(if msg.is_none() { None } else { Some(any_body(&msg, 0)) });
    }
    // A formatter that ran before (the app's console handler) left the formatted message on the
    // record: the same text, without formatting it again.
    if let Some(m) = dict.get_item(intern!(py, "message"))? {
        if let Ok(m) = m.cast::<PyString>() {
            if let Some(t) = capi::utf8(m) {
                return Ok(Some(Body::Str(logs::body_text(&t))));
            }
        }
    }
    let text = match record.call_method0(intern!(py, "getMessage")) {
        Ok(s) => s,
        // The app's own formatting bug: logging would print "--- Logging error ---" for it in
        // its other handlers; export the template instead of losing the record.
        Err(_) => msg.str()?.into_any(),
    };
    let text = text.str()?;
    Ok(Some(Body::Str(match capi::utf8(&text) {
        Some(t) => logs::body_text(&t),
        None => text.to_string_lossy().into_owned(),
    })))
}

fn any_body(v: &Bound<'_, PyAny>, depth: u8) -> Body {
    if let Ok(s) = v.cast::<PyString>() {
        return Body::Str(s.to_cow().map(|c| c.into_owned()).unwrap_or_default());
    }
    if v.is_instance_of::<PyBool>() {
        return Body::Bool(v.extract().unwrap_or(false));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Body::Int(i);
        }
    }
    if v.is_instance_of::<PyFloat>() {
        return Body::F64(v.extract().unwrap_or(f64::NAN));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Body::Bytes(b.as_bytes().to_vec());
    }
    if depth < 8 {
        if let Ok(d) = v.cast::<PyDict>() {
            return Body::Map(d.iter().map(|(k, v)| (k.str().map(|s| s.to_string()).unwrap_or_default(), any_body(&v, depth + 1))).collect());
        }
        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            if let Ok(it) = v.try_iter() {
                return Body::Array(it.flatten().map(|i| any_body(&i, depth + 1)).collect());
            }
        }
    }
    Body::Str(v.str().map(|s| s.to_string()).unwrap_or_default())
}

/// Log record counters of this process: exported, dropped (queue full), failed exports.
#[pyfunction]
pub fn log_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let (exported, dropped, failures) = pipeline::log_stats();
    let d = PyDict::new(py);
    d.set_item("logs_exported", exported)?;
    d.set_item("logs_dropped_queue_full", dropped)?;
    d.set_item("log_export_failures", failures)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LogRecordFactory>()?;
    m.add_function(wrap_pyfunction!(logging_settings, m)?)?;
    m.add_function(wrap_pyfunction!(emit_log, m)?)?;
    m.add_function(wrap_pyfunction!(log_stats, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::RESERVED;

    #[test]
    fn correlation_fields_are_not_exported_as_attributes() {
        for k in ["otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName", "msg", "args", "exc_info"] {
            assert!(RESERVED.contains(&k));
        }
    }
}
