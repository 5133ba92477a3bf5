//! Filtering: spans whose route (or path, when unrouted) matches `FERROTEL_FILTER_ROUTES`, whose
//! method is in `FERROTEL_FILTER_METHODS`, or whose attribute equals (glob) a
//! `FERROTEL_FILTER_ATTRIBUTES` value are not exported. Metrics still count them.

use std::borrow::Cow;

use super::{glob, DropReason, SpanProcessor};
use crate::config::ProcessingConfig;
use crate::semconv as sc;
use crate::span::{SpanRecord, Value};

pub struct Filter {
    routes: Vec<String>,
    methods: Vec<String>,
    attributes: Vec<(String, String)>,
}

impl Filter {
    pub fn new(c: &ProcessingConfig) -> Self {
        Filter { routes: c.filter_routes.clone(), methods: c.filter_methods.clone(), attributes: c.filter_attributes.clone() }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.methods.is_empty() && self.attributes.is_empty()
    }

    /// The verdict for a server span known only by its route and method (a head-dropped request
    /// that has no record, `hooks::span::Lite`): `Some(true)` filtered, `Some(false)` not, `None`
    /// when it takes more (no route while route globs are set: its path decides; attribute
    /// filters).
    pub fn filters_route(&self, route: Option<&str>, method: &str) -> Option<bool> {
        if !self.attributes.is_empty() || (route.is_none() && !self.routes.is_empty()) {
            return None;
        }
        let route_hit = route.is_some_and(|r| self.routes.iter().any(|g| glob::matches(g, r)));
        Some(route_hit || self.methods.iter().any(|m| m == method))
    }
}

/// The attribute as text to match a glob against (borrowed for strings, the common case).
fn text(v: Option<&Value>) -> Option<Cow<'_, str>> {
    match v? {
        Value::Str(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Int(i) => Some(Cow::Owned(i.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        Value::F64(f) => Some(Cow::Owned(f.to_string())),
        Value::StrArray(a) => Some(Cow::Owned(a.join(","))),
        other => Some(Cow::Owned(format!("{other:?}"))),
    }
}

impl SpanProcessor for Filter {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        let targets = [text(span.get(sc::HTTP_ROUTE)), text(span.get(sc::URL_PATH))];
        let route_hit = targets.iter().flatten().any(|t| self.routes.iter().any(|g| glob::matches(g, t)));
        let method_hit = text(span.get(sc::HTTP_REQUEST_METHOD)).is_some_and(|m| self.methods.iter().any(|x| *x == m));
        let attr_hit = self.attributes.iter().any(|(k, g)| text(span.get(k)).is_some_and(|v| glob::matches(g, &v)));
        if route_hit || method_hit || attr_hit {
            Err(DropReason::Filtered)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::{config, server_span};

    #[test]
    fn drops_health_checks_methods_and_attribute_matches() {
        let f = Filter::new(&config(&[("FERROTEL_FILTER_METHODS", "OPTIONS"), ("FERROTEL_FILTER_ATTRIBUTES", "user_agent.original=kube-probe*")]));
        assert_eq!(f.process(&mut server_span("/healthz", 1)), Err(DropReason::Filtered));
        assert_eq!(f.process(&mut server_span("/users/<int:uid>", 1)), Ok(()));
        let mut s = server_span("/x", 1);
        s.set(sc::HTTP_REQUEST_METHOD, "OPTIONS");
        assert_eq!(f.process(&mut s), Err(DropReason::Filtered));
        let mut s = server_span("/x", 1);
        s.set("user_agent.original", "kube-probe/1.29");
        assert_eq!(f.process(&mut s), Err(DropReason::Filtered));
        assert!(Filter::new(&config(&[("FERROTEL_FILTER_ROUTES", "none")])).is_empty());
    }
}
