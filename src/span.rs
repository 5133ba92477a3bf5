//! The span record: what a finished span is once it leaves the request thread. Plain Rust data,
//! no Python references, so everything after the queue runs without the GIL.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::limits::Limits;
use crate::context::{SpanContext, SpanId, TraceId};

pub type Key = Cow<'static, str>;

/// Attribute text and span names: up to 24 bytes inline (most values a request produces: methods,
/// paths, addresses, routes), static text borrowed, longer text on the heap. A record carries its
/// strings across threads (made on the request thread, freed on the export thread); each one
/// that needs no allocation is one malloc fewer on the request thread and one cross-thread free
/// fewer on the export thread (see `bench/` and the closing notes for the measurement).
pub type Text = compact_str::CompactString;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Text),
    Int(i64),
    F64(f64),
    Bool(bool),
    StrArray(Vec<String>),
    BoolArray(Vec<bool>),
    IntArray(Vec<i64>),
    F64Array(Vec<f64>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(Text::new(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Text::from(s))
    }
}
impl From<Text> for Value {
    fn from(s: Text) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

pub type Attributes = Vec<(Key, Value)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub enum Status {
    #[default]
    Unset,
    Ok,
    Error(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: Option<String>,
    pub flags: u8,
    pub attributes: Attributes,
    /// Attributes left out by the link attribute limit (OTLP's `dropped_attributes_count`).
    pub dropped_attributes: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: Key,
    pub time_ns: u64,
    pub attributes: Attributes,
    /// Attributes left out by the event attribute limit (OTLP's `dropped_attributes_count`).
    pub dropped_attributes: u32,
}

/// The instrumentation scope that produced a span (hooks use static names; the API bridge will
/// pass the app's own).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub name: Key,
    pub version: Option<Key>,
}

impl Scope {
    pub const fn fixed(name: &'static str) -> Self {
        Scope { name: Cow::Borrowed(name), version: Some(Cow::Borrowed(env!("CARGO_PKG_VERSION"))) }
    }
}

/// The kind of instrumentation that made a span: what its metrics and naming rules key on (a
/// gRPC SERVER span is not an HTTP request). API-bridge spans are `Other`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    Other,
    Http,
    Db,
    Messaging,
    Rpc,
}

/// The head sampler's decision, kept with the span for the tail decision after it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    Sampled,
    /// Dropped by a trace-id ratio: "keep errors and slow" may still export it.
    RatioDropped,
    /// Dropped by the parent's decision or `always_off`: stays dropped.
    Dropped,
}

impl Head {
    pub fn is_sampled(self) -> bool {
        self == Head::Sampled
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub parent_span_id: SpanId,
    pub parent_remote: bool,
    pub flags: u8,
    pub trace_state: Option<String>,
    pub name: Text,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub status: Status,
    pub scope: Scope,
    pub head: Head,
    /// Attributes, events and links left out by the span limits.
    pub dropped: Dropped,
    pub family: Family,
    /// A database hook's statement exactly as the application passed it. Never exported: the
    /// export thread turns it into the sanitised `db.query.text`, `db.query.summary`, the
    /// operation and collection names and the span name (`semconv::db::apply_query`) before any
    /// processor or exporter sees the record.
    pub raw_query: Option<Box<str>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub attributes: u32,
    pub events: u32,
    pub links: u32,
}

impl SpanRecord {
    /// A span started now, as a child of `parent` (or a root), with fresh ids where needed.
    pub fn start(name: impl Into<Text>, kind: SpanKind, scope: Scope, parent: Option<&SpanContext>, trace_id: TraceId, head: Head) -> Self {
        SpanRecord {
            trace_id,
            span_id: SpanId::random(),
            parent_span_id: parent.map_or(SpanId::INVALID, |p| p.span_id),
            parent_remote: parent.is_some_and(|p| p.remote),
            flags: head.is_sampled() as u8,
            trace_state: parent.and_then(|p| p.trace_state.clone()),
            name: name.into(),
            kind,
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::with_capacity(12),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Unset,
            scope,
            head,
            dropped: Dropped::default(),
            family: Family::Other,
            raw_query: None,
        }
    }

