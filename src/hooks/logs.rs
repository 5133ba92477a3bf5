//! Python `logging`: trace correlation on every `LogRecord` (a record factory, the upstream
//! field names) and the OTLP log path (`emit_log`, called by the handler the logging hook puts
//! on the root logger). `python/ferrotel/hooks/logging_hook.py` installs both when the app
//! imports `logging`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::capi;
use super::convert;
use super::current;
use super::guard::quietly;
use super::method::{fast_function, Args, Around};
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
        let plain = is_plain_record(py, record);
        match current::get(py) {
            Some(span) => {
                let (trace_id, span_id) = self.ids(py, &span);
                set(py, record, plain, intern!(py, "otelTraceID"), trace_id.as_any())?;
                set(py, record, plain, intern!(py, "otelSpanID"), span_id.as_any())?;
                set(py, record, plain, intern!(py, "otelTraceSampled"), PyBool::new(py, span.get().context.is_sampled()).as_any())?;
            }
            None => {
                let zero = intern!(py, "0");
                set(py, record, plain, intern!(py, "otelTraceID"), zero.as_any())?;
                set(py, record, plain, intern!(py, "otelSpanID"), zero.as_any())?;
                set(py, record, plain, intern!(py, "otelTraceSampled"), PyBool::new(py, false).as_any())?;
            }
        }
        set(py, record, plain, intern!(py, "otelServiceName"), self.service_name.bind(py).as_any())
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
fn emit_log(py: Python<'_>, record: &Bound<'_, PyAny>) {
    if !pipeline::logs_enabled() {
        return;
    }
    if let Some(rec) = quietly("the logging handler", || build(py, record)) {
        pipeline::submit_log(rec);
    }
}

/// `_native.emit_log(record)`: a `METH_FASTCALL` builtin (`method::fast_function`), so that the
/// handler's call passes the record as the interpreter's argument array: a pyo3 function of an
/// abi3 build for 3.9 would take a tuple built for it (and freed) on every record.
struct EmitLog;

impl Around for EmitLog {
    fn call<'py>(&self, _original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        match args.positional(0) {
            Some(record) if args.positional_count() == 1 => emit_log(py, &record),
            _ => return Err(pyo3::exceptions::PyTypeError::new_err("emit_log() takes exactly one argument (the log record)")),
        }
        Ok(py.None().into_bound(py))
    }
}

/// `LogRecord` attributes that are not user data (upstream's list, plus the correlation fields).
/// The first `NEEDED` are the ones `build` reads, in the order of its slots (`NAME` .. `MESSAGE`).
const RESERVED: &[&str] = &[
    "name", "msg", "args", "levelname", "levelno", "pathname", "exc_info", "lineno", "funcName", "created", "message",
    "asctime", "exc_text", "filename", "getMessage", "module", "msecs", "process", "processName", "relativeCreated", "stack_info",
    "taskName", "thread", "threadName", "otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName",
];
const NAME: usize = 0;
const MSG: usize = 1;
const ARGS: usize = 2;
const LEVELNAME: usize = 3;
const LEVELNO: usize = 4;
const PATHNAME: usize = 5;
const EXC_INFO: usize = 6;
const LINENO: usize = 7;
const FUNCNAME: usize = 8;
const CREATED: usize = 9;
const MESSAGE: usize = 10;
const NEEDED: usize = 11;

/// The reserved names as interned strings (kept alive here, in `RESERVED` order) and their
/// addresses with their index, sorted: `LogRecord.__init__` sets its attributes with interned
/// names, so an address lookup recognises them without reading the text.
struct Reserved {
    names: Vec<Py<PyString>>,
    by_address: Vec<(usize, u8)>,
}

static RESERVED_INTERNED: PyOnceLock<Reserved> = PyOnceLock::new();

fn reserved(py: Python<'_>) -> &Reserved {
    RESERVED_INTERNED.get_or_init(py, || {
        let names: Vec<Py<PyString>> = RESERVED.iter().map(|k| PyString::intern(py, k).unbind()).collect();
        let mut by_address: Vec<(usize, u8)> = names.iter().enumerate().map(|(i, n)| (n.as_ptr() as usize, i as u8)).collect();
        by_address.sort_unstable();
        Reserved { names, by_address }
    })
}

