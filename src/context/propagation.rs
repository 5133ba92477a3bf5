//! Context propagation over HTTP headers: W3C `traceparent`/`tracestate`, W3C `baggage`, B3 single
//! and multi header. Extraction never fails loudly: a malformed header is ignored (a new trace
//! starts), as the W3C spec asks.

use super::ids::{hex_val, SpanId, TraceId};
use super::SpanContext;

/// The propagators `OTEL_PROPAGATORS` can name that ferrotel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagator {
    TraceContext,
    Baggage,
    B3,
    B3Multi,
}

/// Headers a propagator may read or write, by their lower-case HTTP name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    TraceParent,
    TraceState,
    Baggage,
    B3,
    B3TraceId,
    B3SpanId,
    B3Sampled,
    B3Flags,
}

impl Header {
    pub const fn name(self) -> &'static str {
        match self {
            Header::TraceParent => "traceparent",
            Header::TraceState => "tracestate",
            Header::Baggage => "baggage",
            Header::B3 => "b3",
            Header::B3TraceId => "x-b3-traceid",
            Header::B3SpanId => "x-b3-spanid",
            Header::B3Sampled => "x-b3-sampled",
            Header::B3Flags => "x-b3-flags",
        }
    }
    /// The CGI/WSGI environ key the header arrives under.
    pub const fn cgi_name(self) -> &'static str {
        match self {
            Header::TraceParent => "HTTP_TRACEPARENT",
            Header::TraceState => "HTTP_TRACESTATE",
            Header::Baggage => "HTTP_BAGGAGE",
            Header::B3 => "HTTP_B3",
            Header::B3TraceId => "HTTP_X_B3_TRACEID",
            Header::B3SpanId => "HTTP_X_B3_SPANID",
            Header::B3Sampled => "HTTP_X_B3_SAMPLED",
            Header::B3Flags => "HTTP_X_B3_FLAGS",
        }
    }
    pub const ALL: [Header; 8] = [
        Header::TraceParent,
        Header::TraceState,
        Header::Baggage,
        Header::B3,
        Header::B3TraceId,
        Header::B3SpanId,
        Header::B3Sampled,
        Header::B3Flags,
    ];
}

/// What extraction found: the remote parent, if any, and the incoming baggage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extracted {
    pub parent: Option<SpanContext>,
    pub baggage: Option<String>,
}

/// Run the configured propagators in order over a header getter; a later propagator that finds a
/// valid context overrides an earlier one (the spec's composite propagator).
pub fn extract<'a>(propagators: &[Propagator], mut get: impl FnMut(Header) -> Option<&'a str>) -> Extracted {
    let mut out = Extracted::default();
    for p in propagators {
        match p {
            Propagator::TraceContext => {
                if let Some(ctx) = get(Header::TraceParent).and_then(parse_traceparent) {
                    let state = get(Header::TraceState).and_then(parse_tracestate);
                    out.parent = Some(SpanContext { trace_state: state, ..ctx });
                }
            }
            Propagator::B3 => {
                if let Some(ctx) = get(Header::B3).and_then(parse_b3_single) {
                    out.parent = Some(ctx);
                }
            }
            Propagator::B3Multi => {
                if let Some(ctx) = parse_b3_multi(&mut get) {
                    out.parent = Some(ctx);
                }
            }
            Propagator::Baggage => {
                if let Some(b) = get(Header::Baggage).and_then(parse_baggage) {
                    out.baggage = Some(b);
                }
            }
        }
    }
    out
}

/// Headers to write for an outgoing request whose parent is `ctx`.
pub fn inject(propagators: &[Propagator], ctx: &SpanContext, baggage: Option<&str>) -> Vec<(Header, String)> {
    let mut out = Vec::with_capacity(3);
    let sampled = ctx.is_sampled();
    for p in propagators {
        match p {
            Propagator::TraceContext => {
                out.push((Header::TraceParent, format_traceparent(ctx)));
                if let Some(ts) = ctx.trace_state.as_deref().filter(|s| !s.is_empty()) {
                    out.push((Header::TraceState, ts.to_string()));
                }
            }
            Propagator::B3 => out.push((
                Header::B3,
                format!("{}-{}-{}", ctx.trace_id, ctx.span_id, if sampled { "1" } else { "0" }),
            )),
            Propagator::B3Multi => {
                out.push((Header::B3TraceId, ctx.trace_id.to_string()));
                out.push((Header::B3SpanId, ctx.span_id.to_string()));
                out.push((Header::B3Sampled, (if sampled { "1" } else { "0" }).to_string()));
            }
            Propagator::Baggage => {
                if let Some(b) = baggage.filter(|b| !b.is_empty()) {
                    out.push((Header::Baggage, b.to_string()));
                }
            }
        }
    }
    out
}

