//! The OTLP retry policy: retry only what the protocol calls transient (HTTP 429, 502, 503,
//! 504 and connection failures; the gRPC codes the spec lists, RESOURCE_EXHAUSTED only with a
//! `RetryInfo`), with exponential backoff and jitter, honouring `Retry-After` (seconds or an HTTP
//! date) / `RetryInfo`, and never once the process is shutting down (the final flush gets one
//! attempt, so exit is not delayed). TLS failures are not transient (see `tls::failure`).
//!
//! One deadline bounds an export and all its retries: the signal's `OTEL_EXPORTER_OTLP_*TIMEOUT`,
//! capped by its processor's export timeout (`OTEL_BSP_EXPORT_TIMEOUT`,
//! `OTEL_METRIC_EXPORT_TIMEOUT`, `OTEL_BLRP_EXPORT_TIMEOUT`; see `config::otel`). Each attempt
//! gets what is left of it, and a wait that would end past it is not taken.

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
/// The least time an attempt after a wait must have left.
const MIN_ATTEMPT: Duration = Duration::from_millis(10);

pub struct Retry {
    attempt: u32,
    backoff: Duration,
    deadline: Instant,
}

impl Retry {
    /// A policy for one export; `budget` bounds the export: every attempt and every wait.
    pub fn new(budget: Duration) -> Self {
        Retry { attempt: 0, backoff: FIRST_BACKOFF, deadline: Instant::now() + budget }
    }

    /// What is left of the budget for the next attempt (at least 1 ms: a transport treats zero
    /// as "no timeout").
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
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
        // A wait that leaves no time for the attempt after it is not worth taking.
        (Instant::now() + wait + MIN_ATTEMPT <= self.deadline).then_some(wait)
    }
}

/// `Retry-After` (RFC 9110 section 10.2.3): delay-seconds, or an HTTP date (the delay is then
/// the time until it; a date in the past means "now"). `None` when it is neither.
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    let v = v?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(v)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(at.saturating_sub(now).max(0) as u64))
}

/// An HTTP date as seconds since the Unix epoch, in any of the three forms RFC 9110 (section
/// 5.6.7) says a recipient must accept:
/// - IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` (the one senders use),
/// - obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` (a two-digit year more than 50 years in
///   the future is taken as the past century, as the RFC says),
/// - obsolete asctime `Sun Nov  6 08:49:37 1994`.
pub fn http_date(v: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = |m: &str| MONTHS.iter().position(|x| *x == m).map(|i| i as u32 + 1);
    let num = |s: &str| -> Option<i64> { (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten() };
    let (day, mon, year, time) = if let Some((_, rest)) = v.split_once(", ") {
        let parts: Vec<&str> = rest.split(' ').collect();
        match parts.as_slice() {
            // IMF-fixdate: day, "06 Nov 1994 08:49:37 GMT"
            [d, m, y, t, "GMT"] if d.len() == 2 && y.len() == 4 => (num(d)?, month(m)?, num(y)?, *t),
            // RFC 850: weekday, "06-Nov-94 08:49:37 GMT"
            [date, t, "GMT"] => {
                let dm: Vec<&str> = date.split('-').collect();
                let [d, m, y] = dm.as_slice() else { return None };
                if d.len() != 2 || y.len() != 2 {
                    return None;
                }
                let this_year = 1970 + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64 / 31_556_952;
                let mut year = 2000 + num(y)?;
                if year > this_year + 50 {
                    year -= 100;
                }
                (num(d)?, month(m)?, year, *t)
            }
            _ => return None,
        }
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994" (the day padded with a space)
        let parts: Vec<&str> = v.split_whitespace().collect();
        let [_, m, d, t, y] = parts.as_slice() else { return None };
        if y.len() != 4 || d.len() > 2 {
            return None;
        }
        (num(d)?, month(m)?, num(y)?, *t)
    };
    let hms: Vec<&str> = time.split(':').collect();
    let [h, mi, s] = hms.as_slice() else { return None };
    if h.len() != 2 || mi.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, mi, s) = (num(h)?, num(mi)?, num(s)?);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, mon, day as u32) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO), "a date in the past: now");
        assert_eq!(parse_retry_after(Some("soon")), None);
    }

    #[test]
    fn a_wait_past_the_deadline_is_not_taken() {
        let mut r = Retry::new(Duration::from_millis(1500));
        assert_eq!(r.next(Some(Duration::from_millis(1495))), None, "no time left for the attempt after it");
        assert!(r.remaining() <= Duration::from_millis(1500));
    }

    #[test]
    fn reads_the_three_http_date_forms() {
        // RFC 9110's example date, 784111777 seconds after the epoch.
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Tue, 29 Feb 2028 23:59:59 GMT"), Some(1_835_481_599));
        for bad in ["Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 8:49:37 GMT", "", "3.5"] {
            assert_eq!(http_date(bad), None, "{bad:?}");
        }
        // A date an hour ahead is a wait of (about) an hour.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3600;
        let (days, secs) = (now.div_euclid(86_400), now.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let date = format!("Mon, {d:02} {} {y} {:02}:{:02}:{:02} GMT", MONTHS[m as usize - 1], secs / 3600, secs / 60 % 60, secs % 60);
        let wait = parse_retry_after(Some(&date)).unwrap();
        assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600), "{date}: {wait:?}");
    }

    fn civil_from_days(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + i64::from(m <= 2), m, d)
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
