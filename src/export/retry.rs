//! The OTLP retry policy: retry only what the protocol calls transient (HTTP 429, 502, 503,
//! 504 and connection failures; the gRPC codes the spec lists, RESOURCE_EXHAUSTED only with a
//! `RetryInfo`), with exponential backoff and jitter, honouring `Retry-After` / `RetryInfo`,
//! within a time budget, and never once the process is shutting down (the final flush gets one
//! attempt, so exit is not delayed). TLS failures are not transient (see `tls::failure`).

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

/// OTLP/gRPC's throttling signal: the `retry_delay` of a `google.rpc.RetryInfo` in a status's
/// details (`grpc-status-details-bin`, a `google.rpc.Status`). `None` without one.
pub fn grpc_retry_delay(details: &[u8]) -> Option<Duration> {
    use prost::Message;
    let status = rpc::Status::decode(details).ok()?;
    let info = status.details.iter().find(|any| any.type_url.ends_with("/google.rpc.RetryInfo"))?;
    let delay = rpc::RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    (delay.seconds >= 0 && delay.nanos >= 0).then(|| Duration::new(delay.seconds as u64, delay.nanos as u32))
}

/// The few google.rpc / google.protobuf messages `grpc_retry_delay` reads (field numbers from
/// googleapis' status.proto and error_details.proto).
pub(crate) mod rpc {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        pub retry_delay: Option<ProtoDuration>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProtoDuration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
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

    #[test]
    fn reads_grpc_retry_info() {
        use prost::Message;
        let delay = rpc::ProtoDuration { seconds: 2, nanos: 500_000_000 };
        let info = rpc::RetryInfo { retry_delay: Some(delay) }.encode_to_vec();
        let other = rpc::Any { type_url: "type.googleapis.com/google.rpc.DebugInfo".into(), value: vec![1, 2] };
        let any = rpc::Any { type_url: "type.googleapis.com/google.rpc.RetryInfo".into(), value: info };
        let status = rpc::Status { code: 8, message: "slow down".into(), details: vec![other.clone(), any] }.encode_to_vec();
        assert_eq!(grpc_retry_delay(&status), Some(Duration::from_millis(2500)));
        let without = rpc::Status { code: 8, message: String::new(), details: vec![other] }.encode_to_vec();
        assert_eq!(grpc_retry_delay(&without), None);
        assert_eq!(grpc_retry_delay(b""), None);
        assert_eq!(grpc_retry_delay(b"\xff\xff garbage"), None);
    }
}
