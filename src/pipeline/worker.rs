//! The processing thread and the export threads.
//!
//! The processing thread (`ferrotel-export`) wakes on a short tick (never per span), runs every
//! queued span through the processing chain and the RED aggregator, batches spans and log
//! records, publishes the Prometheus snapshot, and hands each signal's batches to that signal's
//! own export thread (`ferrotel-traces`, `ferrotel-metrics`, `ferrotel-logs`) through a small
//! bounded channel. It never waits on the network: a collector that hangs or fails for one
//! signal stalls only that signal's export thread, whose channel then fills and further batches
//! of that signal are dropped and counted (`queue_full`), while the other signals, the
//! aggregation and the Prometheus endpoint go on.
//!
//! Every thread builds what it uses itself (exporters, TLS, a gRPC runtime), so everything
//! belongs to the process it runs in: after a fork the child's first span starts a fresh
//! processing thread, which starts fresh export threads.
//!
//! No silent failure: a panic while processing a span, aggregating, batching or exporting is
//! caught (`guarded`), reported once per place with its message, and costs at most the span or
//! the batch in hand; the thread goes on.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender, TrySendError};

use super::{Control, Pipeline};
use crate::config::{MetricsExporter, TestFault};
use crate::export::logs::LogExporter;
use crate::export::{self, SpanExporter};
use crate::logs::LogRecord;
use crate::metrics::{prometheus, red::Red, snapshot::Snapshot};
use crate::processors::{Chain, DropReason};
use crate::resource::Resource;
use crate::span::SpanRecord;

/// How often the thread looks at the queue.
const TICK: Duration = Duration::from_millis(50);
/// How often a process publishes its metrics for the shared Prometheus endpoint.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// How often a process that does not serve `/metrics` tries to take the port.
pub(crate) const BIND_RETRY: Duration = Duration::from_secs(3);

pub(super) fn run(p: &'static Pipeline) {
    yield_to_the_app();
    let cfg = &p.settings.config;
    let resource = Arc::new(Resource::build(cfg, &p.settings.runtime));
    let chain = Chain::new(&cfg.processing, &cfg.limits);
    let fault = cfg.test_fault == Some(TestFault::ProcessorPanic);
    let mut spans = Spans::new(p, &resource);
    let mut metrics = Metrics::new(p, &resource);
    let mut logs = Logs::new(p, &resource);
    let mut tick = TICK.min(cfg.batch.schedule_delay.max(Duration::from_millis(1)));
    if logs.is_some() {
        tick = tick.min(cfg.logs.batch.schedule_delay.max(Duration::from_millis(1)));
    }
    loop {
        let (ack, stop) = match p.control_rx.recv_timeout(tick) {
            Ok(Control::Flush(ack)) => (Some(ack), false),
            Ok(Control::Shutdown(ack)) => (Some(ack), true),
            Err(RecvTimeoutError::Timeout) => (None, false),
            Err(RecvTimeoutError::Disconnected) => (None, true),
        };
        let now = ack.is_some();
        while let Some(span) = p.queue.pop() {
            // A panic here costs this span only.
            let red = metrics.as_mut().map(|m| &mut m.red);
            let decided = guarded("span processing", "the span was dropped", || process(&chain, fault, red, span));
            match decided {
                Some(Ok(span)) => {
                    guarded("span batching", "the batch was dropped", || spans.add(span));
                }
                Some(Err(DropReason::Filtered)) => drop(p.stats.filtered.fetch_add(1, Ordering::Relaxed)),
                Some(Err(DropReason::SampledOut)) => drop(p.stats.sampled_out.fetch_add(1, Ordering::Relaxed)),
                None => {}
            }
        }
        guarded("span batching", "the batch was dropped", || spans.maybe_send(now));
        if let Some(l) = logs.as_mut() {
            guarded("log batching", "the batch was dropped", || l.drain(now));
        }
        if let Some(m) = metrics.as_mut() {
            guarded("metrics", "one metrics export or publication was skipped", || m.tick(now));
        }
        if let Some(ack) = ack {
            // The caller waits until every export thread has sent what it was given so far (each
            // answers on its own clone of `ack`; the channel closes when all have).
            let _ = ack.send(true);
            spans.lane.flush(&ack);
            if let Some(l) = logs.as_ref() {
                l.lane.flush(&ack);
            }
            if let Some(lane) = metrics.as_ref().and_then(|m| m.lane.as_ref()) {
                lane.flush(&ack);
            }
        }
        if stop {
            // Dropping the lanes closes their channels: each export thread sends what it holds
            // (one attempt each: retries stop at exit) and ends.
            return;
        }
    }
}

