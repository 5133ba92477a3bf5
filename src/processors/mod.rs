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
pub mod filter;
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
    /// Step 0, and steps 3 and 4: what the metrics read (kept apart for unsampled spans).
    db: db::Queries,
    slow: slow::Slow,
    /// Steps 1 and 2 (redaction, custom attributes), when configured.
    middle: Vec<Box<dyn SpanProcessor>>,
    limits: limits::SpanLimits,
    decide: Vec<Box<dyn SpanProcessor>>,
    keep: sampling::KeepErrorsAndSlow,
}

impl Chain {
    pub fn new(c: &ProcessingConfig, limits: &crate::config::limits::Limits) -> Self {
        let mut middle: Vec<Box<dyn SpanProcessor>> = Vec::new();
        if !c.redact_query_keys.is_empty() || !c.redact_headers.is_empty() {
            middle.push(Box::new(redact::Redact::new(c)));
        }
        if !c.span_attributes.is_empty() {
            middle.push(Box::new(attributes::CustomAttributes::new(c)));
        }
        let mut decide: Vec<Box<dyn SpanProcessor>> = Vec::new();
        let filter = filter::Filter::new(c);
        if !filter.is_empty() {
            decide.push(Box::new(filter));
        }
        decide.push(Box::new(sampling::KeepErrorsAndSlow::new(c)));
        Chain {
            db: db::Queries::new(c.db_query_max_len),
            slow: slow::Slow::new(c),
            middle,
            limits: limits::SpanLimits::new(limits),
            decide,
            keep: sampling::KeepErrorsAndSlow::new(c),
        }
    }

    /// Steps 0–4 and the limits: never drop.
    pub fn enrich(&self, span: &mut SpanRecord) {
        let _ = self.db.process(span);
        for p in &self.middle {
            let _ = p.process(span);
        }
        let _ = self.slow.process(span);
        let _ = errors::ErrorEnrichment.process(span);
        let _ = self.limits.process(span);
    }

    /// For a span the head sampler dropped: only the steps whose results the metrics read (the
    /// statement's summary and names, the slow flag, `error.type`). Running `enrich` afterwards
    /// (when the tail decision keeps it) repeats none of their work.
    pub fn enrich_for_metrics(&self, span: &mut SpanRecord) {
        let _ = self.db.process(span);
        let _ = self.slow.process(span);
        let _ = errors::ErrorEnrichment.process(span);
    }

    /// Whether keep-errors-and-slow exports this head-dropped span (after `enrich_for_metrics`).
    pub fn tail_keeps(&self, span: &SpanRecord) -> bool {
        self.keep.keeps(span)
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
