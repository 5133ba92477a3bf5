//! Django's two per-request hooks, native: no Python frame of their own (`hooks/method.rs`).
//!
//! - `WSGIHandler.__call__`: each WSGI request goes through the handler's own native WSGI
//!   middleware (`wsgi.rs`; made once per handler and kept in its `__dict__`, as the Python
//!   wrapper did), around the original `__call__` bound to the handler.
//! - `BaseHandler.resolve_request`: once Django's resolver matched, `request.resolver_match.route`
//!   becomes the server span's `http.route`, with a leading slash and the script prefix
//!   (`/api/items/<int:item_id>`); a `re_path` pattern loses its `^`/`$` anchors.
//!
//! Measured by `bench/profile_asgi.py` (paired, callgrind): the two Python wrappers these replace
//! cost a frame each plus a tuple-based native call per request.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::hooks::capi;
use crate::hooks::guard::quietly;
use crate::hooks::method::{Args, Around, MethodHook};

/// `/` + Django's route under the script prefix (`request.path` minus `request.path_info`); a
/// `re_path` pattern loses its anchors.
pub fn django_template(path: &str, path_info: &str, route: &str) -> String {
    let prefix = path.strip_suffix(path_info).unwrap_or("").trim_end_matches('/');
    let mut tail = route.strip_prefix('^').unwrap_or(route);
    for suffix in ["$", "\\Z"] {
        tail = tail.strip_suffix(suffix).unwrap_or(tail);
    }
    let tail = tail.strip_prefix('/').unwrap_or(tail);
    format!("{prefix}/{tail}")
}

/// `request.<name>` as text, borrowed where the interpreter allows (None: absent or not a str).
fn str_attr<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyString>>> {
    Ok(obj.getattr_opt(name)?.and_then(|v| v.cast_into::<PyString>().ok()))
}

fn text<'a>(s: &'a Bound<'_, PyString>) -> std::borrow::Cow<'a, str> {
    capi::utf8(s).unwrap_or_else(|| std::borrow::Cow::Owned(s.to_string_lossy().into_owned()))
}

/// The route of a resolved request onto the current server span.
fn set_route(py: Python<'_>, request: &Bound<'_, PyAny>, resolver_match: &Bound<'_, PyAny>) -> PyResult<()> {
    let Some(route) = str_attr(resolver_match, intern!(py, "route"))? else { return Ok(()) };
    let (Some(path), Some(path_info)) = (str_attr(request, intern!(py, "path"))?, str_attr(request, intern!(py, "path_info"))?) else {
        return Ok(());
    };
    super::server::set_current_route(py, django_template(&text(&path), &text(&path_info), &text(&route)));
    Ok(())
}

/// `django_route(request, resolver_match)`: the Python-callable form (kept for callers that hook
/// the resolver themselves).
#[pyfunction]
pub fn django_route(py: Python<'_>, request: Bound<'_, PyAny>, resolver_match: Bound<'_, PyAny>) {
    quietly("the Django route hook", || set_route(py, &request, &resolver_match));
}

/// `BaseHandler.resolve_request(self, request)`: the original, then the route.
struct ResolveRequest;

impl Around for ResolveRequest {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let matched = args.call(original)?;
        if let Some(request) = args.get(1, "request") {
            let py = args.py();
            quietly("the Django route hook", || set_route(py, &request, &matched));
        }
        Ok(matched)
    }
}

/// `WSGIHandler.__call__(self, environ, start_response)` through the handler's native WSGI
/// middleware.
struct HandlerCall {
    scope: String,
    excluded: Option<Py<PyAny>>,
}

impl HandlerCall {
    /// The handler's middleware: made on its first request, kept in its `__dict__`.
    fn middleware<'py>(&self, original: &Bound<'py, PyAny>, handler: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = handler.py();
        let key = intern!(py, "_ferrotel_wsgi");
        let dict = handler.getattr(intern!(py, "__dict__"))?;
        let dict = dict.cast::<PyDict>()?;
        if let Some(m) = dict.get_item(key)? {
            return Ok(m);
        }
        let bound = capi::method_new(original, handler)?;
        let excluded = self.excluded.as_ref().map(|e| e.clone_ref(py));
        let m = py.get_type::<super::wsgi::WsgiMiddleware>().call1((bound, self.scope.as_str(), false, excluded, true))?;
        dict.set_item(key, &m)?;
        Ok(m)
    }
}

impl Around for HandlerCall {
    fn call<'py>(&self, original: &Bound<'py, PyAny>, args: &Args<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let (Some(handler), Some(environ), Some(start_response), 3) =
            (args.positional(0), args.get(1, "environ"), args.get(2, "start_response"), args.positional_count())
        else {
            return args.call(original); // an unusual call: the original, untraced
        };
        let handler = handler.to_owned();
        let middleware = match quietly("the Django WSGI hook", || self.middleware(original, &handler)) {
            Some(m) => m,
            None => return args.call(original),
        };
        middleware.call1((environ, start_response))
    }
}

/// The `MethodHook` that replaces `WSGIHandler.__call__` (`original`).
#[pyfunction]
#[pyo3(signature = (original, scope, excluded = None))]
pub fn django_wsgi_hook<'py>(original: Bound<'py, PyAny>, scope: String, excluded: Option<Py<PyAny>>) -> PyResult<Bound<'py, MethodHook>> {
    let py = original.py();
    let excluded = excluded.filter(|e| !e.is_none(py));
    MethodHook::new(py, "__call__", original, Box::new(HandlerCall { scope, excluded }))
}

/// The `MethodHook` that replaces `BaseHandler.resolve_request` (`original`).
#[pyfunction]
pub fn django_resolve_hook<'py>(original: Bound<'py, PyAny>) -> PyResult<Bound<'py, MethodHook>> {
    MethodHook::new(original.py(), "resolve_request", original, Box::new(ResolveRequest))
}

/// Registered by `_native`'s module init.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(django_route, m)?)?;
    m.add_function(wrap_pyfunction!(django_wsgi_hook, m)?)?;
    m.add_function(wrap_pyfunction!(django_resolve_hook, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_routes_get_a_leading_slash_and_the_script_prefix() {
        assert_eq!(django_template("/api/items/7", "/api/items/7", "api/items/<int:item_id>"), "/api/items/<int:item_id>");
        assert_eq!(django_template("/", "/", ""), "/");
        assert_eq!(django_template("/app/api/x", "/api/x", "api/x"), "/app/api/x");
        assert_eq!(django_template("/legacy/2024/", "/legacy/2024/", "^legacy/(?P<year>[0-9]{4})/$"), "/legacy/(?P<year>[0-9]{4})/");
        assert_eq!(django_template("/a", "/a", "a\\Z"), "/a");
    }
}