/// Enrich, aggregate and decide one span; the test fault panics on the first span of each process.
fn process(chain: &Chain, fault: bool, red: Option<&mut Red>, mut span: SpanRecord) -> Result<SpanRecord, DropReason> {
    if fault {
        static FIRED_IN: AtomicU32 = AtomicU32::new(0);
        let me = std::process::id();
        if FIRED_IN.swap(me, Ordering::Relaxed) != me {
            panic!("injected fault (FERROTEL_TEST_FAULT=processor_panic)");
        }
    }
    if !span.head.is_sampled() {
        // Dropped by the head sampler (with metrics on, most spans of a low ratio): only what the
        // metrics read, unless keep-errors-and-slow exports it after all.
        chain.enrich_for_metrics(&mut span);
        if !chain.tail_keeps(&span) {
            if let Some(red) = red {
                red.observe(&span);
            }
            // Filtered or sampled out (the filter is asked first, as for every span).
            return Err(chain.decide(&mut span).err().unwrap_or(DropReason::SampledOut));
        }
    }
    chain.enrich(&mut span);
    if let Some(red) = red {
        red.observe(&span);
    }
    chain.decide(&mut span).map(|()| span)
}

/// Run `f`; if it panics, say so once for `place` (with the panic's message and what it cost)
/// and return `None`. The agent's panic hook is quiet (see `hooks::guard`), so this line is the
/// only one printed.
pub(crate) fn guarded<R>(place: &'static str, cost: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            crate::log::warn_once(
                place,
                &format!("internal error in {place} ({}); {cost}, export goes on (reported once)", panic_message(&*payload)),
            );
            None
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".into()
    }
}

/// Run this thread as SCHED_BATCH: it keeps its fair share of the CPU, but waking up never
/// preempts a running thread. At SCHED_OTHER the scheduler often woke it on the request
/// thread's core, preempting the request, while the other core sat idle (in-process, alternating
/// processes: the request thread's wall time exceeded its CPU time by ~1.9 µs per request over
/// no agent). A lower priority (nice 10) removed that too, but starved the thread when every
/// core was busy: one benchmark process making 20k spans/s dropped 17% of its spans from the full
/// queue; SCHED_BATCH keeps the normal weight. Any thread may choose it (no privilege), and it
/// is per thread on Linux. Best effort: a failure leaves the default policy.
/// The system call itself: musl's `sched_setscheduler` is a stub that fails by design.
fn yield_to_the_app() {
    // SAFETY: a zeroed sched_param is valid (priority 0, the only one SCHED_BATCH takes); the
    // call reads it and changes only the calling thread (pid 0).
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        libc::syscall(libc::SYS_sched_setscheduler, 0, libc::SCHED_BATCH, &param as *const libc::sched_param);
    }
}

/// What the processing thread hands an export thread.
enum Job<T> {
    Export(T),
    /// Answer `true` once everything before this job is sent.
    Flush(Sender<bool>),
}

/// The processing thread's end of one signal's export thread.
struct Lane<T> {
    /// `None`: the thread could not be started (said once); this signal's data is dropped.
    tx: Option<Sender<Job<T>>>,
    /// Payloads the channel takes; it has one slot more, kept for a flush marker, so a flush
    /// always reaches a thread that is merely behind (and is answered once it has caught up).
    capacity: usize,
}

