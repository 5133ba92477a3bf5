//! The few CPython C-API calls the request path makes directly, because the limited API's
//! alternatives cost several times more (field notes: a UTF-8 view of a `str` without a temporary
//! bytes object; `ContextVar` set/reset without a method call, ≈83 ns against ≈200 ns per pair).
//! None is in the limited API for 3.9, but every one is exported with the same signature by
//! every CPython 3.9–3.13 (they are public, documented functions), and the extension resolves
//! them from the interpreter at load time, like every other `Py*` symbol it uses.

use std::ffi::{c_char, c_int};

use pyo3::ffi::{PyObject, Py_ssize_t};
use pyo3::prelude::*;
use pyo3::types::PyString;

extern "C" {
    fn PyUnicode_AsUTF8AndSize(unicode: *mut PyObject, size: *mut Py_ssize_t) -> *const c_char;
    fn PyContextVar_Set(var: *mut PyObject, value: *mut PyObject) -> *mut PyObject;
    fn PyContextVar_Reset(var: *mut PyObject, token: *mut PyObject) -> c_int;
    fn PyContextVar_Get(var: *mut PyObject, default_value: *mut PyObject, value: *mut *mut PyObject) -> c_int;
}

/// The UTF-8 contents of a `str`, borrowed from the object (CPython caches the encoding in it).
/// `None` for strings that are not valid UTF-8 (lone surrogates); the error is cleared.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> Option<&'a str> {
    let mut size: Py_ssize_t = 0;
    // SAFETY: `s` is a live str and we hold the GIL (a `Bound` proves both); the buffer lives as
    // long as the object, which outlives the returned borrow.
    unsafe {
        let data = PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size);
        if data.is_null() {
            pyo3::ffi::PyErr_Clear();
            return None;
        }
        let bytes = std::slice::from_raw_parts(data as *const u8, size as usize);
        Some(std::str::from_utf8_unchecked(bytes))
    }
}

/// `var.set(value)`: returns the token.
pub fn context_var_set<'py>(var: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = var.py();
    // SAFETY: GIL held; both objects live; a NULL result carries a Python error.
    unsafe { Bound::from_owned_ptr_or_err(py, PyContextVar_Set(var.as_ptr(), value.as_ptr())) }
}

/// `var.reset(token)`.
pub fn context_var_reset(var: &Bound<'_, PyAny>, token: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: GIL held; both objects live.
    if unsafe { PyContextVar_Reset(var.as_ptr(), token.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(var.py()))
    }
}

/// `var.get(None)`: the value, or `None` when unset.
pub fn context_var_get<'py>(var: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let py = var.py();
    let mut out: *mut PyObject = std::ptr::null_mut();
    // SAFETY: GIL held; on success `out` is a new reference or NULL (unset, no default).
    unsafe {
        if PyContextVar_Get(var.as_ptr(), std::ptr::null_mut(), &mut out) != 0 {
            pyo3::ffi::PyErr_Clear();
            return None;
        }
        Bound::from_owned_ptr_or_opt(py, out)
    }
}
