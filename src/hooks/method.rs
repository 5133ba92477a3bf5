//! Native method wrappers: a hook installed on a class in place of one of its methods, called
//! without a Python frame of its own.
//!
//! A Python `def` wrapper that calls into Rust costs a frame, `*args`/`**kwargs` packing, a
//! `CALL_FUNCTION_EX` to the original and one tuple-based call per native helper (with the abi3
//! build for 3.9, pyo3 functions take their arguments as a tuple and a dict). Here the class
//! attribute is a `MethodHook` descriptor: `obj.method` binds it like a function (a bound method
//! around a `METH_FASTCALL | METH_KEYWORDS` builtin), so a call arrives as the interpreter's own
//! argument array, the instance first, and goes on to the original the same way (vectorcall where
//! the interpreter exports it, 3.11 and later), with no tuple, dict or frame built for it.
//!
//! Class-level access (`HTTPConnection.putrequest`) gives the `MethodHook` itself: callable with
//! the instance first (as a function taken from a class is), with `__wrapped__`, `__name__`,
//! `__qualname__` and `__doc__` of the original, as `functools.wraps` would leave them.

use std::ffi::{c_char, CString};

use pyo3::ffi::{self, PyObject, Py_ssize_t};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::capi;

/// What a hook does around the original method.
pub trait Around: Send + Sync + 'static {
    /// Run the call: `args.call(original)` somewhere inside, its result (or exception) returned
    /// as it came unless the hook has a reason to differ.
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>>;
}

/// The arguments of one call, in the vectorcall layout: `nargs` positional ones (the instance
/// first), then one value per name in `kwnames`. Borrowed from the caller for the call's length.
pub struct Args<'a, 'py> {
    py: Python<'py>,
    args: *const *mut PyObject,
    nargs: usize,
    kwnames: Option<Borrowed<'a, 'py, PyTuple>>,
}

impl<'a, 'py> Args<'a, 'py> {
    pub fn py(&self) -> Python<'py> {
        self.py
    }

    fn nkw(&self) -> usize {
        self.kwnames.as_ref().map_or(0, |k| k.len())
    }

    /// Positional argument `i` (0 is the instance).
    pub fn positional(&self, i: usize) -> Option<Borrowed<'_, 'py, PyAny>> {
        // SAFETY: the caller's array holds `nargs + nkw` live references for the call's length.
        (i < self.nargs).then(|| unsafe { Borrowed::from_ptr(self.py, *self.args.add(i)) })
    }

    /// How many arguments were passed by position (the instance included).
    pub fn positional_count(&self) -> usize {
        self.nargs
    }

    /// The argument at position `i`, or passed by keyword as `name`.
    pub fn get(&self, i: usize, name: &str) -> Option<Borrowed<'_, 'py, PyAny>> {
        self.positional(i).or_else(|| self.keyword(name))
    }

    /// The argument passed by keyword as `name`.
    pub fn keyword(&self, name: &str) -> Option<Borrowed<'_, 'py, PyAny>> {
        // SAFETY: as in `positional`.
        self.keyword_index(name).map(|j| unsafe { Borrowed::from_ptr(self.py, *self.args.add(self.nargs + j)) })
    }

    fn keyword_index(&self, name: &str) -> Option<usize> {
        let names = self.kwnames.as_ref()?;
        (0..names.len()).find(|&j| {
            names.get_borrowed_item(j).ok().is_some_and(|k| k.cast::<PyString>().ok().and_then(|k| capi::utf8(&k).map(|k| k == name)) == Some(true))
        })
    }

    /// Call `callable` with these arguments, unchanged.
    pub fn call(&self, callable: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let kwnames = self.kwnames.as_ref().map_or(std::ptr::null_mut(), |k| k.as_ptr());
        // SAFETY: the array and the names are the caller's, alive for this call.
        unsafe { vectorcall(self.py, callable.as_ptr(), self.args, self.nargs, kwnames) }
    }

    /// Call `callable` with these arguments, but positional argument `i` replaced by `value`
    /// (as passed: when the caller gave fewer, or passed it by keyword, unchanged).
    pub fn call_with_positional(&self, callable: &Bound<'py, PyAny>, i: usize, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if i >= self.nargs {
            return self.call(callable);
        }
        // SAFETY: as in `positional`.
        let mut array: Vec<*mut PyObject> = (0..self.nargs + self.nkw()).map(|j| unsafe { *self.args.add(j) }).collect();
        array[i] = value.as_ptr();
        let kwnames = self.kwnames.as_ref().map_or(std::ptr::null_mut(), |k| k.as_ptr());
        // SAFETY: `array` borrows from the caller's array and from `value`, alive for the call.
        unsafe { vectorcall(self.py, callable.as_ptr(), array.as_ptr(), self.nargs, kwnames) }
    }

    /// Call `callable` with these arguments, but the keyword argument `name` set to `value`
    /// (added when the caller did not pass it).
    pub fn call_with_keyword(&self, callable: &Bound<'py, PyAny>, name: &str, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: as in `positional`.
        let mut array: Vec<*mut PyObject> = (0..self.nargs + self.nkw()).map(|i| unsafe { *self.args.add(i) }).collect();
        let added;
        let kwnames = match self.keyword_index(name) {
            Some(j) => {
                array[self.nargs + j] = value.as_ptr();
                self.kwnames.as_ref().map_or(std::ptr::null_mut(), |k| k.as_ptr())
            }
            None => {
                array.push(value.as_ptr());
                let mut names: Vec<Bound<'py, PyAny>> = self.kwnames.as_ref().map(|k| k.iter().collect()).unwrap_or_default();
                names.push(PyString::new(self.py, name).into_any());
                added = PyTuple::new(self.py, names)?;
                added.as_ptr()
            }
        };
        // SAFETY: `array` borrows from the caller's array and from `value`, alive for the call;
        // `kwnames` names its keyword part.
        unsafe { vectorcall(self.py, callable.as_ptr(), array.as_ptr(), self.nargs, kwnames) }
    }
}