/// `00-{trace-id}-{parent-id}-{flags}`, written straight into one allocation (it is built for
/// every outgoing request; `format!` cost several times more): a fixed-size array filled by index,
/// then one copy.
pub fn format_traceparent(ctx: &SpanContext) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for (i, b) in ctx.trace_id.0.iter().enumerate() {
        out[3 + 2 * i] = DIGITS[(b >> 4) as usize];
        out[4 + 2 * i] = DIGITS[(b & 0x0f) as usize];
    }
    for (i, b) in ctx.span_id.0.iter().enumerate() {
        out[36 + 2 * i] = DIGITS[(b >> 4) as usize];
        out[37 + 2 * i] = DIGITS[(b & 0x0f) as usize];
    }
    if ctx.flags & 0x01 == 1 {
        out[54] = b'1';
    }
    // Only ASCII went in.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// W3C trace-context level 1 `traceparent`, with its forward-compatibility rules for future
/// versions (longer headers accepted when the extra part is separated by '-').
pub fn parse_traceparent(raw: &str) -> Option<SpanContext> {
    let s = raw.trim_matches(|c| c == ' ' || c == '\t');
    let b = s.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = (hex_val(b[0])? << 4) | hex_val(b[1])?;
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = TraceId::from_hex(&s[3..35]).filter(TraceId::is_valid)?;
    let span_id = SpanId::from_hex(&s[36..52]).filter(SpanId::is_valid)?;
    let flags = (hex_val(b[53])? << 4) | hex_val(b[54])?;
    Some(SpanContext { trace_id, span_id, flags: flags & 0x01, trace_state: None, remote: true })
}

const MAX_TRACESTATE_MEMBERS: usize = 32;

/// W3C `tracestate`: the list is kept as received (empty members and surrounding whitespace
/// dropped) when every member is valid; any invalid member or more than 32 members discards the
/// whole header. A key seen again is dropped after its first (leftmost, most recent) occurrence:
/// the specification lets vendors discard duplicates, and an outgoing list must not repeat a key.
pub fn parse_tracestate(raw: &str) -> Option<String> {
    let mut keys: Vec<&str> = Vec::new();
    let mut members: Vec<&str> = Vec::new();
    let mut count = 0;
    for member in raw.split(',') {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_tracestate_key(key) || !valid_tracestate_value(value) {
            return None;
        }
        count += 1;
        if !keys.contains(&key) {
            keys.push(key);
            members.push(member);
        }
    }
    if count > MAX_TRACESTATE_MEMBERS {
        return None;
    }
    (!members.is_empty()).then(|| members.join(","))
}

fn key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `key = ( lcalpha / DIGIT ) 0*255( keychar )`, keychar including `@` (the grammar since the
/// specification dropped the separate tenant/system limits of multi-tenant keys).
fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty() && b.len() <= 256 && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) && b.iter().all(|&c| key_char(c))
}

fn valid_tracestate_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && *b.last().unwrap() != b' '
}

/// B3 single header: `{trace}-{span}[-{sampling}[-{parent}]]`; a bare sampling flag carries no
/// context. An absent sampling state (a deferred decision) is taken as sampled.
pub fn parse_b3_single(raw: &str) -> Option<SpanContext> {
    let mut parts = raw.trim().split('-');
    let trace_id = TraceId::from_hex_64_or_128(parts.next()?).filter(TraceId::is_valid)?;
    let span_id = SpanId::from_hex(parts.next()?).filter(SpanId::is_valid)?;
    let flags = match parts.next() {
        None => 1,
        Some("1") | Some("d") => 1,
        Some("0") => 0,
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        SpanId::from_hex(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(SpanContext { trace_id, span_id, flags, trace_state: None, remote: true })
}

fn parse_b3_multi<'a>(get: &mut impl FnMut(Header) -> Option<&'a str>) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex_64_or_128(get(Header::B3TraceId)?.trim()).filter(TraceId::is_valid)?;
    let span_id = SpanId::from_hex(get(Header::B3SpanId)?.trim()).filter(SpanId::is_valid)?;
    let debug = get(Header::B3Flags).map(str::trim) == Some("1");
    let flags = match get(Header::B3Sampled).map(str::trim) {
        _ if debug => 1,
        None | Some("1") | Some("true") => 1,
        Some("0") | Some("false") => 0,
        Some(_) => return None,
    };
    Some(SpanContext { trace_id, span_id, flags, trace_state: None, remote: true })
}

