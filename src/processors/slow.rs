//! Slow-operation detection: a span at least as long as its threshold gets `ferrotel.slow=true`
//! and `ferrotel.slow_threshold_ms` (both defined in `semconv/ferrotel.yaml`). The threshold is
//! the first `FERROTEL_SLOW_ROUTES` glob that matches the span's route (or its path when it has
//! none), else `FERROTEL_SLOW_THRESHOLD_MS`. Database spans have a threshold of their own,
//! `FERROTEL_DB_SLOW_THRESHOLD_MS`.

use std::time::Duration;

use super::{glob, DropReason, SpanProcessor};
use crate::config::ProcessingConfig;
use crate::semconv as sc;
use crate::span::{Family, SpanRecord, Value};

pub const SLOW: &str = "ferrotel.slow";
/// Not `ferrotel.slow.threshold_ms`: `ferrotel.slow` is an attribute, so it cannot also be a namespace.
pub const SLOW_THRESHOLD_MS: &str = "ferrotel.slow_threshold_ms";

pub struct Slow {
    global: Duration,
    routes: Vec<(String, Duration)>,
    db: Duration,
}

impl Slow {
    pub fn new(c: &ProcessingConfig) -> Self {
        Slow { global: c.slow_threshold, routes: c.slow_routes.clone(), db: c.db_slow_threshold }
    }

    pub fn threshold(&self, span: &SpanRecord) -> Duration {
        if span.family == Family::Db {
            return self.db;
        }
        let target = match span.get(sc::HTTP_ROUTE).or_else(|| span.get(sc::URL_PATH)) {
            Some(Value::Str(s)) => s.as_str(),
            _ => return self.global,
        };
        self.routes.iter().find(|(g, _)| glob::matches(g, target)).map_or(self.global, |(_, d)| *d)
    }
}

impl SpanProcessor for Slow {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        let threshold = self.threshold(span);
        if span.end_ns.saturating_sub(span.start_ns) >= threshold.as_nanos() as u64 {
            span.set(SLOW, true);
            span.set(SLOW_THRESHOLD_MS, threshold.as_millis() as i64);
        }
        Ok(())
    }
}

/// Whether an enriched span was flagged slow.
pub fn is_slow(span: &SpanRecord) -> bool {
    matches!(span.get(SLOW), Some(Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::{config, server_span};

    #[test]
    fn global_and_per_route_thresholds() {
        let p = Slow::new(&config(&[("FERROTEL_SLOW_ROUTES", "/reports/*=2000,/fast=10")]));
        let mut s = server_span("/slow", 150);
        p.process(&mut s).unwrap();
        assert!(is_slow(&s));
        assert_eq!(s.get(SLOW_THRESHOLD_MS), Some(&Value::Int(100)));
        let mut s = server_span("/", 5);
        p.process(&mut s).unwrap();
        assert!(!is_slow(&s) && s.get(SLOW_THRESHOLD_MS).is_none());
        let mut s = server_span("/reports/<id>", 1500);
        p.process(&mut s).unwrap();
        assert!(!is_slow(&s), "the route's own threshold is higher");
        let mut s = server_span("/fast", 20);
        p.process(&mut s).unwrap();
        assert_eq!(s.get(SLOW_THRESHOLD_MS), Some(&Value::Int(10)));
    }
}