impl<T: Send + 'static> Lane<T> {
    /// Start the export thread `name`; `make` builds its exporter there (after any fork, in the
    /// process that uses it) and returns what sends one job's payload.
    fn start<F>(name: &'static str, capacity: usize, make: impl FnOnce() -> F + Send + 'static) -> Self
    where
        F: FnMut(T),
    {
        let capacity = capacity.max(1);
        let (tx, rx) = crossbeam_channel::bounded::<Job<T>>(capacity + 1);
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
            yield_to_the_app();
            let Some(mut send) = guarded(name, "this signal is not exported", make) else { return };
            for job in rx {
                match job {
                    Job::Export(payload) => {
                        guarded(name, "the batch was dropped", || send(payload));
                    }
                    Job::Flush(ack) => {
                        let _ = ack.send(true);
                    }
                }
            }
        });
        match spawned {
            Ok(_) => Lane { tx: Some(tx), capacity },
            Err(e) => {
                crate::log::warn_once("lane-spawn", &format!("could not start the {name} thread ({e}); that signal will not be exported"));
                Lane { tx: None, capacity }
            }
        }
    }

    /// Hand over a payload without waiting; `Err` gives it back when the export thread is
    /// behind (its channel is full) or absent.
    fn offer(&self, payload: T) -> Result<(), T> {
        let Some(tx) = self.tx.as_ref() else { return Err(payload) };
        // Only the processing thread sends, so the length cannot grow between check and send.
        if tx.len() >= self.capacity {
            return Err(payload);
        }
        tx.try_send(Job::Export(payload)).map_err(|e| match e {
            TrySendError::Full(Job::Export(p)) | TrySendError::Disconnected(Job::Export(p)) => p,
            _ => unreachable!("an export job comes back as sent"),
        })
    }

    /// Queue a flush marker (in the slot kept for it); if even that is taken (an earlier flush
    /// still waits behind a stuck export), answer `false` for it.
    fn flush(&self, ack: &Sender<bool>) {
        let queued = self.tx.as_ref().is_some_and(|tx| tx.try_send(Job::Flush(ack.clone())).is_ok());
        if !queued && self.tx.is_some() {
            let _ = ack.send(false);
        }
    }
}

/// The span side: batching, and the traces export thread.
struct Spans {
    p: &'static Pipeline,
    batch: Vec<SpanRecord>,
    last_send: Instant,
    lane: Lane<Vec<SpanRecord>>,
}

impl Spans {
    fn new(p: &'static Pipeline, resource: &Arc<Resource>) -> Self {
        let cfg = &p.settings.config.batch;
        // Up to a queue's worth of batches in flight: memory stays bounded by twice the queue.
        let capacity = (cfg.max_queue_size / cfg.max_export_batch_size.max(1)).clamp(1, 8);
        let resource = resource.clone();
        let lane = Lane::start("ferrotel-traces", capacity, move || {
            let mut exporters = export::build(&p.settings.config);
            let mut failing = vec![false; exporters.len()];
            move |batch: Vec<SpanRecord>| export_spans(p, &mut exporters, &mut failing, &batch, &resource)
        });
        Spans { p, batch: Vec::with_capacity(cfg.max_export_batch_size), last_send: Instant::now(), lane }
    }

    fn add(&mut self, span: SpanRecord) {
        self.batch.push(span);
        if self.batch.len() >= self.p.settings.config.batch.max_export_batch_size {
            self.send();
        }
    }

    fn maybe_send(&mut self, now: bool) {
        if now || self.last_send.elapsed() >= self.p.settings.config.batch.schedule_delay {
            if !self.batch.is_empty() {
                self.send();
            }
            self.last_send = Instant::now();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.p.settings.config.batch.max_export_batch_size));
        if let Err(batch) = self.lane.offer(batch) {
            self.p.stats.dropped_queue_full.fetch_add(batch.len() as u64, Ordering::Relaxed);
            behind("traces-behind", "spans");
        }
    }
}

