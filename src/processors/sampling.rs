//! "Keep errors and slow requests" (`FERROTEL_KEEP_ERRORS_AND_SLOW`, on by default).
//!
//! What it guarantees: when the head sampler drops a *local root* span (no parent, or a parent in
//! another process) because of its trace-id ratio — `traceidratio`, or the root branch of
//! `parentbased_traceidratio` — the span is still recorded, and when it ends it is exported if
//! its status is ERROR or it was flagged slow; otherwise it is dropped (counted as sampled out).
//! Spans dropped because their parent was not sampled, or by `always_off`, stay dropped: that
//! decision was made elsewhere (or explicitly). The trace context propagated downstream carries
//! the head decision (not sampled), so downstream services follow the ratio; a kept span is
//! exported with its sampled flag set.

use super::{errors, slow, DropReason, SpanProcessor};
use crate::config::ProcessingConfig;
use crate::span::{Head, SpanRecord};

pub struct KeepErrorsAndSlow {
    enabled: bool,
}

impl KeepErrorsAndSlow {
    pub fn new(c: &ProcessingConfig) -> Self {
        KeepErrorsAndSlow { enabled: c.keep_errors_and_slow }
    }
}

impl KeepErrorsAndSlow {
    /// Whether a span the head sampler dropped is exported after all (its status and slow flag
    /// already decided).
    pub fn keeps(&self, span: &SpanRecord) -> bool {
        span.head == Head::RatioDropped && self.enabled && (errors::is_error(span) || slow::is_slow(span))
    }
}

impl SpanProcessor for KeepErrorsAndSlow {
    fn process(&self, span: &mut SpanRecord) -> Result<(), DropReason> {
        match span.head {
            Head::Sampled => Ok(()),
            _ if self.keeps(span) => {
                span.flags |= 0x01;
                Ok(())
            }
            _ => Err(DropReason::SampledOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::{config, server_span};
    use crate::span::Status;

    #[test]
    fn keeps_only_ratio_dropped_errors_and_slow() {
        let p = KeepErrorsAndSlow::new(&config(&[]));
        let mut s = server_span("/", 1);
        assert_eq!(p.process(&mut s), Ok(()), "head-sampled spans pass");
        s.head = Head::RatioDropped;
        s.flags = 0;
        assert_eq!(p.process(&mut s), Err(DropReason::SampledOut));
        s.status = Status::Error(String::new());
        assert_eq!(p.process(&mut s), Ok(()));
        assert!(s.is_sampled());
        let mut s = server_span("/", 1);
        s.head = Head::Dropped;
        s.status = Status::Error(String::new());
        assert_eq!(p.process(&mut s), Err(DropReason::SampledOut), "a parent's decision stands");
        let off = KeepErrorsAndSlow::new(&config(&[("FERROTEL_KEEP_ERRORS_AND_SLOW", "false")]));
        let mut s = server_span("/", 1);
        s.head = Head::RatioDropped;
        s.status = Status::Error(String::new());
        assert_eq!(off.process(&mut s), Err(DropReason::SampledOut));
    }
}
