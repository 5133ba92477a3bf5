//! HTTP: the WSGI and ASGI server layers (and the framework knowledge they carry: Flask routes
//! and close callbacks, Starlette and Django routes), the shared server-span start, and the
//! outgoing-call hooks (`http.client`/urllib, urllib3/requests, httpx).

pub mod asgi;
pub mod client;
pub mod django;
pub mod headers;
pub mod server;
pub mod wsgi;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::HttpClientHook>()?;
    m.add_class::<client::Urllib3Hook>()?;
    m.add_class::<client::HttpxHook>()?;
    m.add_class::<wsgi::WsgiMiddleware>()?;
    m.add_class::<wsgi::StartResponse>()?;
    m.add_class::<wsgi::ResponseBody>()?;
    m.add_class::<wsgi::SizedResponseBody>()?;
    django::register(m)?;
    asgi::register(m)
}
