//! Custom attributes from config (`FERROTEL_SPAN_ATTRIBUTES`) added to every span; a value the
//! instrumentation already set is kept.

use super::{DropReason, SpanProcessor};
use crate::config::ProcessingConfig;
use crate::span::{SpanRecord, Value};

pub struct CustomAttributes {
    attributes: Vec<(String, String)>,
}

impl CustomAttributes {
    pub fn new(c: &ProcessingConfig) -> Self {
        CustomAttributes { attributes: c.span_attributes.clone() }
    }
}

impl SpanProcessor for CustomAttributes {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        for (k, v) in &self.attributes {
            if span.get(k).is_none() {
                span.attributes.push((k.clone().into(), Value::Str(v.as_str().into())));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::{config, server_span};

    #[test]
    fn adds_without_overwriting() {
        let p = CustomAttributes::new(&config(&[("FERROTEL_SPAN_ATTRIBUTES", "team=payments,http.route=/evil")]));
        let mut s = server_span("/x", 1);
        p.process(&mut s).unwrap();
        assert_eq!(s.get("team"), Some(&Value::Str("payments".into())));
        assert_eq!(s.get("http.route"), Some(&Value::Str("/x".into())));
    }
}
