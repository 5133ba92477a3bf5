//! Property-based fuzzing of the header parsers: arbitrary input never panics, and what the
//! parsers accept obeys the W3C rules (round trips, bounded output).

use proptest::prelude::*;

use super::ids::{SpanId, TraceId};
use super::propagation::*;
use super::SpanContext;

fn header_text() -> impl Strategy<Value = String> {
    // Printable ASCII with the delimiters that matter, plus arbitrary Unicode now and then.
    prop_oneof![
        proptest::string::string_regex("[ -~]{0,300}").unwrap(),
        proptest::string::string_regex("[0-9a-fA-F=,;@ \t-]{0,120}").unwrap(),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parsers_never_panic(s in header_text()) {
        let _ = parse_traceparent(&s);
        let _ = parse_tracestate(&s);
        let _ = parse_b3_single(&s);
        if let Some(b) = parse_baggage(&s) {
            prop_assert!(b.len() <= 8192);
        }
        let pairs = [(Header::TraceParent, s.as_str()), (Header::TraceState, s.as_str()), (Header::B3TraceId, s.as_str()), (Header::B3SpanId, s.as_str())];
        let _ = extract(&[Propagator::TraceContext, Propagator::B3Multi, Propagator::Baggage], |h| pairs.iter().find(|(k, _)| *k == h).map(|(_, v)| *v));
    }

    #[test]
    fn traceparent_round_trips(t in any::<[u8; 16]>(), s in any::<[u8; 8]>(), sampled in any::<bool>()) {
        let ctx = SpanContext { trace_id: TraceId(t), span_id: SpanId(s), flags: sampled as u8, trace_state: None, remote: true };
        let parsed = parse_traceparent(&format_traceparent(&ctx));
        if TraceId(t).is_valid() && SpanId(s).is_valid() {
            prop_assert_eq!(parsed, Some(ctx));
        } else {
            prop_assert_eq!(parsed, None);
        }
    }

    #[test]
    fn accepted_tracestate_is_valid_again(s in header_text()) {
        if let Some(ts) = parse_tracestate(&s) {
            let again = parse_tracestate(&ts);
            prop_assert_eq!(again.as_deref(), Some(ts.as_str()));
            prop_assert!(ts.split(',').count() <= 32);
        }
    }
}
