//! `http.server.request.duration` cells filled from the request thread, for the requests that
//! leave no record at all: a server span the head sampler dropped that ended neither in error nor
//! slow (`hooks::span::Span::end`) only counts in this histogram, so it is added here, where it
//! ends, instead of travelling to the processing thread as a record.
//!
//! A fixed set of shards, each behind its own mutex; a thread always uses the same shard (given
//! round-robin on its first request), so the lock is uncontended unless more threads than shards
//! run requests at once. A cell is found by a hash of the borrowed label values and compared
//! field by field: once its series exists, adding to it allocates nothing. The processing thread
//! drains the cells into the aggregator (`red::Red::merge_server`) each time it takes a
//! snapshot, so OTLP and Prometheus see every request (exact counts, as before).
//!
//! Per process, like the rest of the metrics: the shards belong to one fork generation. A child
//! starts with empty shards (the parent's are left alone: another thread of the parent may have
//! held one of their locks when it forked), so nothing the parent counted is counted twice.

use std::cell::Cell as StdCell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::DURATION_BOUNDS;
use crate::fork;
use crate::span::Text;

const SHARDS: usize = 8;

/// The label values of one `http.server.request.duration` series, borrowed (no `error.type`:
/// requests that end in error keep their record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerKey<'a> {
    pub method: &'a str,
    pub status: Option<i64>,
    pub route: Option<&'a str>,
    pub protocol: Option<&'a str>,
    pub scheme: &'a str,
}

impl ServerKey<'_> {
    fn hash(&self) -> u64 {
        let mut h = Fx(0);
        h.text(self.method);
        h.word(self.status.map_or(u64::MAX, |s| s as u64));
        match self.route {
            Some(r) => h.text(r),
            None => h.word(u64::MAX - 1),
        }
        h.text(self.protocol.unwrap_or(""));
        h.text(self.scheme);
        h.0
    }
}

/// A small multiplicative hash (the Firefox/rustc one), 8 bytes per step: the keys are short and
/// the table belongs to this process, so no flooding resistance is needed.
struct Fx(u64);

impl Fx {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn text(&mut self, s: &str) {
        let mut chunks = s.as_bytes().chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(last) ^ ((s.len() as u64) << 56));
    }
}

/// One series' counts since the last drain.
struct Cell {
    hash: u64,
    method: Text,
    status: Option<i64>,
    route: Option<Text>,
    protocol: Option<Text>,
    scheme: Text,
    counts: [u64; DURATION_BOUNDS.len() + 1],
    sum: f64,
    count: u64,
}

impl Cell {
    fn is(&self, hash: u64, k: &ServerKey<'_>) -> bool {
        self.hash == hash
            && self.status == k.status
            && self.route.as_deref() == k.route
            && self.method == k.method
            && self.scheme == k.scheme
            && self.protocol.as_deref() == k.protocol
    }

    fn key(&self) -> ServerKey<'_> {
        ServerKey { method: &self.method, status: self.status, route: self.route.as_deref(), protocol: self.protocol.as_deref(), scheme: &self.scheme }
    }
}

#[derive(Default)]
struct Shard {
    cells: Vec<Cell>,
}

struct Shards {
    generation: u64,
    shards: [Mutex<Shard>; SHARDS],
}

static CURRENT: AtomicPtr<Shards> = AtomicPtr::new(ptr::null_mut());
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SHARD: StdCell<usize> = const { StdCell::new(usize::MAX) };
}

/// This process's shards, made on first use in each fork generation (the old ones are leaked:
/// at most one set per fork).
fn shards() -> &'static Shards {
    let gen = fork::generation();
    let p = CURRENT.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: shards are leaked, never freed.
        let s = unsafe { &*p };
        if s.generation == gen {
            return s;
        }
    }
    let fresh = Box::into_raw(Box::new(Shards { generation: gen, shards: std::array::from_fn(|_| Mutex::new(Shard::default())) }));
    match CURRENT.compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            drop(unsafe { Box::from_raw(fresh) });
            unsafe { &*winner }
        }
    }
}

fn my_shard() -> usize {
    MY_SHARD
        .try_with(|c| {
            let mut i = c.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
                c.set(i);
            }
            i
        })
        .unwrap_or(0)
}

/// Add one request of `seconds` to its series.
pub fn add_server_duration(key: &ServerKey<'_>, seconds: f64) {
    let hash = key.hash();
    let shard = &shards().shards[my_shard()];
    let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
    let i = match shard.cells.iter().position(|c| c.is(hash, key)) {
        Some(i) => i,
        None => {
            shard.cells.push(Cell {
                hash,
                method: Text::new(key.method),
                status: key.status,
                route: key.route.map(Text::new),
                protocol: key.protocol.map(Text::new),
                scheme: Text::new(key.scheme),
                counts: [0; DURATION_BOUNDS.len() + 1],
                sum: 0.0,
                count: 0,
            });
            shard.cells.len() - 1
        }
    };
    let cell = &mut shard.cells[i];
    let bucket = DURATION_BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(DURATION_BOUNDS.len());
    cell.counts[bucket] += 1;
    cell.sum += seconds;
    cell.count += 1;
}

