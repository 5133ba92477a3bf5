//! The span processing chain: runs on the export thread after a span ends, in this order:
//!
//! 0. `db`         — database statements: sanitised text, summary and name (always, first);
//! 1. `redact`     — mask sensitive query values and captured header values;
//! 2. `attributes` — add the configured custom attributes;
//! 3. `slow`       — flag spans over the (global or per-route) threshold;
//! 4. `errors`     — enrich error spans so they can be searched and alerted on;
//!    `limits`     — the specification's attribute/event/link limits, last, so nothing exported
//!    exceeds them;
//!    (the RED metrics observe every span here, before anything is dropped)
//! 5. `filter`     — drop noise (health checks, methods, attribute values) from the traces;
//! 6. `sampling`   — the tail half of "keep errors and slow": decide spans the head sampler
//!    left undecided.
//!
//! Each processor is small and stateless after construction; the chain is built from config.

mod attributes;
mod db;
pub mod errors;
mod filter;
mod limits;
pub mod glob;
mod redact;
mod sampling;
pub mod slow;

use crate::config::ProcessingConfig;
use crate::span::SpanRecord;

/// Why a span was not exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Filtered,
    SampledOut,
}

pub trait SpanProcessor: Send {
    /// Change the span in place, or say why it must not be exported.
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason>;
}

pub struct Chain {
    enrich: Vec<Box<dyn SpanProcessor>>,
    decide: Vec<Box<dyn SpanProcessor>>,
}

impl Chain {
    pub fn new(c: &ProcessingConfig, limits: &crate::config::limits::Limits) -> Self {
        let mut enrich: Vec<Box<dyn SpanProcessor>> = Vec::new();
        enrich.push(Box::new(db::Queries::new(c.db_query_max_len)));
        if !c.redact_query_keys.is_empty() || !c.redact_headers.is_empty() {
            enrich.push(Box::new(redact::Redact::new(c)));
        }
        if !c.span_attributes.is_empty() {
            enrich.push(Box::new(attributes::CustomAttributes::new(c)));
        }
        enrich.push(Box::new(slow::Slow::new(c)));
        enrich.push(Box::new(errors::ErrorEnrichment));
        enrich.push(Box::new(limits::SpanLimits::new(limits)));
        let mut decide: Vec<Box<dyn SpanProcessor>> = Vec::new();
        let filter = filter::Filter::new(c);
        if !filter.is_empty() {
            decide.push(Box::new(filter));
        }
        decide.push(Box::new(sampling::KeepErrorsAndSlow::new(c)));
        Chain { enrich, decide }
    }

    /// Steps 1–4: never drop.
    pub fn enrich(&self, span: &mut SpanRecord) {
        for p in &self.enrich {
            let _ = p.process(span);
        }
    }

    /// Steps 5–6: the export decision.
    pub fn decide(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        self.decide.iter().try_for_each(|p| p.process(span))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::config::Config;
    use crate::context::TraceId;
    use crate::semconv as sc;
    use crate::span::{Scope, SpanKind, SpanRecord};

    pub fn config(vars: &[(&str, &str)]) -> crate::config::ProcessingConfig {
        Config::from_pairs(vars).processing
    }

    /// A finished, sampled server span for `route` that took `ms` milliseconds.
    pub fn server_span(route: &str, ms: u64) -> SpanRecord {
        let mut s = SpanRecord::start(String::new(), SpanKind::Server, Scope::fixed("t"), None, TraceId::random(), crate::span::Head::Sampled);
        s.family = crate::span::Family::Http;
        s.set(sc::HTTP_REQUEST_METHOD, "GET");
        s.set(sc::HTTP_ROUTE, route);
        s.set(sc::URL_PATH, route);
        s.end_ns = s.start_ns + ms * 1_000_000;
        s
    }
}