/// `METH_FASTCALL | METH_KEYWORDS` (pyo3-ffi names it only for 3.10+ under abi3).
pub type FastWithKeywords = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, Py_ssize_t, *mut PyObject) -> *mut PyObject;

/// Call `callable(*args[..nargs], **dict(zip(kwnames, args[nargs..])))` (see `capi::vectorcall`).
///
/// # Safety
/// `args` holds `nargs` + len(`kwnames`) live references; `kwnames` is NULL or a tuple of str.
unsafe fn vectorcall<'py>(py: Python<'py>, callable: *mut PyObject, args: *const *mut PyObject, nargs: usize, kwnames: *mut PyObject) -> PyResult<Bound<'py, PyAny>> {
    unsafe { capi::vectorcall(py, callable, args, nargs, kwnames) }
}

/// What the fast entry point holds (`self` of the builtin): the original and the hook.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct Target {
    original: Py<PyAny>,
    around: Box<dyn Around>,
}

/// The fast entry point: `METH_FASTCALL | METH_KEYWORDS`, `slf` is the `Target`.
unsafe fn entry(py: Python<'_>, slf: *mut PyObject, args: *const *mut PyObject, nargsf: Py_ssize_t, kwnames: *mut PyObject) -> PyResult<*mut PyObject> {
    // SAFETY: this function is only ever installed with a `Target` as its `self`.
    let target = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<Target>() };
    let target = target.get();
    let nargs = (nargsf as usize) & !(1usize << (usize::BITS - 1));
    let kwnames = unsafe { Borrowed::from_ptr_or_opt(py, kwnames).map(|k| k.cast_unchecked::<PyTuple>()) };
    let args = Args { py, args, nargs, kwnames };
    let original = target.original.bind(py);
    target.around.call(original, &args).map(Bound::into_ptr)
}

// The class attribute that replaces a method (see the module doc). No doc comment: the type's
// `__doc__` would hide the `__doc__` getter below (the original's).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct MethodHook {
    /// The method's name (`endheaders`, ...).
    name: String,
    /// The builtin (`METH_FASTCALL | METH_KEYWORDS`, `self` the `Target`) that does the work.
    fast: Py<PyAny>,
    original: Py<PyAny>,
}

impl MethodHook {
    /// A hook for the method `name` whose current implementation is `original`.
    pub fn new<'py>(py: Python<'py>, name: &str, original: Bound<'py, PyAny>, around: Box<dyn Around>) -> PyResult<Bound<'py, MethodHook>> {
        let fast = builtin(py, name, original.clone(), around)?;
        Bound::new(py, MethodHook { name: name.to_string(), fast: fast.unbind(), original: original.unbind() })
    }

    /// The name of the method this hook replaces.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A `METH_FASTCALL | METH_KEYWORDS` builtin named `name` that runs `around` (with `original`).
fn builtin<'py>(py: Python<'py>, name: &str, original: Bound<'py, PyAny>, around: Box<dyn Around>) -> PyResult<Bound<'py, PyAny>> {
    let target = Bound::new(py, Target { original: original.unbind(), around })?;
    // Hooks are installed once per process and stay: the definition lives as long.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: CString::new(name).unwrap_or_default().into_raw() as *const c_char,
        ml_meth: ffi::PyMethodDefPointer {
            // SAFETY (of the transmute): every variant is a function pointer; the flags below
            // tell Python the real signature.
            PyCFunction: unsafe { std::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(FAST) },
        },
        ml_flags: capi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: std::ptr::null(),
    }));
    // SAFETY: `def` is 'static; `target` is a live object, referenced by the new builtin.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyCMethod_New(def, target.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut())) }
}

