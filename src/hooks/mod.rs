//! Everything that touches Python objects: the span handle Python code sees, the current-span
//! store, and the per-framework hooks. Past `pipeline::submit` nothing knows Python exists.

pub mod api;
pub mod capi;
pub mod client;
pub mod asgi;
pub mod convert;
pub mod current;
pub mod guard;
pub mod logs;
pub mod method;
pub mod server;
pub mod otel;
pub mod span;
pub mod wsgi;