/// Hand every series counted since the last drain to `take` (label values, bucket counts, sum,
/// count) and zero it. Cells stay, so the request thread does not allocate them again.
pub fn drain(mut take: impl FnMut(&ServerKey<'_>, &[u64], f64, u64)) {
    let p = CURRENT.load(Ordering::Acquire);
    if p.is_null() {
        return;
    }
    let s = unsafe { &*p };
    if s.generation != fork::generation() {
        return; // the parent's: never this process's counts
    }
    for shard in &s.shards {
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        for cell in shard.cells.iter_mut().filter(|c| c.count > 0) {
            take(&cell.key(), &cell.counts, cell.sum, cell.count);
            cell.counts = [0; DURATION_BOUNDS.len() + 1];
            cell.sum = 0.0;
            cell.count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The cells are process-wide: tests that add to them take this lock so drains see only their own.
    pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

    fn key(route: &'static str, status: i64) -> ServerKey<'static> {
        ServerKey { method: "GET", status: Some(status), route: Some(route), protocol: Some("1.1"), scheme: "http" }
    }

    fn drained() -> HashMap<(Option<String>, Option<i64>), (Vec<u64>, f64, u64)> {
        let mut out: HashMap<_, (Vec<u64>, f64, u64)> = HashMap::new();
        drain(|k, counts, sum, count| {
            let e = out.entry((k.route.map(str::to_string), k.status)).or_insert_with(|| (vec![0; counts.len()], 0.0, 0));
            e.0.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
            e.1 += sum;
            e.2 += count;
        });
        out
    }

    #[test]
    fn concurrent_threads_merge_exactly() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        drained();
        const THREADS: usize = 12; // more than the shards: some share one
        const PER: u64 = 5_000;
        let routes = ["/", "/users/<int:uid>", "/a/rather/long/route/template/<path:rest>"];
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let route = routes[(i as usize + t) % routes.len()];
                        let status = if i % 10 == 0 { 404 } else { 200 };
                        add_server_duration(&key(route, status), if i % 2 == 0 { 0.001 } else { 0.2 });
                    }
                })
            })
            .collect();
        // Drains while the threads count: nothing may be lost or counted twice.
        let mut total: HashMap<(Option<String>, Option<i64>), (Vec<u64>, f64, u64)> = HashMap::new();
        let mut merge = |d: HashMap<(Option<String>, Option<i64>), (Vec<u64>, f64, u64)>| {
            for (k, (counts, sum, count)) in d {
                let e = total.entry(k).or_insert_with(|| (vec![0; counts.len()], 0.0, 0));
                e.0.iter_mut().zip(&counts).for_each(|(a, b)| *a += b);
                e.1 += sum;
                e.2 += count;
            }
        };
        while !handles.iter().all(|h| h.is_finished()) {
            merge(drained());
            std::thread::yield_now();
        }
        handles.into_iter().for_each(|h| h.join().unwrap());
        merge(drained());
        let count: u64 = total.values().map(|v| v.2).sum();
        assert_eq!(count, THREADS as u64 * PER, "every request counted once");
        assert_eq!(total.len(), routes.len() * 2, "one series per route and status");
        let buckets: u64 = total.values().flat_map(|v| v.0.iter()).sum();
        assert_eq!(buckets, count, "bucket counts add up to the count");
        let fast: u64 = total.values().map(|v| v.0[0]).sum();
        assert_eq!(fast, THREADS as u64 * PER / 2, "1 ms falls in the first bucket");
        let not_found: u64 = total.iter().filter(|(k, _)| k.1 == Some(404)).map(|(_, v)| v.2).sum();
        assert_eq!(not_found, THREADS as u64 * PER / 10);
        assert!(drained().is_empty(), "a drain empties the cells");
    }

    #[test]
    fn labels_tell_series_apart() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        drained();
        let a = ServerKey { method: "GET", status: None, route: None, protocol: None, scheme: "http" };
        let b = ServerKey { route: Some(""), ..a };
        let c = ServerKey { protocol: Some(""), ..a };
        let d = ServerKey { scheme: "https", ..a };
        for k in [a, b, c, d, a] {
            add_server_duration(&k, 0.01);
        }
        let mut seen = Vec::new();
        drain(|k, _, _, n| seen.push((*k == a, *k == b, *k == c, *k == d, n)));
        seen.sort();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen.contains(&(true, false, false, false, 2)));
    }
}