const MAX_BAGGAGE_BYTES: usize = 8192;
const MAX_BAGGAGE_MEMBERS: usize = 180;

/// W3C baggage: kept as a normalised list of valid members (`key=value[;properties]`); invalid
/// members are dropped, and so is everything past the spec's size limits.
pub fn parse_baggage(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut count = 0;
    for member in raw.split(',') {
        let member = member.trim();
        let Some((kv, props)) = member.split_once(';').map(|(a, b)| (a, Some(b))).or(Some((member, None))) else {
            continue;
        };
        let Some((k, v)) = kv.split_once('=') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.bytes().all(is_token_char) || !v.bytes().all(is_baggage_value_char) {
            continue;
        }
        let piece_len = k.len() + 1 + v.len() + props.map_or(0, |p| p.len() + 1);
        if count == MAX_BAGGAGE_MEMBERS || out.len() + piece_len + 1 > MAX_BAGGAGE_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        if let Some(p) = props {
            out.push(';');
            out.push_str(p.trim());
        }
        count += 1;
    }
    (!out.is_empty()).then_some(out)
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_baggage_value_char(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers<'a>(pairs: &'a [(Header, &'a str)]) -> impl FnMut(Header) -> Option<&'a str> + 'a {
        move |h| pairs.iter().find(|(k, _)| *k == h).map(|(_, v)| *v)
    }

    #[test]
    fn valid_traceparent() {
        let ctx = parse_traceparent(TP).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.to_string(), "00f067aa0ba902b7");
        assert!(ctx.is_sampled() && ctx.remote);
        assert!(!parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().is_sampled());
        // Unknown flag bits are not propagated.
        assert_eq!(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap().flags, 1);
        assert_eq!(format_traceparent(&ctx), TP);
        let unsampled = SpanContext { flags: 0, ..ctx.clone() };
        assert_eq!(format_traceparent(&unsampled), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-xyz",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",          // v00 must be exact
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",           // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",           // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",           // zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",           // forbidden version
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",           // bad version hex
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",           // bad flags
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",           // bad delimiter
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",           // shifted fields
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",      // future version, bad tail
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn future_versions_are_read_as_level_one() {
        let ctx = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future").unwrap();
        assert_eq!(ctx.span_id.to_string(), "00f067aa0ba902b7");
        assert!(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
    }

    #[test]
    fn tracestate_rules() {
        assert_eq!(parse_tracestate("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7").as_deref(), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
        assert_eq!(parse_tracestate("a=1,,  ,b=2").as_deref(), Some("a=1,b=2"));
        assert_eq!(parse_tracestate("tenant@vendor=x").as_deref(), Some("tenant@vendor=x"));
        assert_eq!(parse_tracestate("1tenant@vendor=x").as_deref(), Some("1tenant@vendor=x"));
        // Duplicated keys: the first occurrence stays (the W3C harness accepts either).
        assert_eq!(parse_tracestate("a=1,b=2,a=3").as_deref(), Some("a=1,b=2"));
        assert_eq!(parse_tracestate("foo=1,foo=1").as_deref(), Some("foo=1"));
        assert!(parse_tracestate("Upper=1").is_none());
        // `@` is an ordinary key character now, anywhere but first; no tenant/system limits.
        assert_eq!(parse_tracestate("foo@=1,bar=2").as_deref(), Some("foo@=1,bar=2"));
        assert_eq!(parse_tracestate("foo@@bar=1,foo@bar@baz=2").as_deref(), Some("foo@@bar=1,foo@bar@baz=2"));
        assert!(parse_tracestate(&format!("{}@v=1", "t".repeat(242))).is_some());
        assert!(parse_tracestate(&format!("t@{}=1", "v".repeat(15))).is_some());
        assert!(parse_tracestate("@foo=1,bar=2").is_none(), "a key starts with a letter or digit");
        assert!(parse_tracestate("foo.bar=1").is_none());
        assert!(parse_tracestate(&format!("{}=1", "a".repeat(257))).is_none(), "key too long");
        assert!(parse_tracestate(&format!("{}=1", "a".repeat(256))).is_some());
        assert!(parse_tracestate("a=b=c").is_none());
        assert!(parse_tracestate("a=").is_none());
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tracestate(&many.join(",")).is_none(), "over 32 members");
        assert!(parse_tracestate(&many[..32].join(",")).is_some());
    }

    #[test]
    fn extract_combines_traceparent_tracestate_and_baggage() {
        let pairs = [(Header::TraceParent, TP), (Header::TraceState, "rojo=1"), (Header::Baggage, "user=alice, bad key=x, id=7;p=1")];
        let ex = extract(&[Propagator::TraceContext, Propagator::Baggage], headers(&pairs));
        let parent = ex.parent.unwrap();
        assert_eq!(parent.trace_state.as_deref(), Some("rojo=1"));
        assert_eq!(ex.baggage.as_deref(), Some("user=alice,id=7;p=1"));
    }

    #[test]
    fn tracestate_without_valid_traceparent_is_ignored() {
        let pairs = [(Header::TraceParent, "garbage"), (Header::TraceState, "rojo=1")];
        assert_eq!(extract(&[Propagator::TraceContext], headers(&pairs)), Extracted::default());
    }

    #[test]
    fn no_propagators_extract_nothing() {
        let pairs = [(Header::TraceParent, TP)];
        assert_eq!(extract(&[], headers(&pairs)), Extracted::default());
    }

    #[test]
    fn b3_single_and_multi() {
        let ctx = parse_b3_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90").unwrap();
        assert_eq!(ctx.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert!(ctx.is_sampled());
        assert!(!parse_b3_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0").unwrap().is_sampled());
        assert!(parse_b3_single("a3ce929d0e0e4736-e457b5a2e4d86bd1-d").unwrap().is_sampled());
        assert!(parse_b3_single("0").is_none());
        assert!(parse_b3_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x").is_none());
        let pairs = [(Header::B3TraceId, "a3ce929d0e0e4736"), (Header::B3SpanId, "e457b5a2e4d86bd1"), (Header::B3Sampled, "0")];
        let ex = extract(&[Propagator::B3Multi], headers(&pairs));
        assert!(!ex.parent.unwrap().is_sampled());
        let pairs = [(Header::B3TraceId, "a3ce929d0e0e4736"), (Header::B3SpanId, "e457b5a2e4d86bd1"), (Header::B3Flags, "1"), (Header::B3Sampled, "0")];
        assert!(extract(&[Propagator::B3Multi], headers(&pairs)).parent.unwrap().is_sampled());
    }

    #[test]
    fn later_propagator_wins() {
        let pairs = [(Header::TraceParent, TP), (Header::B3, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")];
        let ex = extract(&[Propagator::TraceContext, Propagator::B3], headers(&pairs));
        assert_eq!(ex.parent.unwrap().trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
    }

    #[test]
    fn inject_round_trips() {
        let ctx = parse_traceparent(TP).map(|c| SpanContext { trace_state: Some("a=1".into()), ..c }).unwrap();
        let out = inject(&[Propagator::TraceContext, Propagator::B3Multi, Propagator::Baggage], &ctx, Some("k=v"));
        let get = |h: Header| out.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_str());
        assert_eq!(get(Header::TraceParent), Some(TP));
        assert_eq!(get(Header::TraceState), Some("a=1"));
        assert_eq!(get(Header::B3Sampled), Some("1"));
        assert_eq!(get(Header::Baggage), Some("k=v"));
    }

    #[test]
    fn baggage_limits() {
        let long = (0..200).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
        assert_eq!(parse_baggage(&long).unwrap().split(',').count(), MAX_BAGGAGE_MEMBERS);
        assert!(parse_baggage("=x,novalue").is_none());
    }
}