impl Reserved {
    /// `key`'s index in `RESERVED`, or None for a name of the record's own.
    fn index(&self, key: &Bound<'_, PyString>) -> Option<usize> {
        let address = key.as_ptr() as usize;
        if let Ok(i) = self.by_address.binary_search_by_key(&address, |(a, _)| *a) {
            return Some(self.by_address[i].1 as usize);
        }
        let text = capi::utf8(key)?;
        RESERVED.iter().position(|r| *r == &*text)
    }
}

/// Where the reserved names sat in the last records read: `LAYOUT[i]` is 1 + the `RESERVED` index
/// of the name last seen at the record dict's i-th entry (0: none yet, or not a reserved name).
/// `LogRecord.__init__` sets its attributes in one order, the record factory and a formatter
/// theirs after them, so entry i of one record is almost always entry i of the next: one address
/// comparison with the interned name recognises it, no hashing, no text. A hint only saves work:
/// it is checked against the key each time (a different record layout, a custom factory or a
/// subclass just take the address search, and update the hint). Each hint is one byte, written
/// whole, so threads racing on one (free-threaded builds) at worst leave a hint that misses.
static LAYOUT: [AtomicU8; LAYOUT_MAX] = [const { AtomicU8::new(0) }; LAYOUT_MAX];
const LAYOUT_MAX: usize = 64;

/// What one pass over a record's dict found: the values `build` reads (borrowed from the dict:
/// valid until Python code runs that could change it) and where the first of the record's own
/// attributes is, if it has any.
struct Pass {
    slots: [*mut pyo3::ffi::PyObject; NEEDED],
    first_extra: Option<pyo3::ffi::Py_ssize_t>,
}

