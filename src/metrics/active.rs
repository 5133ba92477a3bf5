//! `http.server.active_requests`: an up/down counter per (method, scheme), kept in fixed atomic
//! slots so the request thread pays two relaxed atomic adds and no allocation. Per process: after
//! a fork the child's slots start from what the parent had in flight (nothing, in a pre-fork
//! master that serves no requests).

use std::sync::atomic::{AtomicI64, Ordering};

pub const METHODS: [&str; 10] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"];
const SCHEMES: [&str; 2] = ["http", "https"];

static SLOTS: [AtomicI64; METHODS.len() * SCHEMES.len()] = [const { AtomicI64::new(0) }; METHODS.len() * SCHEMES.len()];

/// A slot taken by a request in flight; give it back with `leave`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(u8);

pub fn enter(method: &str, scheme: &str) -> Slot {
    let m = METHODS.iter().position(|x| *x == method).unwrap_or(METHODS.len() - 1);
    let s = usize::from(scheme == "https");
    let slot = m * SCHEMES.len() + s;
    SLOTS[slot].fetch_add(1, Ordering::Relaxed);
    Slot(slot as u8)
}

pub fn leave(slot: Slot) {
    SLOTS[slot.0 as usize].fetch_sub(1, Ordering::Relaxed);
}

/// (method, scheme, in flight) for every slot that has been used.
pub fn read() -> Vec<(&'static str, &'static str, i64)> {
    let mut out = Vec::new();
    for (i, slot) in SLOTS.iter().enumerate() {
        let v = slot.load(Ordering::Relaxed);
        if v != 0 || USED[i].load(Ordering::Relaxed) {
            USED[i].store(true, Ordering::Relaxed);
            out.push((METHODS[i / SCHEMES.len()], SCHEMES[i % SCHEMES.len()], v.max(0)));
        }
    }
    out
}

/// Slots that have been non-zero once keep being reported (at 0), as a gauge should.
static USED: [std::sync::atomic::AtomicBool; METHODS.len() * SCHEMES.len()] =
    [const { std::sync::atomic::AtomicBool::new(false) }; METHODS.len() * SCHEMES.len()];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_in_flight() {
        let a = enter("PATCH", "https");
        let b = enter("PATCH", "https");
        let c = enter("WEIRD", "http");
        let find = |m: &str, s: &str| read().into_iter().find(|(rm, rs, _)| *rm == m && *rs == s).map(|x| x.2);
        assert_eq!(find("PATCH", "https"), Some(2));
        assert_eq!(find("_OTHER", "http"), Some(1));
        leave(a);
        leave(b);
        leave(c);
        assert_eq!(find("PATCH", "https"), Some(0), "still reported once seen");
    }
}
