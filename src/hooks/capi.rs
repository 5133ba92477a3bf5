//! The CPython C-API calls the request path makes directly, outside what pyo3 offers for an abi3
//! build for 3.9, because the limited API's alternatives cost several times more (field notes: a
//! UTF-8 view of a `str` without a temporary bytes object; `ContextVar` set/reset without a method
//! call, ≈83 ns against ≈200 ns per pair; calls that pass the interpreter's argument array on).
//!
//! # The ABI this module relies on
//!
//! The wheel is `cp39-abi3`: it must load on every CPython from 3.9 on. Every C-API function the
//! extension uses is therefore either
//! - in the **stable ABI of 3.9** (linked by name, like every symbol pyo3 uses: CPython promises
//!   to export it, with that signature, in every later 3.x), or
//! - **resolved at run time** from the running interpreter (`dlsym`), with a fallback built only
//!   from the 3.9 stable ABI when the interpreter does not export it. Such a function never appears
//!   among the library's undefined symbols, so a future CPython that drops or renames it cannot
//!   stop the module from loading: the agent only gets slower.
//!
//! `ABI` below is that table, one row per function or constant (and `tests/abi/test_abi.py` reads
//! it: the built library's undefined `Py*`/`_Py*` symbols must each be a `Stable39` row or in
//! CPython's stable ABI for 3.9, `tests/abi/stable_abi.txt`; no `Runtime` row may be linked).
//! `_native._capi()` reports what the running interpreter resolved; `_native._capi_fallbacks(True)`
//! makes every `Runtime` function take its fallback (tests run the request loops both ways).
//!
//! pyo3's private `impl_::trampoline` (in `method.rs`) is the one use of pyo3 internals: pyo3 is
//! pinned to an exact version in `Cargo.toml`, and `tests/abi` fails when the pin, `Cargo.lock` and
//! `PYO3_REVIEWED` below disagree, so an upgrade is a reviewed change, not a surprise.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use pyo3::ffi::{self, PyObject, Py_ssize_t};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

/// The pyo3 version whose private `impl_::trampoline` `method.rs` was written against (and whose
/// exact pin `Cargo.toml` carries). Changing pyo3 means re-reading that module, then this line.
pub const PYO3_REVIEWED: &str = "0.30.1";

/// How the extension gets a C-API function (or constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// In the stable ABI of 3.9: linked by name.
    Stable39,
    /// Looked up in the running interpreter; the fallback uses the 3.9 stable ABI only.
    Runtime,
    /// A constant compiled in: the same value in every CPython 3.9+ (checked against the headers
    /// of every interpreter `tests/abi` finds).
    Constant,
}

/// One row of the table: name, how it is had, and why (for `Runtime`: the fallback).
pub struct Row {
    pub name: &'static str,
    pub abi: Abi,
    pub why: &'static str,
}

/// Every C-API function and constant `hooks/` uses beyond pyo3's safe API (pyo3's own symbols are
/// all in the 3.9 stable ABI; `tests/abi` checks that too).
pub const ABI: &[Row] = &[
    Row { name: "PyUnicode_AsUTF8AndSize", abi: Abi::Runtime, why: "limited API from 3.10 (so not for a 3.9 wheel), exported by every CPython 3.9+; fallback: PyUnicode_AsUTF8String and a copy" },
    Row { name: "PyContextVar_Get", abi: Abi::Runtime, why: "not in the limited API (public since 3.7); fallback: ContextVar.get(None)" },
    Row { name: "PyContextVar_Set", abi: Abi::Runtime, why: "not in the limited API (public since 3.7); fallback: ContextVar.set(value)" },
    Row { name: "PyContextVar_Reset", abi: Abi::Runtime, why: "not in the limited API (public since 3.7); fallback: ContextVar.reset(token)" },
    Row { name: "PyObject_Vectorcall", abi: Abi::Runtime, why: "limited API from 3.12, an exported function from 3.11 (a static inline before); fallback: PyObject_VectorcallDict, else PyObject_Call" },
    Row { name: "PyObject_VectorcallDict", abi: Abi::Runtime, why: "not in the limited API (exported since 3.9); fallback: PyObject_Call with a tuple and a dict" },
    Row { name: "PyIter_Send", abi: Abi::Runtime, why: "stable ABI from 3.10 (so not for a 3.9 wheel); fallback: the awaitable's __await__() iterator, stepped by next() and send()" },
    Row { name: "PyMethod_New", abi: Abi::Runtime, why: "not in the limited API; fallback: types.MethodType(func, obj)" },
    Row { name: "PyObject_GenericGetDict", abi: Abi::Runtime, why: "stable ABI from 3.10 (so not for a 3.9 wheel), exported by every CPython 3.9+; fallback: getattr(obj, '__dict__')" },
    Row { name: "PyCMethod_New", abi: Abi::Stable39, why: "stable ABI 3.9: the builtins of method.rs (METH_FASTCALL | METH_KEYWORDS, a Target as self)" },
    Row { name: "PyErr_Clear", abi: Abi::Stable39, why: "stable ABI 3.2" },
    Row { name: "PyUnicode_AsUTF8String", abi: Abi::Stable39, why: "stable ABI 3.2: the UTF-8 fallback" },
    Row { name: "PyObject_Call", abi: Abi::Stable39, why: "stable ABI 3.2: the call fallback" },
    Row { name: "METH_FASTCALL", abi: Abi::Constant, why: "0x0080 since 3.7; limited API from 3.10, the same value (pyo3-ffi names it only for 3.10+ under abi3)" },
    Row { name: "METH_KEYWORDS", abi: Abi::Constant, why: "0x0002, limited API since 3.2" },
];

