//! Head samplers from the specification (`OTEL_TRACES_SAMPLER`), decided when a span starts.

use crate::config::SamplerConfig;
use crate::context::{SpanContext, TraceId};
use crate::span::Head;

pub trait Sampler: Send + Sync {
    /// The head decision for a span with this parent (None: a root) in this trace.
    fn decide(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> Head;
}

/// One of the specification's samplers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpecSampler {
    AlwaysOn,
    AlwaysOff,
    /// Upper bound (exclusive) on the trace id's low 63 bits.
    TraceIdRatio(u64),
    /// Follows a parent's sampled flag; roots use the inner sampler.
    ParentBased(Root),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(u64),
}

fn threshold(ratio: f64) -> u64 {
    // Same comparison as the other OpenTelemetry SDKs: low 8 bytes >> 1 against ratio * 2^63.
    if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio.max(0.0) * (1u64 << 63) as f64) as u64
    }
}

fn ratio_sample(threshold: u64, trace_id: TraceId) -> Head {
    if threshold == u64::MAX || (trace_id.low_u64() >> 1) < threshold {
        Head::Sampled
    } else {
        Head::RatioDropped
    }
}

fn flag(sampled: bool) -> Head {
    if sampled {
        Head::Sampled
    } else {
        Head::Dropped
    }
}

impl SpecSampler {
    pub fn from_config(c: SamplerConfig) -> Self {
        match c {
            SamplerConfig::AlwaysOn => SpecSampler::AlwaysOn,
            SamplerConfig::AlwaysOff => SpecSampler::AlwaysOff,
            SamplerConfig::TraceIdRatio(r) => SpecSampler::TraceIdRatio(threshold(r)),
            SamplerConfig::ParentBasedAlwaysOn => SpecSampler::ParentBased(Root::AlwaysOn),
            SamplerConfig::ParentBasedAlwaysOff => SpecSampler::ParentBased(Root::AlwaysOff),
            SamplerConfig::ParentBasedTraceIdRatio(r) => SpecSampler::ParentBased(Root::TraceIdRatio(threshold(r))),
        }
    }
}

impl Sampler for SpecSampler {
    fn decide(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> Head {
        match *self {
            SpecSampler::AlwaysOn => Head::Sampled,
            SpecSampler::AlwaysOff => Head::Dropped,
            SpecSampler::TraceIdRatio(t) => ratio_sample(t, trace_id),
            SpecSampler::ParentBased(root) => match parent {
                Some(p) => flag(p.is_sampled()),
                None => match root {
                    Root::AlwaysOn => Head::Sampled,
                    Root::AlwaysOff => Head::Dropped,
                    Root::TraceIdRatio(t) => ratio_sample(t, trace_id),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SpanId;

    fn parent(sampled: bool) -> SpanContext {
        SpanContext { trace_id: TraceId::random(), span_id: SpanId::random(), flags: sampled as u8, trace_state: None, remote: true }
    }

    #[test]
    fn parent_based_follows_the_parent() {
        let s = SpecSampler::from_config(SamplerConfig::ParentBasedAlwaysOn);
        assert!(s.decide(None, TraceId::random()).is_sampled());
        assert!(s.decide(Some(&parent(true)), TraceId::random()).is_sampled());
        assert_eq!(s.decide(Some(&parent(false)), TraceId::random()), Head::Dropped);
        let s = SpecSampler::from_config(SamplerConfig::ParentBasedAlwaysOff);
        assert_eq!(s.decide(None, TraceId::random()), Head::Dropped);
        assert!(s.decide(Some(&parent(true)), TraceId::random()).is_sampled());
    }

    #[test]
    fn ratio_is_close_to_the_argument() {
        let s = SpecSampler::from_config(SamplerConfig::TraceIdRatio(0.1));
        let n = 20_000;
        let kept = (0..n).filter(|_| s.decide(None, TraceId::random()).is_sampled()).count();
        assert!((1600..2400).contains(&kept), "kept {kept} of {n}");
        // Ratio samplers ignore the parent.
        assert!(SpecSampler::from_config(SamplerConfig::TraceIdRatio(1.0)).decide(Some(&parent(false)), TraceId::random()).is_sampled());
        assert_eq!(SpecSampler::from_config(SamplerConfig::TraceIdRatio(0.0)).decide(None, TraceId::random()), Head::RatioDropped);
    }

    #[test]
    fn ratio_decision_is_deterministic_per_trace() {
        let s = SpecSampler::from_config(SamplerConfig::ParentBasedTraceIdRatio(0.5));
        let t = TraceId::random();
        let first = s.decide(None, t);
        assert!((0..10).all(|_| s.decide(None, t) == first));
    }
}
