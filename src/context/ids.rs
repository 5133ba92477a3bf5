//! Trace and span identifiers and their generator.
//!
//! IDs come from a per-thread wyrand generator seeded from the OS (`getrandom`). The state records
//! the fork generation it was seeded in and reseeds when it changes, so pre-fork workers never
//! share a sequence (a parent that generated IDs before forking would otherwise hand every child
//! the same one).

use std::cell::Cell;
use std::fmt;

use crate::fork;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    pub const INVALID: TraceId = TraceId([0; 16]);
    pub fn is_valid(&self) -> bool {
        *self != Self::INVALID
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        decode_hex(s, &mut out).then_some(TraceId(out))
    }
    /// A 64-bit trace id (b3 allows 16 hex digits) is left-padded with zeros.
    pub fn from_hex_64_or_128(s: &str) -> Option<Self> {
        match s.len() {
            32 => Self::from_hex(s),
            16 => {
                let mut out = [0u8; 16];
                decode_hex(s, &mut out[8..]).then_some(TraceId(out))
            }
            _ => None,
        }
    }
    pub fn random() -> Self {
        let (a, b) = (next_u64(), next_u64());
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_be_bytes());
        out[8..].copy_from_slice(&b.to_be_bytes());
        if out == [0; 16] {
            out[15] = 1;
        }
        TraceId(out)
    }
    /// The lower 8 bytes, as the spec's TraceIdRatioBased sampler reads them.
    pub fn low_u64(&self) -> u64 {
        u64::from_be_bytes(self.0[8..].try_into().unwrap())
    }
}

impl SpanId {
    pub const INVALID: SpanId = SpanId([0; 8]);
    pub fn is_valid(&self) -> bool {
        *self != Self::INVALID
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 8];
        decode_hex(s, &mut out).then_some(SpanId(out))
    }
    pub fn random() -> Self {
        let mut v = next_u64();
        if v == 0 {
            v = 1;
        }
        SpanId(v.to_be_bytes())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Lower-case hex through one `write_str` (ids are formatted for every propagated header: one
/// `write!` per byte cost several times more).
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    let n = bytes.len().min(16);
    for (i, b) in bytes[..n].iter().enumerate() {
        buf[2 * i] = DIGITS[(b >> 4) as usize];
        buf[2 * i + 1] = DIGITS[(b & 0x0f) as usize];
    }
    f.pad(std::str::from_utf8(&buf[..2 * n]).unwrap_or_default())
}

/// Lower-case hex only (W3C trace context forbids upper case); exact length.
fn decode_hex(s: &str, out: &mut [u8]) -> bool {
    let s = s.as_bytes();
    if s.len() != out.len() * 2 {
        return false;
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        match (hex_val(pair[0]), hex_val(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

thread_local! {
    /// (fork generation the state was seeded in + 1, wyrand state); 0 = unseeded.
    static RNG: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn os_seed() -> u64 {
    let mut buf = [0u8; 8];
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        return u64::from_ne_bytes(buf);
    }
    // No getrandom (very old kernel): mix time, pid and a stack address.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    t ^ ((unsafe { libc::getpid() } as u64) << 32) ^ (&local as *const u8 as u64)
}

fn next_u64() -> u64 {
    RNG.with(|cell| {
        let (seeded_gen, mut state) = cell.get();
        let gen = fork::generation() + 1;
        if seeded_gen != gen {
            state = os_seed();
        }
        // wyrand
        state = state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (state as u128).wrapping_mul((state ^ 0xe703_7ed1_a0b4_28db) as u128);
        cell.set((gen, state));
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hex_round_trip() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
        assert!(SpanId::from_hex("00f067aa0ba902b").is_none());
        assert_eq!(
            TraceId::from_hex_64_or_128("a3ce929d0e0e4736").unwrap().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
    }

    #[test]
    fn ids_are_unique_and_valid() {
        let ids: HashSet<_> = (0..10_000).map(|_| SpanId::random()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(TraceId::random().is_valid());
    }

    #[test]
    fn forked_children_do_not_repeat_the_parent_sequence() {
        fork::install();
        let _ = SpanId::random(); // the parent has used its generator before forking
        let mut fds = [0i32; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut children = Vec::new();
        for _ in 0..2 {
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let id = SpanId::random();
                unsafe {
                    libc::write(fds[1], id.0.as_ptr().cast(), 8);
                    libc::_exit(0)
                };
            }
            children.push(pid);
        }
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut buf = [0u8; 8];
            assert_eq!(unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 8) }, 8);
            seen.push(buf);
        }
        for pid in children {
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        assert_ne!(seen[0], seen[1], "sibling workers must not generate the same ids");
    }
}