/// `METH_FASTCALL` (see `ABI`).
pub const METH_FASTCALL: c_int = 0x0080;

type AsUtf8AndSize = unsafe extern "C" fn(*mut PyObject, *mut Py_ssize_t) -> *const c_char;
type ContextVarSet = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject;
type ContextVarReset = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> c_int;
type ContextVarGet = unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut *mut PyObject) -> c_int;
type VectorcallFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, usize, *mut PyObject) -> *mut PyObject;
type MethodNew = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject;
type IterSend = unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut *mut PyObject) -> c_int;
type GenericGetDict = unsafe extern "C" fn(*mut PyObject, *mut c_void) -> *mut PyObject;

/// The `Runtime` rows, as found in the running interpreter (`None`: take the fallback).
#[derive(Default)]
struct Api {
    as_utf8_and_size: Option<AsUtf8AndSize>,
    context_var_get: Option<ContextVarGet>,
    context_var_set: Option<ContextVarSet>,
    context_var_reset: Option<ContextVarReset>,
    vectorcall: Option<VectorcallFn>,
    vectorcall_dict: Option<VectorcallFn>,
    method_new: Option<MethodNew>,
    iter_send: Option<IterSend>,
    generic_get_dict: Option<GenericGetDict>,
}

static RESOLVED: OnceLock<Api> = OnceLock::new();
static NONE: Api = Api {
    as_utf8_and_size: None,
    context_var_get: None,
    context_var_set: None,
    context_var_reset: None,
    vectorcall: None,
    vectorcall_dict: None,
    method_new: None,
    iter_send: None,
    generic_get_dict: None,
};
/// Tests: every `Runtime` function takes its fallback.
static FORCE_FALLBACKS: AtomicBool = AtomicBool::new(false);

fn api() -> &'static Api {
    if FORCE_FALLBACKS.load(Ordering::Relaxed) {
        return &NONE;
    }
    RESOLVED.get_or_init(|| {
        let interp = interpreter_handle();
        // SAFETY (of each transmute): the symbol, when the interpreter exports it, is the
        // documented C-API function with exactly this signature in every CPython that has it.
        macro_rules! find {
            ($name:literal, $ty:ty) => {
                lookup(interp, $name).map(|p| unsafe { std::mem::transmute::<*mut c_void, $ty>(p) })
            };
        }
        Api {
            as_utf8_and_size: find!(c"PyUnicode_AsUTF8AndSize", AsUtf8AndSize),
            context_var_get: find!(c"PyContextVar_Get", ContextVarGet),
            context_var_set: find!(c"PyContextVar_Set", ContextVarSet),
            context_var_reset: find!(c"PyContextVar_Reset", ContextVarReset),
            vectorcall: find!(c"PyObject_Vectorcall", VectorcallFn),
            vectorcall_dict: find!(c"PyObject_VectorcallDict", VectorcallFn),
            method_new: find!(c"PyMethod_New", MethodNew),
            iter_send: find!(c"PyIter_Send", IterSend),
            generic_get_dict: find!(c"PyObject_GenericGetDict", GenericGetDict),
        }
    })
}

/// The object that defines the stable ABI symbols this library is linked against (the `python`
/// executable, or a `libpython` an embedding program may have opened without `RTLD_GLOBAL`, where
/// a global lookup would not see it).
fn interpreter_handle() -> *mut c_void {
    // SAFETY: dladdr only reads the loader's tables; the handle is released never (the
    // interpreter is not unloaded while its extension runs).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(ffi::PyErr_Clear as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return std::ptr::null_mut();
        }
        libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD)
    }
}

fn lookup(interp: *mut c_void, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: symbol lookups in loaded objects.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if !p.is_null() {
        return Some(p);
    }
    (!interp.is_null()).then(|| unsafe { libc::dlsym(interp, name.as_ptr()) }).filter(|p| !p.is_null())
}

