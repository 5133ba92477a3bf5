//! The specification's attribute and span limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`,
//! `OTEL_EVENT_*`, `OTEL_LINK_*`). The span-specific variable wins over the general one.

use super::reader::Reader;

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Longest string attribute value, in characters; `None`: no limit (the spec's default).
    pub attribute_value_length: Option<usize>,
    pub attribute_count: usize,
    pub event_count: usize,
    pub link_count: usize,
    pub event_attribute_count: usize,
    pub link_attribute_count: usize,
}

impl Default for Limits {
    /// The specification's defaults: 128 of each, no length limit.
    fn default() -> Self {
        Limits { attribute_value_length: None, attribute_count: 128, event_count: 128, link_count: 128, event_attribute_count: 128, link_attribute_count: 128 }
    }
}

fn length(r: &mut Reader<'_>, keys: &[&str]) -> Option<usize> {
    let (k, v) = r.first(keys)?;
    match v.parse::<usize>() {
        Ok(n) => Some(n),
        Err(_) => {
            r.warn(&k, &v, "no limit");
            None
        }
    }
}

fn count(r: &mut Reader<'_>, keys: &[&str], default: usize) -> usize {
    match r.first(keys) {
        None => default,
        Some((k, v)) => v.parse::<usize>().unwrap_or_else(|_| {
            r.warn(&k, &v, default);
            default
        }),
    }
}

pub(super) fn limits(r: &mut Reader<'_>) -> Limits {
    Limits {
        attribute_value_length: length(r, &["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"]),
        attribute_count: count(r, &["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"], 128),
        event_count: count(r, &["OTEL_SPAN_EVENT_COUNT_LIMIT"], 128),
        link_count: count(r, &["OTEL_SPAN_LINK_COUNT_LIMIT"], 128),
        event_attribute_count: count(r, &["OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"], 128),
        link_attribute_count: count(r, &["OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"], 128),
    }
}
