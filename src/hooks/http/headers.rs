//! Header capture, shared by the server and client hooks: which header names are captured
//! (`OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_{SERVER,CLIENT}_{REQUEST,RESPONSE}`) and which
//! values are replaced by `[REDACTED]` (`..._SANITIZE_FIELDS`), as upstream's
//! `opentelemetry-util-http` reads them: each list is comma-separated regular expressions, joined
//! into one and matched case-insensitively -- the capture lists against the whole header name
//! (`fullmatch`; `.*` captures every header), the sanitize list anywhere in it (`search`).
//!
//! Plain names (letters, digits, `-`, `_`: what nearly every configuration holds) are compared
//! in Rust, which is what the regular expression would do with them; only a list with a pattern
//! in it is matched by Python's `re` (compiled once, on first use, like upstream's).
//! Captured values go in as `http.{request,response}.header.<lower-cased name>` (string arrays,
//! one entry per header line), within the span limits.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::agent::{self, Agent};
use crate::config::plain_header_name;
use crate::span::{SpanRecord, Value};

pub const REDACTED: &str = "[REDACTED]";

/// One configured list of header names.
pub struct Matcher {
    /// Lower-cased plain names (when every entry is plain).
    names: Vec<String>,
    /// The compiled pattern's `fullmatch` / `search` (when an entry is a pattern).
    pattern: Option<Py<PyAny>>,
    /// `search` anywhere (sanitize) rather than the whole name (capture).
    search: bool,
}

impl Matcher {
    fn new(py: Python<'_>, list: &[String], search: bool, what: &'static str) -> Self {
        let mut m = Matcher { names: Vec::new(), pattern: None, search };
        if list.iter().all(|n| plain_header_name(n)) {
            m.names = list.iter().map(|n| n.to_ascii_lowercase()).collect();
            return m;
        }
        let compiled = (|| -> PyResult<Py<PyAny>> {
            let re = py.import("re")?;
            let flags = re.getattr("IGNORECASE")?;
            let pattern = re.call_method1("compile", (list.join("|"), flags))?;
            Ok(pattern.getattr(if search { "search" } else { "fullmatch" })?.unbind())
        })();
        match compiled {
            Ok(p) => m.pattern = Some(p),
            Err(e) => {
                crate::log::warn_once(what, &format!("{what} is not a valid regular expression ({e}); matching the names as written"));
                m.names = list.iter().map(|n| n.to_ascii_lowercase()).collect();
            }
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.pattern.is_none()
    }

    /// Whether the header `name` (lower case) is on the list.
    pub fn matches(&self, py: Python<'_>, name: &str) -> bool {
        if let Some(p) = &self.pattern {
            return p.bind(py).call1((name,)).is_ok_and(|m| !m.is_none());
        }
        if self.search {
            self.names.iter().any(|n| name.contains(n.as_str()))
        } else {
            self.names.iter().any(|n| n == name)
        }
    }
}

/// Which list.
#[derive(Clone, Copy)]
pub enum Kind {
    ServerRequest,
    ServerResponse,
    ClientRequest,
    ClientResponse,
}

static MATCHERS: PyOnceLock<[Matcher; 5]> = PyOnceLock::new();

fn matchers<'a>(py: Python<'_>, agent: &Agent) -> &'a [Matcher; 5]
where
    'static: 'a,
{
    MATCHERS.get_or_init(py, || {
        [
            Matcher::new(py, &agent.capture_request_headers, false, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"),
            Matcher::new(py, &agent.capture_response_headers, false, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"),
            Matcher::new(py, &agent.capture_client_request_headers, false, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST"),
            Matcher::new(py, &agent.capture_client_response_headers, false, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE"),
            Matcher::new(py, &agent.sanitize_headers, true, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"),
        ]
    })
}

/// Whether anything is captured for `kind` (a cheap check before reading any header).
pub fn wanted(agent: &Agent, kind: Kind) -> bool {
    !match kind {
        Kind::ServerRequest => &agent.capture_request_headers,
        Kind::ServerResponse => &agent.capture_response_headers,
        Kind::ClientRequest => &agent.capture_client_request_headers,
        Kind::ClientResponse => &agent.capture_client_response_headers,
    }
    .is_empty()
}

/// Record the headers among `pairs` (name, value) that `kind`'s list names.
pub fn capture<'s>(py: Python<'_>, rec: &mut SpanRecord, kind: Kind, pairs: impl IntoIterator<Item = (&'s str, String)>) {
    let Some(agent) = agent::get() else { return };
    if !wanted(agent, kind) {
        return;
    }
    let [server_req, server_resp, client_req, client_resp, sanitize] = matchers(py, agent);
    let (list, prefix) = match kind {
        Kind::ServerRequest => (server_req, "http.request.header."),
        Kind::ServerResponse => (server_resp, "http.response.header."),
        Kind::ClientRequest => (client_req, "http.request.header."),
        Kind::ClientResponse => (client_resp, "http.response.header."),
    };
    let limits = crate::hooks::span::limits();
    for (name, value) in pairs {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !list.matches(py, &name) {
            continue;
        }
        let value = if !sanitize.is_empty() && sanitize.matches(py, &name) { REDACTED.to_string() } else { value };
        let key = format!("{prefix}{name}");
        match rec.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, Value::StrArray(values))) => values.push(value),
            _ => rec.set_limited(key, Value::StrArray(vec![value]), limits),
        }
    }
}

/// `(name, value)` text pairs of a Python iterable of 2-item pairs (str or bytes).
pub fn pairs_of(items: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let (Ok(n), Ok(v)) = (item.get_item(0), item.get_item(1)) else { continue };
        let (Some(n), Some(v)) = (text(&n), text(&v)) else { continue };
        out.push((n, v));
    }
    Ok(out)
}

fn text(v: &Bound<'_, PyAny>) -> Option<String> {
    if let Ok(s) = v.cast::<pyo3::types::PyString>() {
        return Some(s.to_cow().map(|c| c.into_owned()).unwrap_or_else(|_| s.to_string_lossy().into_owned()));
    }
    v.cast::<pyo3::types::PyBytes>().ok().map(|b| String::from_utf8_lossy(b.as_bytes()).into_owned())
}

/// The headers of a response object: `headers.multi_items()` (httpx), `headers.items()`
/// (urllib3, http.client's message), else `getheaders()`.
pub fn response_pairs(response: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let py = response.py();
    if let Some(headers) = response.getattr_opt(pyo3::intern!(py, "headers"))?.filter(|h| !h.is_none()) {
        if let Some(multi) = headers.getattr_opt(pyo3::intern!(py, "multi_items"))? {
            return pairs_of(&multi.call0()?);
        }
        if let Some(items) = headers.getattr_opt(pyo3::intern!(py, "items"))? {
            return pairs_of(&items.call0()?);
        }
    }
    match response.getattr_opt(pyo3::intern!(py, "getheaders"))? {
        Some(f) => pairs_of(&f.call0()?),
        None => Ok(Vec::new()),
    }
}