/// One `PyDict_Next` pass over the record's dict (insertion order), in place of a hashed lookup
/// per attribute: each key is recognised by the layout hint of its position, else by address,
/// else by text. Runs no Python code.
fn read_pass(py: Python<'_>, dict: &Bound<'_, PyDict>) -> Pass {
    let table = reserved(py);
    let mut out = Pass { slots: [std::ptr::null_mut(); NEEDED], first_extra: None };
    let mut pos: pyo3::ffi::Py_ssize_t = 0;
    let mut key: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    let mut entry = 0usize;
    loop {
        let before = pos;
        // SAFETY: `PyDict_Next` (stable ABI) on a dict, with the GIL held; `key` and `value` are
        // borrowed from the dict, which nothing changes during this loop (no Python code runs).
        if unsafe { pyo3::ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut key, &mut value) } == 0 {
            break;
        }
        let hint = LAYOUT.get(entry).map_or(0, |h| h.load(Ordering::Relaxed)) as usize;
        let index = if hint != 0 && table.names[hint - 1].as_ptr() == key {
            Some(hint - 1)
        } else {
            // SAFETY: a borrowed key of the dict (see above); the `Borrowed` takes no reference.
            let k = unsafe { pyo3::Borrowed::from_ptr(py, key) };
            match k.cast::<PyString>() {
                Ok(k) => {
                    let index = table.index(&k);
                    if let (Some(i), Some(h)) = (index, LAYOUT.get(entry)) {
                        if table.names[i].as_ptr() == key {
                            h.store(i as u8 + 1, Ordering::Relaxed);
                        }
                    }
                    if index.is_none() && out.first_extra.is_none() {
                        out.first_extra = Some(before);
                    }
                    index
                }
                Err(_) => None, // not a str: not an attribute name (skipped, as before)
            }
        };
        if let Some(i) = index {
            if i < NEEDED {
                out.slots[i] = value;
            }
        }
        entry += 1;
    }
    out
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
    /// The last text handed out for each use (logger name, file, function: consecutive records
    /// mostly repeat them), by address: one comparison instead of a hash lookup. Entries of
    /// `by_address` stay for the process's life, so an address here is still that string's.
    last: [(usize, &'static str); 3],
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

/// `v`'s text (see `Interner`); `use_` is 0, 1 or 2 (logger name, file, function).
fn interned(interner: &mut Option<Interner>, use_: usize, v: Option<&Bound<'_, PyAny>>) -> Option<Key> {
    let s = v?.cast::<PyString>().ok()?;
    let interner = interner.get_or_insert_with(|| Interner { by_address: HashMap::default(), bytes: 0, last: [(0, ""); 3] });
    let address = s.as_ptr() as usize;
    if interner.last[use_].0 == address {
        return Some(Key::Borrowed(interner.last[use_].1));
    }
    let text = interner.text(s)?;
    if let Key::Borrowed(t) = text {
        interner.last[use_] = (address, t);
    }
    Some(text)
}

fn build<'py>(py: Python<'py>, record: &Bound<'py, PyAny>) -> PyResult<LogRecord> {
    let observed_ns = now_ns();
    // The record's attributes are plain instance attributes: read them from its dict (cheaper
    // than getattr, which looks at the class first), all in one pass.
    let dict = record_dict(py, record)?;
    let pass = read_pass(py, &dict);
    // SAFETY: values borrowed from the dict, which no Python code has run to change since the
    // pass. The borrowed ones are read first and by C code only (a `str`'s text, an address);
    // the others (whose reading may run Python code: `__index__`, `__float__`, `getMessage`) are
    // taken as new references before any of them is read.
    let borrowed = |i: usize| (!pass.slots[i].is_null()).then(|| unsafe { pyo3::Borrowed::from_ptr(py, pass.slots[i]) });
    let owned = |i: usize| borrowed(i).map(|b| b.to_owned());
    let (msg, args, formatted, exc_info) = (owned(MSG), owned(ARGS), owned(MESSAGE), owned(EXC_INFO));
    let (levelno, lineno, created) = (owned(LEVELNO), owned(LINENO), owned(CREATED));

    let severity_text = severity_text(py, borrowed(LEVELNAME).as_deref());
    // The GIL is held: the lock is never contended (and not held across Python code).
    let (scope, file, function) = {
        let mut interner = INTERNER.lock().unwrap_or_else(|p| p.into_inner());
        let scope = interned(&mut interner, 0, borrowed(NAME).as_deref()).unwrap_or(Key::Borrowed(""));
        (scope, interned(&mut interner, 1, borrowed(PATHNAME).as_deref()), interned(&mut interner, 2, borrowed(FUNCNAME).as_deref()))
    };
    let code = Code { file, function, line: lineno.as_ref().and_then(int) };
    let levelno: i64 = levelno.as_ref().and_then(int).unwrap_or(0);
    let time_ns = match created.and_then(|v| v.extract::<f64>().ok()) {
        Some(secs) if secs > 0.0 => (secs * 1e9) as u64,
        _ => observed_ns,
    };
    let body = message(py, record, msg, args, formatted)?;

    // Most records carry no extras: the list stays empty (no allocation).
    let mut attributes: Attributes = Vec::new();
    if let Some(start) = pass.first_extra {
        extras(py, &dict, start, &mut attributes);
    }
    if let Some(exc_info) = exc_info {
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

/// `logging.LogRecord` (the class), once: records of exactly that class have the `__dict__` of
/// `object` (`capi::generic_dict`); others (subclasses, other factories) go through `getattr`.
static RECORD_CLASS: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

/// Whether `record` is exactly a `logging.LogRecord` (no subclass: no `__setattr__`, no
/// `__dict__` of its own). `logging` is imported: it is the caller.
fn is_plain_record(py: Python<'_>, record: &Bound<'_, PyAny>) -> bool {
    let class = RECORD_CLASS.get_or_init(py, || py.import("logging").and_then(|m| m.getattr("LogRecord")).ok().map(Bound::unbind));
    // SAFETY: a live object (the `Bound`); reading its type pointer takes no reference.
    class.as_ref().is_some_and(|c| unsafe { pyo3::ffi::Py_TYPE(record.as_ptr()) } as *mut pyo3::ffi::PyObject == c.as_ptr())
}

/// `record.name = value`: for a plain `LogRecord`, `object.__setattr__` itself
/// (`PyObject_GenericSetAttr`, stable ABI), which `setattr` would reach after the type's slot.
fn set(py: Python<'_>, record: &Bound<'_, PyAny>, plain: bool, name: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if !plain {
        return record.setattr(name, value);
    }
    // SAFETY: live objects and the GIL (the `Bound`s); 0, or -1 with an error set.
    if unsafe { pyo3::ffi::PyObject_GenericSetAttr(record.as_ptr(), name.as_ptr(), value.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(py))
    }
}

fn record_dict<'py>(py: Python<'py>, record: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    if is_plain_record(py, record) {
        if let Some(Ok(d)) = capi::generic_dict(record).map(|d| d.cast_into::<PyDict>()) {
            return Ok(d);
        }
    }
    Ok(record.getattr(intern!(py, "__dict__"))?.cast_into::<PyDict>()?)
}

/// An `int` attribute (`levelno`, `lineno`): an exact `int` read by C, anything else by pyo3
/// (`__index__`).
fn int(v: &Bound<'_, PyAny>) -> Option<i64> {
    if v.is_exact_instance_of::<PyInt>() {
        let mut overflow = 0;
        // SAFETY: `PyLong_AsLongAndOverflow` (stable ABI) on an int, with the GIL held; -1 with
        // an error set only for a non-int, which this is not.
        let n = unsafe { pyo3::ffi::PyLong_AsLongAndOverflow(v.as_ptr(), &mut overflow) };
        return (overflow == 0).then_some(n as i64);
    }
    v.extract().ok()
}

/// The standard level names, interned (as `logging`'s own `_levelToName` values are), with the
/// specification's severity text for each.
static LEVEL_NAMES: PyOnceLock<[(Py<PyString>, &'static str); 5]> = PyOnceLock::new();

/// `levelname` to the severity text: `logging`'s own names by address (no text read), others by
/// text (`logs::severity_text`).
fn severity_text(py: Python<'_>, levelname: Option<&Bound<'_, PyAny>>) -> Key {
    let Some(name) = levelname.and_then(|v| v.cast::<PyString>().ok()) else { return logs::severity_text("") };
    let known = LEVEL_NAMES.get_or_init(py, || {
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].map(|n| (PyString::intern(py, n).unbind(), match logs::severity_text(n) {
            Key::Borrowed(t) => t,
            Key::Owned(_) => n,
        }))
    });
    for (n, text) in known {
        if n.as_ptr() == name.as_ptr() {
            return Key::Borrowed(text);
        }
    }
    logs::severity_text(capi::utf8(name).as_deref().unwrap_or(""))
}

/// The record's own attributes (`extra=`, or set by a filter or the app): its names that are not
/// `LogRecord`'s, from dict position `start` (where `read_pass` saw the first of them) on.
fn extras(py: Python<'_>, dict: &Bound<'_, PyDict>, start: pyo3::ffi::Py_ssize_t, attributes: &mut Attributes) {
    let table = reserved(py);
    let mut pos = start;
    let mut key: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `PyDict_Next` (stable ABI) on a dict, with the GIL held; it hands out borrowed
    // references, which `from_borrowed_ptr` turns into owned ones before any other call.
    while unsafe { pyo3::ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut key, &mut value) } != 0 {
        let (k, v) = unsafe { (Bound::from_borrowed_ptr(py, key), Bound::from_borrowed_ptr(py, value)) };
        let Ok(k) = k.cast_into::<PyString>() else { continue };
        if table.index(&k).is_some() {
            continue;
        }
        if let (Some(key), Some(v)) = (capi::utf8(&k), convert::value(&v)) {
            attributes.push((key.to_string().into(), v));
        }
    }
}

/// The body: the formatted message (`getMessage()`), or, as upstream, the object itself when a
/// non-string `msg` comes without formatting arguments (a dict stays a map).
fn message(py: Python<'_>, record: &Bound<'_, PyAny>, msg: Option<Bound<'_, PyAny>>, args: Option<Bound<'_, PyAny>>, formatted: Option<Bound<'_, PyAny>>) -> PyResult<Option<Body>> {
    let msg = match msg {
        Some(m) => m,
        None => record.getattr(intern!(py, "msg"))?,
    };
    let has_args = match args {
        // SAFETY: `PyTuple_Size` (stable ABI) on a tuple (checked), with the GIL held.
        Some(args) if args.is_exact_instance_of::<PyTuple>() => (unsafe { pyo3::ffi::PyTuple_Size(args.as_ptr()) }) > 0,
        Some(args) => !args.is_none() && args.is_truthy().unwrap_or(true),
        None => false,
    };
    if !has_args && !msg.is_instance_of::<PyString>() {
        return Ok(if msg.is_none() { None } else { Some(any_body(&msg, 0)) });
    }
    // A formatter that ran before (the app's console handler) left the formatted message on the
    // record: the same text, without formatting it again.
    if let Some(m) = formatted {
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
    m.add("emit_log", fast_function(m.py(), "emit_log", Box::new(EmitLog))?)?;
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
