//! Trace context: identifiers, the span context that links spans, and header propagation.

pub mod ids;
pub mod propagation;
#[cfg(test)]
mod fuzz;

pub use ids::{SpanId, TraceId};

/// The identity of a span as other spans and services see it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// W3C trace flags; bit 0 is "sampled".
    pub flags: u8,
    pub trace_state: Option<String>,
    /// Extracted from a carrier (another process) rather than created here.
    pub remote: bool,
}

impl SpanContext {
    #[inline]
    pub fn is_sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }
}