/// `obj.__dict__` the way `object` gives it (`PyObject_GenericGetDict`): for an instance of a
/// class that does not redefine `__dict__` (the caller knows), the same dict as `getattr` gives,
/// without looking the descriptor up through the type. `None` (the caller takes `getattr`) on
/// the fallback path or when the object has no dict.
pub fn generic_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let get = api().generic_get_dict?;
    // SAFETY: a live object and the GIL (a `Bound` proves both); a new reference or NULL with an
    // error set (cleared: the caller falls back).
    match unsafe { Bound::from_owned_ptr_or_err(obj.py(), get(obj.as_ptr(), std::ptr::null_mut())) } {
        Ok(d) => Some(d),
        Err(_) => None,
    }
}

/// The UTF-8 contents of a `str`: borrowed from the object (CPython caches the encoding in it), or
/// a copy on the fallback path. `None` for strings that are not valid UTF-8 (lone surrogates);
/// the error is cleared.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> Option<std::borrow::Cow<'a, str>> {
    match api().as_utf8_and_size {
        Some(as_utf8) => {
            let mut size: Py_ssize_t = 0;
            // SAFETY: `s` is a live str and we hold the GIL (a `Bound` proves both); the buffer
            // lives as long as the object, which outlives the returned borrow.
            unsafe {
                let data = as_utf8(s.as_ptr(), &mut size);
                if data.is_null() {
                    ffi::PyErr_Clear();
                    return None;
                }
                let bytes = std::slice::from_raw_parts(data as *const u8, size as usize);
                Some(std::borrow::Cow::Borrowed(std::str::from_utf8_unchecked(bytes)))
            }
        }
        None => {
            // SAFETY: as above; a new bytes object or NULL with an error set.
            let bytes = unsafe { Bound::from_owned_ptr_or_err(s.py(), ffi::PyUnicode_AsUTF8String(s.as_ptr())) };
            match bytes {
                Ok(b) => b.cast::<pyo3::types::PyBytes>().ok().map(|b| std::borrow::Cow::Owned(String::from_utf8_lossy(b.as_bytes()).into_owned())),
                Err(_) => None,
            }
        }
    }
}

/// `var.set(value)`: returns the token.
pub fn context_var_set<'py>(var: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = var.py();
    match api().context_var_set {
        // SAFETY: GIL held; both objects live; a NULL result carries a Python error.
        Some(set) => unsafe { Bound::from_owned_ptr_or_err(py, set(var.as_ptr(), value.as_ptr())) },
        None => var.call_method1(pyo3::intern!(py, "set"), (value,)),
    }
}

/// `var.reset(token)`.
pub fn context_var_reset(var: &Bound<'_, PyAny>, token: &Bound<'_, PyAny>) -> PyResult<()> {
    match api().context_var_reset {
        // SAFETY: GIL held; both objects live.
        Some(reset) => match unsafe { reset(var.as_ptr(), token.as_ptr()) } {
            0 => Ok(()),
            _ => Err(PyErr::fetch(var.py())),
        },
        None => var.call_method1(pyo3::intern!(var.py(), "reset"), (token,)).map(drop),
    }
}

/// `var.get(None)`: the value, or `None` when unset.
pub fn context_var_get<'py>(var: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let py = var.py();
    match api().context_var_get {
        Some(get) => {
            let mut out: *mut PyObject = std::ptr::null_mut();
            // SAFETY: GIL held; on success `out` is a new reference or NULL (unset, no default).
            unsafe {
                if get(var.as_ptr(), std::ptr::null_mut(), &mut out) != 0 {
                    ffi::PyErr_Clear();
                    return None;
                }
                Bound::from_owned_ptr_or_opt(py, out)
            }
        }
        None => var.call_method1(pyo3::intern!(py, "get"), (py.None(),)).ok().filter(|v| !v.is_none()),
    }
}

/// Call `callable(*args[..nargs], **dict(zip(kwnames, args[nargs..])))`.
///
/// # Safety
/// `args` holds `nargs` + len(`kwnames`) live references; `kwnames` is NULL or a tuple of str.
pub unsafe fn vectorcall<'py>(py: Python<'py>, callable: *mut PyObject, args: *const *mut PyObject, nargs: usize, kwnames: *mut PyObject) -> PyResult<Bound<'py, PyAny>> {
    let api = api();
    if let Some(call) = api.vectorcall {
        return unsafe { Bound::from_owned_ptr_or_err(py, call(callable, args, nargs, kwnames)) };
    }
    // 3.9 and 3.10 (or the fallback): keywords go as a dict.
    let kwargs = if kwnames.is_null() {
        None
    } else {
        let names = unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() };
        let kwargs = PyDict::new(py);
        for (j, name) in names.iter().enumerate() {
            kwargs.set_item(name, unsafe { Borrowed::from_ptr(py, *args.add(nargs + j)) })?;
        }
        Some(kwargs)
    };
    let kwargs_ptr = kwargs.as_ref().map_or(std::ptr::null_mut(), |k| k.as_ptr());
    if let Some(call_dict) = api.vectorcall_dict {
        return unsafe { Bound::from_owned_ptr_or_err(py, call_dict(callable, args, nargs, kwargs_ptr)) };
    }
    let positional = PyTuple::new(py, (0..nargs).map(|i| unsafe { Borrowed::from_ptr(py, *args.add(i)) }))?;
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyObject_Call(callable, positional.as_ptr(), kwargs_ptr)) }
}

