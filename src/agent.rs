//! The agent's process-wide state on the request path: what start-up decided once (enabled or
//! not, sampler, propagators). Hooks read it; only `start` writes it.

use once_cell::sync::OnceCell;

use crate::config::Config;
use crate::context::propagation::{Header, Propagator};
use crate::sampler::SpecSampler;
use crate::span::Head;

pub struct Agent {
    pub sampler: SpecSampler,
    pub propagators: Vec<Propagator>,
    /// The headers the configured propagators read, so hooks look up nothing else.
    pub inbound_headers: Vec<Header>,
    /// RED metrics are on: every span is recorded (sampled or not) and active requests counted.
    pub metrics: bool,
    /// "Keep errors and slow" is on: ratio-dropped roots are recorded for the tail decision.
    pub keep_errors_and_slow: bool,
    /// Header names (lower case) captured on server spans.
    pub capture_request_headers: Vec<String>,
    pub capture_response_headers: Vec<String>,
    /// The same for client spans, and the names whose captured values are `[REDACTED]`.
    pub capture_client_request_headers: Vec<String>,
    pub capture_client_response_headers: Vec<String>,
    pub sanitize_headers: Vec<String>,
    /// The specification's span limits, enforced as the app adds attributes, events and links.
    pub limits: crate::config::limits::Limits,
    /// `FERROTEL_TEST_FAULT` (tests only).
    pub test_fault: Option<crate::config::TestFault>,
}

static AGENT: OnceCell<Agent> = OnceCell::new();

impl Agent {
    pub fn new(config: &Config) -> Self {
        let mut inbound_headers = Vec::new();
        for p in &config.propagators {
            let hs: &[Header] = match p {
                Propagator::TraceContext => &[Header::TraceParent, Header::TraceState],
                Propagator::Baggage => &[Header::Baggage],
                Propagator::B3 => &[Header::B3],
                Propagator::B3Multi => &[Header::B3TraceId, Header::B3SpanId, Header::B3Sampled, Header::B3Flags],
            };
            inbound_headers.extend_from_slice(hs);
        }
        let p = &config.processing;
        Agent {
            sampler: SpecSampler::from_config(config.sampler),
            propagators: config.propagators.clone(),
            inbound_headers,
            metrics: !config.metrics.exporters.is_empty(),
            keep_errors_and_slow: p.keep_errors_and_slow,
            capture_request_headers: p.capture_request_headers.clone(),
            capture_response_headers: p.capture_response_headers.clone(),
            capture_client_request_headers: p.capture_client_request_headers.clone(),
            capture_client_response_headers: p.capture_client_response_headers.clone(),
            sanitize_headers: p.sanitize_headers.clone(),
            limits: config.limits.clone(),
            test_fault: config.test_fault,
        }
    }

    /// Whether a span with this head decision is recorded (filled and sent down the pipeline):
    /// sampled spans always; others when metrics need them or the tail decision may keep them.
    pub fn records(&self, head: Head) -> bool {
        match head {
            Head::Sampled => true,
            Head::RatioDropped => self.metrics || self.keep_errors_and_slow,
            Head::Dropped => self.metrics,
        }
    }
}

/// Set once; later calls are ignored.
pub fn install(agent: Agent) {
    let _ = AGENT.set(agent);
}

static OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stop instrumenting in this process (after repeated internal faults).
pub fn turn_off() {
    OFF.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The running agent, or None when it is not started, disabled, or turned off.
#[inline]
pub fn get() -> Option<&'static Agent> {
    if OFF.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    AGENT.get()
}