    pub fn context(&self) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.flags,
            trace_state: self.trace_state.clone(),
            remote: false,
        }
    }

    pub fn set(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    /// Add an attribute known not to be set yet (a fresh record): no lookup.
    #[inline]
    pub fn push(&mut self, key: &'static str, value: impl Into<Value>) {
        self.attributes.push((Cow::Borrowed(key), value.into()));
    }

    /// Set an attribute the application (or a configurable capture) gives, within the span
    /// limits, so the record stays bounded while the span is open: an existing key is replaced,
    /// a new key past the count limit is left out and counted, text is cut to the length limit.
    pub fn set_limited(&mut self, key: impl Into<Key>, value: impl Into<Value>, limits: &Limits) {
        let key = key.into();
        let mut value = value.into();
        limit_value(&mut value, limits.attribute_value_length);
        let room = self.attributes.len() < limits.attribute_count;
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None if room => self.attributes.push((key, value)),
            None => self.dropped.attributes = self.dropped.attributes.saturating_add(1),
        }
    }

    /// Add an event within the limits: past the event count limit it is left out and counted;
    /// its own attributes are held to the event attribute limits.
    pub fn add_event_limited(&mut self, mut event: Event, limits: &Limits) {
        if self.events.len() >= limits.event_count {
            self.dropped.events = self.dropped.events.saturating_add(1);
            return;
        }
        event.dropped_attributes += limit_attributes(&mut event.attributes, limits.event_attribute_count, limits.attribute_value_length);
        self.events.push(event);
    }

    /// Add a link within the limits (as `add_event_limited`).
    pub fn add_link_limited(&mut self, mut link: Link, limits: &Limits) {
        if self.links.len() >= limits.link_count {
            self.dropped.links = self.dropped.links.saturating_add(1);
            return;
        }
        link.dropped_attributes += limit_attributes(&mut link.attributes, limits.link_attribute_count, limits.attribute_value_length);
        self.links.push(link);
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }
}

/// Cut text to `max_chars` characters (never inside a character).
fn truncate_text(s: &mut (impl std::ops::Deref<Target = str> + Truncate), max_chars: usize) {
    if s.len() > max_chars {
        if let Some((i, _)) = s.char_indices().nth(max_chars) {
            Truncate::truncate(s, i);
        }
    }
}

/// `String` and `Text` alike.
trait Truncate {
    fn truncate(&mut self, at: usize);
}
impl Truncate for String {
    fn truncate(&mut self, at: usize) {
        String::truncate(self, at)
    }
}
impl Truncate for Text {
    fn truncate(&mut self, at: usize) {
        Text::truncate(self, at)
    }
}

/// Cut a string value (or each string of an array) to the attribute value length limit.
pub fn limit_value(v: &mut Value, max_chars: Option<usize>) {
    let Some(max) = max_chars else { return };
    match v {
        Value::Str(s) => truncate_text(s, max),
        Value::StrArray(items) => items.iter_mut().for_each(|s| truncate_text(s, max)),
        _ => {}
    }
}

/// Hold a list of attributes to a count (the earliest kept) and a value length; returns how
/// many were left out.
pub fn limit_attributes(attrs: &mut Attributes, count: usize, max_chars: Option<usize>) -> u32 {
    let dropped = attrs.len().saturating_sub(count) as u32;
    attrs.truncate(count);
    if max_chars.is_some() {
        attrs.iter_mut().for_each(|(_, v)| limit_value(v, max_chars));
    }
    dropped
}

/// Wall-clock time in nanoseconds since the Unix epoch.
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(count: usize, len: Option<usize>, events: usize, links: usize) -> Limits {
        Limits { attribute_value_length: len, attribute_count: count, event_count: events, link_count: links, event_attribute_count: 2, link_attribute_count: 1 }
    }

    fn span() -> SpanRecord {
        SpanRecord::start("s", SpanKind::Internal, Scope::fixed("t"), None, TraceId::random(), Head::Sampled)
    }

    #[test]
    fn attributes_past_the_count_are_dropped_and_counted_as_they_are_added() {
        let l = limits(2, Some(3), 128, 128);
        let mut s = span();
        s.set_limited("a", "abcdef", &l);
        s.set_limited("b", 1i64, &l);
        s.set_limited("c", 2i64, &l);
        s.set_limited("a", "xy", &l); // a kept key may change
        s.set_limited("d", Value::StrArray(vec!["long text".into()]), &l);
        assert_eq!(s.attributes, vec![("a".into(), Value::from("xy")), ("b".into(), Value::Int(1))]);
        assert_eq!(s.dropped.attributes, 2);
        s.set_limited("a", "abcdef", &l);
        assert_eq!(s.get("a"), Some(&Value::from("abc")), "text cut to the length limit");
    }

    #[test]
    fn events_and_links_past_their_counts_are_dropped_and_their_attributes_limited() {
        let l = limits(128, Some(2), 1, 1);
        let mut s = span();
        let attrs: Attributes = vec![("x".into(), "long".into()), ("y".into(), 1i64.into()), ("z".into(), 2i64.into())];
        s.add_event_limited(Event { name: "e1".into(), time_ns: 1, attributes: attrs.clone(), dropped_attributes: 0 }, &l);
        s.add_event_limited(Event { name: "e2".into(), time_ns: 2, attributes: attrs.clone(), dropped_attributes: 0 }, &l);
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].attributes, vec![("x".into(), Value::from("lo")), ("y".into(), Value::Int(1))]);
        assert_eq!(s.events[0].dropped_attributes, 1);
        let link = Link { trace_id: TraceId::random(), span_id: SpanId::random(), trace_state: None, flags: 1, attributes: attrs, dropped_attributes: 0 };
        s.add_link_limited(link.clone(), &l);
        s.add_link_limited(link, &l);
        assert_eq!((s.links.len(), s.links[0].attributes.len(), s.links[0].dropped_attributes), (1, 1, 2));
        assert_eq!(s.dropped, Dropped { attributes: 0, events: 1, links: 1 });
    }
}
