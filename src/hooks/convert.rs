//! Python values to span attribute values (the OpenTelemetry API's allowed types: str, bool,
//! int, float and homogeneous sequences of them). Anything else is dropped, never raised.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::span::{Attributes, Value};

pub fn value(v: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(s) = v.cast::<PyString>() {
        return s.to_cow().ok().map(|c| Value::Str(c.into()));
    }
    if v.is_instance_of::<PyBool>() {
        return v.extract::<bool>().ok().map(Value::Bool);
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().ok().map(Value::Int);
    }
    if v.is_instance_of::<PyFloat>() {
        return v.extract::<f64>().ok().map(Value::F64);
    }
    if v.is_none() {
        return None;
    }
    // A sequence: homogeneous by its first item's type.
    let items: Vec<Value> = v.try_iter().ok()?.filter_map(|i| value(&i.ok()?)).collect();
    Some(match items.first() {
        None => Value::StrArray(Vec::new()),
        Some(Value::Bool(_)) => Value::BoolArray(items.into_iter().filter_map(|x| if let Value::Bool(b) = x { Some(b) } else { None }).collect()),
        Some(Value::Int(_)) => Value::IntArray(items.into_iter().filter_map(|x| if let Value::Int(i) = x { Some(i) } else { None }).collect()),
        Some(Value::F64(_)) => Value::F64Array(items.into_iter().filter_map(|x| if let Value::F64(f) = x { Some(f) } else { None }).collect()),
        Some(_) => Value::StrArray(items.into_iter().filter_map(|x| if let Value::Str(s) = x { Some(s.into_string()) } else { None }).collect()),
    })
}

/// A mapping of attributes (`None` → empty); invalid keys or values are skipped.
pub fn attributes(d: Option<&Bound<'_, PyAny>>) -> Attributes {
    let Some(d) = d.filter(|d| !d.is_none()) else { return Vec::new() };
    let mut out = Attributes::new();
    let items = match d.cast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => match d.call_method0("items") {
            Ok(items) => items,
            Err(_) => return out,
        },
    };
    let Ok(iter) = items.try_iter() else { return out };
    for item in iter.flatten() {
        let Ok((k, v)) = item.extract::<(String, Bound<'_, PyAny>)>() else { continue };
        if let Some(v) = value(&v) {
            out.push((k.into(), v));
        }
    }
    out
}