fn export_spans(p: &Pipeline, exporters: &mut [Box<dyn SpanExporter>], failing: &mut [bool], batch: &[SpanRecord], resource: &Resource) {
    let mut ok = true;
    for (exporter, failing) in exporters.iter_mut().zip(failing.iter_mut()) {
        ok &= report(exporter.export(batch, resource), failing, &exporter.target());
    }
    if ok {
        p.stats.exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
    } else {
        p.stats.export_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Say once per signal that its export thread fell behind (a slow or hanging collector).
fn behind(key: &'static str, what: &str) {
    crate::log::warn_once(
        key,
        &format!("{what}: the export is behind (the collector is slow or not answering); dropping {what} until it catches up (counted)"),
    );
}

/// The log side: batching (`OTEL_BLRP_*`), and the logs export thread.
struct Logs {
    p: &'static Pipeline,
    batch: Vec<LogRecord>,
    last_send: Instant,
    lane: Lane<Vec<LogRecord>>,
}

impl Logs {
    fn new(p: &'static Pipeline, resource: &Arc<Resource>) -> Option<Self> {
        p.logs.as_ref()?;
        let cfg = &p.settings.config.logs;
        let capacity = (cfg.batch.max_queue_size / cfg.batch.max_export_batch_size.max(1)).clamp(1, 8);
        let resource = resource.clone();
        let lane = Lane::start("ferrotel-logs", capacity, move || {
            let mut exporters = export::logs::build(&p.settings.config.logs);
            let mut failing = vec![false; exporters.len()];
            move |batch: Vec<LogRecord>| {
                export_logs(p, &mut exporters, &mut failing, &batch, &resource);
                crate::logs::recycle(batch);
            }
        });
        Some(Logs { p, batch: Vec::with_capacity(cfg.batch.max_export_batch_size), last_send: Instant::now(), lane })
    }

    /// Move queued records into batches; send full batches, and the rest when the schedule delay
    /// has passed or on request.
    fn drain(&mut self, now: bool) {
        let cfg = &self.p.settings.config.logs.batch;
        if let Some(queue) = self.p.logs.as_ref() {
            while let Some(rec) = queue.pop() {
                self.batch.push(rec);
                if self.batch.len() >= cfg.max_export_batch_size {
                    self.send();
                }
            }
        }
        if now || self.last_send.elapsed() >= cfg.schedule_delay {
            if !self.batch.is_empty() {
                self.send();
            }
            self.last_send = Instant::now();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.p.settings.config.logs.batch.max_export_batch_size));
        if let Err(batch) = self.lane.offer(batch) {
            self.p.log_stats.dropped_queue_full.fetch_add(batch.len() as u64, Ordering::Relaxed);
            behind("logs-behind", "log records");
        }
    }
}

fn export_logs(p: &Pipeline, exporters: &mut [Box<dyn LogExporter>], failing: &mut [bool], batch: &[LogRecord], resource: &Resource) {
    let mut ok = true;
    for (exporter, failing) in exporters.iter_mut().zip(failing.iter_mut()) {
        ok &= report(exporter.export(batch, resource), failing, &format!("{} (logs)", exporter.target()));
    }
    let stats = &p.log_stats;
    if ok {
        stats.exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
    } else {
        stats.export_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Log the first failure of a streak and the recovery; true on success.
fn report(result: Result<(), String>, failing: &mut bool, target: &str) -> bool {
    match result {
        Ok(()) => {
            if *failing {
                crate::log::warn(&format!("export to {target} works again"));
            }
            *failing = false;
            true
        }
        Err(e) => {
            if !*failing {
                crate::log::warn(&format!("export to {target} failed: {e}; dropping data until it recovers"));
            }
            *failing = true;
            false
        }
    }
}

/// The metrics side: aggregation (here), pushed exports (OTLP, console: the metrics export
/// thread), the shared Prometheus endpoint (a file publication here; served by its own thread).
struct Metrics {
    p: &'static Pipeline,
    red: Red,
    /// The metrics export thread, when a pushing exporter is configured.
    lane: Option<Lane<Snapshot>>,
    last_push: Instant,
    prometheus: Option<Prometheus>,
}

struct Prometheus {
    dir: std::path::PathBuf,
    serving: bool,
    last_publish: Instant,
    last_bind: Option<Instant>,
}

impl Metrics {
    fn new(p: &'static Pipeline, resource: &Arc<Resource>) -> Option<Self> {
        let m = &p.settings.config.metrics;
        if m.exporters.is_empty() {
            return None;
        }
        let pushing = m.exporters.iter().any(|e| *e != MetricsExporter::Prometheus);
        let lane = pushing.then(|| {
            let resource = resource.clone();
            // A few slots: snapshots and flush markers. Snapshots are cumulative, so one skipped
            // while the thread is busy is carried by the next (deltas are taken from the last
            // delivered one).
            Lane::start("ferrotel-metrics", 3, move || {
                let mut sinks = export::build_metrics(&p.settings.config.metrics);
                let mut failing = vec![false; sinks.len()];
                move |snap: Snapshot| {
                    for (sink, failing) in sinks.iter_mut().zip(failing.iter_mut()) {
                        report(sink.export(snap.clone(), &resource), failing, &sink.target());
                    }
                }
            })
        });
        let prometheus = m.exporters.contains(&MetricsExporter::Prometheus).then(|| Prometheus {
            dir: prometheus::shared_dir(p.settings.origin_pid, m.prometheus_port),
            serving: false,
            last_publish: Instant::now() - PUBLISH_EVERY,
            last_bind: None,
        });
        Some(Metrics { p, red: Red::new(), lane, last_push: Instant::now(), prometheus })
    }

    fn snapshot(&mut self) -> Snapshot {
        // Requests the request threads counted themselves (no record: see metrics::cells).
        let red = &mut self.red;
        crate::metrics::cells::drain(|k, counts, sum, count| red.merge_server(k, counts, sum, count));
        let mut s = self.red.snapshot();
        s.stats = self.p.stats.snapshot();
        s
    }

    fn tick(&mut self, now: bool) {
        let cfg = &self.p.settings.config.metrics;
        if self.lane.is_some() && (now || self.last_push.elapsed() >= cfg.interval) {
            let snap = self.snapshot();
            if let Some(lane) = self.lane.as_ref() {
                // Busy (a slow collector): this snapshot is skipped, the next carries its counts.
                let _ = lane.offer(snap);
            }
            self.last_push = Instant::now();
        }
        let snap_needed = self.prometheus.as_ref().is_some_and(|pr| now || pr.last_publish.elapsed() >= PUBLISH_EVERY);
        if snap_needed {
            let snap = self.snapshot();
            let pr = self.prometheus.as_mut().unwrap();
            if let Err(e) = prometheus::publish(&pr.dir, &snap) {
                crate::log::warn_once("prometheus-publish", &format!("cannot write metrics to {} ({e})", pr.dir.display()));
            }
            pr.last_publish = Instant::now();
            if !pr.serving && !prometheus::served_here() && pr.last_bind.is_none_or(|t| t.elapsed() >= BIND_RETRY) {
                pr.last_bind = Some(Instant::now());
                match prometheus::bind(&cfg.prometheus_host, cfg.prometheus_port) {
                    Ok(Some(listener)) => {
                        let dir = pr.dir.clone();
                        pr.serving = std::thread::Builder::new().name("ferrotel-prometheus".into()).spawn(move || prometheus::serve(listener, dir)).is_ok();
                    }
                    Ok(None) => {} // another process of this server serves it
                    Err(e) => crate::log::warn_once(
                        "prometheus-bind",
                        &format!("cannot listen on {}:{} for /metrics ({e})", cfg.prometheus_host, cfg.prometheus_port),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_dropped_span_feeds_the_metrics_and_is_kept_only_for_errors_and_slow() {
        use crate::processors::test_support::{config, server_span};
        use crate::span::{Head, Status, Value};
        let cfg = crate::config::Config::from_pairs(&[]);
        let chain = Chain::new(&config(&[]), &cfg.limits);
        let mut red = Red::new();
        let dropped = |ms| {
            let mut s = server_span("/users/<id>", ms);
            s.head = Head::RatioDropped;
            s.flags = 0;
            s
        };
        assert_eq!(process(&chain, false, Some(&mut red), dropped(1)).err(), Some(DropReason::SampledOut));
        let mut err = dropped(1);
        err.status = Status::Error(String::new());
        let kept = process(&chain, false, Some(&mut red), err).expect("an error is kept");
        assert!(kept.is_sampled());
        assert_eq!(kept.get("ferrotel.error"), Some(&Value::Bool(true)));
        let kept = process(&chain, false, Some(&mut red), dropped(150)).expect("a slow request is kept");
        assert_eq!(kept.get("ferrotel.slow"), Some(&Value::Bool(true)));
        let mut parent_said_no = dropped(150);
        parent_said_no.head = Head::Dropped;
        assert_eq!(process(&chain, false, Some(&mut red), parent_said_no).err(), Some(DropReason::SampledOut));
        let snap = red.snapshot();
        assert_eq!(snap.durations.iter().map(|h| h.count).sum::<u64>(), 4, "every span counted");
        assert_eq!(snap.slow.iter().map(|c| c.value).sum::<u64>(), 2);
        assert_eq!(snap.errors.iter().map(|c| c.value).sum::<u64>(), 1);
        let filtering = Chain::new(&config(&[("FERROTEL_FILTER_ROUTES", "/users/*")]), &cfg.limits);
        assert_eq!(process(&filtering, false, Some(&mut red), dropped(1)).err(), Some(DropReason::Filtered), "the filter is asked first");
    }

    #[test]
    fn a_panic_is_caught_and_costs_only_its_work() {
        let r: Option<u32> = guarded("test-place", "nothing lost", || panic!("boom {}", 7));
        assert_eq!(r, None);
        assert_eq!(panic_message(&*catch_unwind(|| panic!("plain")).unwrap_err()), "panic: plain");
        assert_eq!(panic_message(&*catch_unwind(|| panic!("with {}", "args")).unwrap_err()), "panic: with args");
        assert_eq!(guarded("test-place", "nothing lost", || 5), Some(5), "later work goes on");
    }

    #[test]
    fn a_lane_flushes_in_order_and_survives_a_panicking_export() {
        let (seen_tx, seen_rx) = crossbeam_channel::unbounded();
        let lane = Lane::start("ferrotel-test-lane", 4, move || {
            move |n: u32| {
                if n == 2 {
                    panic!("export of {n} failed");
                }
                seen_tx.send(n).unwrap();
            }
        });
        for n in 1..=3 {
            lane.offer(n).unwrap();
        }
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(4);
        lane.flush(&ack_tx);
        drop(ack_tx);
        assert_eq!(ack_rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        assert_eq!(seen_rx.try_iter().collect::<Vec<_>>(), vec![1, 3], "the panicking batch is lost, the next one goes");
    }

    #[test]
    fn a_stuck_export_thread_refuses_work_instead_of_blocking() {
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let lane = Lane::start("ferrotel-test-stuck", 2, move || {
            move |_: u32| {
                let _ = gate_rx.recv(); // a collector that does not answer
            }
        });
        lane.offer(1).unwrap(); // taken by the thread, which then waits
        std::thread::sleep(Duration::from_millis(100));
        lane.offer(2).unwrap();
        lane.offer(3).unwrap();
        assert_eq!(lane.offer(4), Err(4), "full: handed back at once, never waited for");
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(4);
        lane.flush(&ack_tx); // the slot kept for it
        lane.flush(&ack_tx); // no room: answered false at once
        drop(ack_tx);
        assert_eq!(ack_rx.recv_timeout(Duration::from_secs(5)), Ok(false));
        assert!(ack_rx.recv_timeout(Duration::from_millis(200)).is_err(), "the first flush waits for the queued work");
        drop(gate_tx); // the collector answers
        assert_eq!(ack_rx.recv_timeout(Duration::from_secs(5)), Ok(true), "then it is answered");
    }
}
