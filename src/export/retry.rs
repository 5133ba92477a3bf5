//! The OTLP retry policy: retry only what the protocol calls transient (HTTP 429, 502, 503,
//! 504 and connection failures; the gRPC codes the spec lists), with exponential backoff and
//! jitter, honouring `Retry-After`, within a time budget, and never once the process is
//! shutting down (the final flush gets one attempt, so exit is not delayed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOPPING: AtomicBool = AtomicBool::new(false);

/// The process is exiting: no more retries.
pub fn stop() {
    STOPPING.store(true, Ordering::Relaxed);
}

const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

pub struct Retry {
    attempt: u32,
    backoff: Duration,
    deadline: Instant,
}

impl Retry {
    /// A policy for one export; `budget` bounds the total time spent waiting to retry.
    pub fn new(budget: Duration) -> Self {
        Retry { attempt: 0, backoff: FIRST_BACKOFF, deadline: Instant::now() + budget }
    }

    /// How long to wait before the next attempt after a transient failure, or `None` to give up.
    pub fn next(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.attempt += 1;
        if STOPPING.load(Ordering::Relaxed) || self.attempt >= MAX_ATTEMPTS {
            return None;
        }
        let wait = retry_after.unwrap_or_else(|| {
            // Full jitter on the upper half: backoff/2 .. backoff.
            let jitter = (crate::context::SpanId::random().0[0] as u64 * self.backoff.as_millis() as u64) / 512;
            self.backoff / 2 + Duration::from_millis(jitter)
        });
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        (Instant::now() + wait <= self.deadline).then_some(wait)
    }
}

/// `Retry-After` as delay-seconds (the HTTP-date form is rare from collectors; ignored).
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_within_the_budget() {
        let mut r = Retry::new(Duration::from_secs(60));
        let waits: Vec<Duration> = std::iter::from_fn(|| r.next(None)).collect();
        assert_eq!(waits.len(), (MAX_ATTEMPTS - 1) as usize);
        assert!(waits[0] >= Duration::from_millis(250) && waits[0] <= Duration::from_millis(500));
        assert!(waits[2] >= Duration::from_secs(1) && waits[2] <= Duration::from_secs(2));
        let mut r = Retry::new(Duration::from_secs(2));
        assert_eq!(r.next(Some(Duration::from_secs(1))), Some(Duration::from_secs(1)));
        assert_eq!(r.next(Some(Duration::from_secs(5))), None, "past the budget");
        assert_eq!(parse_retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
