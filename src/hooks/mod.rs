//! Everything that touches Python objects: the span handle Python code sees, the current-span
//! store, the shared hook machinery, and the instrumentations, one folder per family (`http`,
//! `db`). Past `pipeline::submit` nothing knows Python exists.
//!
//! Which library is hooked when is the Python registry's business (`ferrotel/_registry.py`); the
//! enable gate and the settings hooks read live in `registry`.

pub mod api;
pub mod capi;
pub mod convert;
pub mod current;
pub mod guard;
pub mod logs;
pub mod method;
pub mod otel;
pub mod registry;
pub mod span;

pub mod db;
pub mod http;
pub mod messaging;
pub mod rpc;

use pyo3::prelude::*;

/// Every hook class and function of the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(api::start_span, m)?)?;
    m.add_function(wrap_pyfunction!(api::set_current, m)?)?;
    m.add_function(wrap_pyfunction!(api::reset_current, m)?)?;
    m.add_function(wrap_pyfunction!(api::inject_headers, m)?)?;
    m.add_function(wrap_pyfunction!(registry::instrumentation, m)?)?;
    m.add_function(wrap_pyfunction!(registry::database_settings, m)?)?;
    m.add_class::<method::MethodHook>()?;
    m.add_class::<span::Span>()?;
    m.add_class::<db::DbHook>()?;
    m.add_class::<db::DbConnection>()?;
    m.add_class::<rpc::RpcHook>()?;
    m.add_class::<rpc::botocore::BotocoreHook>()?;
    m.add_class::<rpc::botocore::AwsClient>()?;
    m.add_class::<messaging::MessagingHook>()?;
    capi::register(m)?;
    http::register(m)?;
    otel::register(m)?;
    logs::register(m)
}
