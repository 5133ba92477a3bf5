//! The agent's process-wide state on the request path: what start-up decided once (enabled or
//! not, sampler, propagators). Hooks read it; only `start` writes it.

use once_cell::sync::OnceCell;

use crate::config::Config;
use crate::context::propagation::{Header, Propagator};
use crate::sampler::SpecSampler;

pub struct Agent {
    pub sampler: SpecSampler,
    pub propagators: Vec<Propagator>,
    /// The headers the configured propagators read, so hooks look up nothing else.
    pub inbound_headers: Vec<Header>,
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
        Agent { sampler: SpecSampler::from_config(config.sampler), propagators: config.propagators.clone(), inbound_headers }
    }
}

/// Set once; later calls are ignored.
pub fn install(agent: Agent) {
    let _ = AGENT.set(agent);
}

/// The running agent, or None when it is not started or disabled.
#[inline]
pub fn get() -> Option<&'static Agent> {
    AGENT.get()
}