/// A native stand-in for a plain callable (a closure a library keeps on an instance): calling it
/// runs `around` with `original`, the arguments passed on as the interpreter's array.
pub fn function_hook<'py>(py: Python<'py>, name: &str, original: Bound<'py, PyAny>, around: Box<dyn Around>) -> PyResult<Bound<'py, PyAny>> {
    builtin(py, name, original, around)
}

/// A native function for a Python-level hook to call on its hot path: a `METH_FASTCALL` builtin
/// (its arguments arrive as the interpreter's array, no tuple built), where pyo3's own functions
/// take a tuple and a dict in an abi3 build for 3.9. `around` gets None as its original.
pub fn fast_function<'py>(py: Python<'py>, name: &str, around: Box<dyn Around>) -> PyResult<Bound<'py, PyAny>> {
    builtin(py, name, py.None().into_bound(py), around)
}

/// `entry` behind pyo3's trampoline (panics caught, the interpreter's attachment counted). pyo3's
/// private API: pyo3 is pinned exactly in `Cargo.toml` (see `capi::PYO3_REVIEWED`).
const FAST: FastWithKeywords = pyo3::impl_::trampoline::get_trampoline_function!(fastcall_cfunction_with_keywords, entry);

#[pymethods]
impl MethodHook {
    /// `obj.name`: a bound method (the fast builtin with `obj` first); from the class, the hook.
    fn __get__(slf: &Bound<'_, Self>, obj: Option<&Bound<'_, PyAny>>, _owner: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match obj.filter(|o| !o.is_none()) {
            None => Ok(slf.clone().into_any().unbind()),
            Some(obj) => Ok(capi::method_new(slf.get().fast.bind(py), obj)?.unbind()),
        }
    }

    /// `Class.name(obj, ...)`: the same hook, the instance passed first.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
        Ok(self.fast.bind(py).call(args, kwargs)?.unbind())
    }

    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.original.clone_ref(py)
    }

    #[getter]
    fn __name__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.original.bind(py).getattr(pyo3::intern!(py, "__name__"))?.unbind())
    }

    #[getter]
    fn __qualname__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.original.bind(py).getattr(pyo3::intern!(py, "__qualname__"))?.unbind())
    }

    #[getter]
    fn __doc__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.original.bind(py).getattr(pyo3::intern!(py, "__doc__"))?.unbind())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let name = self.original.bind(py).getattr(pyo3::intern!(py, "__qualname__")).map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        format!("<ferrotel hook of {name}>")
    }
}

/// `METH_FASTCALL | METH_KEYWORDS` method definition for a builtin bound per object (`bound`):
/// `$entry` (`unsafe fn(Python, self, args, nargsf, kwnames) -> PyResult<*mut PyObject>`, as
/// `entry` above) behind pyo3's trampoline. Here so that pyo3's private API stays in this file.
macro_rules! fast_def {
    ($name:expr, $entry:path) => {
        $crate::hooks::method::FastDef::new($name, pyo3::impl_::trampoline::get_trampoline_function!(fastcall_cfunction_with_keywords, $entry))
    };
}
pub(crate) use fast_def;

/// A constant `METH_FASTCALL | METH_KEYWORDS` definition (`fast_def!`), for `static`s.
pub struct FastDef(ffi::PyMethodDef);

// SAFETY: a constant definition, never written (the interpreter only reads it).
unsafe impl Sync for FastDef {}

impl FastDef {
    pub const fn new(name: &'static std::ffi::CStr, entry: FastWithKeywords) -> Self {
        FastDef(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                // SAFETY (of the transmute): every variant is a function pointer; the flags below
                // tell Python the real signature.
                PyCFunction: unsafe { std::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(entry) },
            },
            ml_flags: capi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: std::ptr::null(),
        })
    }
}

/// A builtin of `def` whose `self` is `obj` (it holds a reference, which the garbage collector
/// sees): one object, called by vectorcall with the interpreter's argument array.
pub fn bound<'py>(def: &'static FastDef, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let def = &def.0 as *const ffi::PyMethodDef as *mut ffi::PyMethodDef;
    // SAFETY: `def` is 'static and never written; `obj` is live (the builtin takes a reference).
    unsafe { Bound::from_owned_ptr_or_err(obj.py(), ffi::PyCMethod_New(def, obj.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut())) }
}
