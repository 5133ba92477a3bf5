//! The specification's span limits, applied last among the enrichers so nothing exported
//! exceeds them: string values (also inside arrays) truncated to the length limit, attributes,
//! events and links beyond their counts dropped (the earliest kept).
//!
//! The limits are first enforced when the application adds attributes, events and links
//! (`SpanRecord::set_limited` and friends, from the span API, the OpenTelemetry API bridge and
//! header capture), so an open span's memory is bounded during the request. This processor is
//! the backstop for what the agent itself adds after that (the enrichers' attributes).

use super::{DropReason, SpanProcessor};
use crate::config::limits::Limits;
use crate::span::{limit_attributes, Attributes, SpanRecord};
#[cfg(test)]
use crate::span::Value;

pub struct SpanLimits {
    limits: Limits,
}

impl SpanLimits {
    pub fn new(limits: &Limits) -> Self {
        SpanLimits { limits: limits.clone() }
    }

}

fn apply(attrs: &mut Attributes, count: usize, len: Option<usize>) -> u32 {
    limit_attributes(attrs, count, len)
}

impl SpanProcessor for SpanLimits {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        let l = &self.limits;
        span.dropped.attributes += apply(&mut span.attributes, l.attribute_count, l.attribute_value_length);
        span.dropped.events += span.events.len().saturating_sub(l.event_count) as u32;
        span.events.truncate(l.event_count);
        for e in &mut span.events {
            e.dropped_attributes += apply(&mut e.attributes, l.event_attribute_count, l.attribute_value_length);
        }
        span.dropped.links += span.links.len().saturating_sub(l.link_count) as u32;
        span.links.truncate(l.link_count);
        for link in &mut span.links {
            link.dropped_attributes += apply(&mut link.attributes, l.link_attribute_count, l.attribute_value_length);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::processors::test_support::server_span;

    #[test]
    fn truncates_and_caps() {
        let cfg = Config::from_lookup(|k| match k {
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT" => Some("4".into()),
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" => Some("3".into()),
            _ => None,
        });
        let p = SpanLimits::new(&cfg.limits);
        let mut s = server_span("/x", 1);
        s.set("ua", "héllo wörld");
        s.set("many", Value::StrArray(vec!["abcdef".into()]));
        p.process(&mut s).unwrap();
        assert_eq!(s.attributes.len(), 3);
        assert_eq!(s.dropped.attributes, s.attributes.len() as u32 + 2 - 3);
        assert_eq!(s.get("ua"), None, "the fourth attribute is dropped");
        let cfg = Config::from_lookup(|k| (k == "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT").then(|| "4".into()));
        let mut s = server_span("/x", 1);
        s.set("ua", "héllo wörld");
        s.set("arr", Value::StrArray(vec!["abcdef".into()]));
        SpanLimits::new(&cfg.limits).process(&mut s).unwrap();
        assert_eq!(s.get("ua"), Some(&Value::Str("héll".into())));
        assert_eq!(s.get("arr"), Some(&Value::StrArray(vec!["abcd".into()])));
        assert_eq!(s.get("http.route"), Some(&Value::Str("/x".into())), "short values unchanged");
    }
}