/// What one `PyIter_Send` step gave.
pub enum Sent<'py> {
    /// The coroutine yielded this value (it is suspended).
    Yielded(Bound<'py, PyAny>),
    /// The coroutine returned this value (no StopIteration was raised).
    Returned(Bound<'py, PyAny>),
    /// The coroutine raised.
    Raised(PyErr),
}

/// Whether `iter_send` is available (3.10+, not forced to the fallback).
pub fn has_iter_send() -> bool {
    api().iter_send.is_some()
}

/// `PyIter_Send(iter, arg)`: one step of a coroutine or generator without a StopIteration object
/// for its return. `None` when the interpreter lacks it (3.9, or the fallbacks are forced).
pub fn iter_send<'py>(iter: &Bound<'py, PyAny>, arg: &Bound<'py, PyAny>) -> Option<Sent<'py>> {
    let send = api().iter_send?;
    let py = iter.py();
    let mut out: *mut PyObject = std::ptr::null_mut();
    // SAFETY: GIL held; both objects live; `out` is a new reference for PYGEN_RETURN (0) and
    // PYGEN_NEXT (1), NULL with an exception set for PYGEN_ERROR (-1).
    unsafe {
        Some(match send(iter.as_ptr(), arg.as_ptr(), &mut out) {
            0 => Sent::Returned(Bound::from_owned_ptr_or_opt(py, out).unwrap_or_else(|| py.None().into_bound(py))),
            1 => match Bound::from_owned_ptr_or_opt(py, out) {
                Some(v) => Sent::Yielded(v),
                None => Sent::Raised(PyErr::fetch(py)),
            },
            _ => Sent::Raised(PyErr::fetch(py)),
        })
    }
}

/// A bound method: `func` with `obj` as its first argument.
pub fn method_new<'py>(func: &Bound<'py, PyAny>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = func.py();
    match api().method_new {
        // SAFETY: both objects are live; a new reference or NULL with an exception set.
        Some(new) => unsafe { Bound::from_owned_ptr_or_err(py, new(func.as_ptr(), obj.as_ptr())) },
        None => {
            static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let method_type = METHOD_TYPE.get_or_try_init(py, || py.import("types")?.getattr("MethodType").map(Bound::unbind))?;
            method_type.bind(py).call1((func, obj))
        }
    }
}

/// `_native._capi()`: the `Runtime` rows and whether the running interpreter exports each, as
/// `[(name, "resolved" | "fallback")]`.
#[pyfunction]
fn _capi(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let a = api();
    let rows: [(&str, bool); 9] = [
        ("PyUnicode_AsUTF8AndSize", a.as_utf8_and_size.is_some()),
        ("PyContextVar_Get", a.context_var_get.is_some()),
        ("PyContextVar_Set", a.context_var_set.is_some()),
        ("PyContextVar_Reset", a.context_var_reset.is_some()),
        ("PyObject_Vectorcall", a.vectorcall.is_some()),
        ("PyObject_VectorcallDict", a.vectorcall_dict.is_some()),
        ("PyMethod_New", a.method_new.is_some()),
        ("PyIter_Send", a.iter_send.is_some()),
        ("PyObject_GenericGetDict", a.generic_get_dict.is_some()),
    ];
    PyList::new(py, rows.iter().map(|(n, ok)| (*n, if *ok { "resolved" } else { "fallback" })))
}

/// `_native._capi_fallbacks(on)`: tests only; every `Runtime` function takes its fallback.
#[pyfunction]
fn _capi_fallbacks(on: bool) {
    FORCE_FALLBACKS.store(on, Ordering::Relaxed);
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_capi, m)?)?;
    m.add_function(wrap_pyfunction!(_capi_fallbacks, m)?)?;
    m.add("_PYO3_REVIEWED", PYO3_REVIEWED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_row_is_reported_by_capi() {
        let runtime: Vec<&str> = ABI.iter().filter(|r| r.abi == Abi::Runtime).map(|r| r.name).collect();
        assert_eq!(runtime.len(), 9, "one row of `_capi` per Runtime row");
    }
}
