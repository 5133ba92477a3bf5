//! The span pipeline: request threads push finished span records into a bounded lock-free queue
//! (never blocking, never waking anyone; a full queue drops and counts); one processing thread
//! per process drains it and hands batches to one export thread per signal (see `worker`), so a
//! slow collector for one signal holds up no other.
//!
//! Fork safety: the pipeline (queue, thread, exporters, resource) belongs to one fork generation.
//! After a fork the child's first span builds a fresh pipeline; the parent's copy is left alone
//! (leaked), because its thread does not exist in the child and its locks may be held forever.

mod worker;

pub(crate) use worker::BIND_RETRY;

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_queue::ArrayQueue;
use once_cell::sync::OnceCell;

use crate::config::Config;
use crate::fork;
use crate::logs::LogRecord;
use crate::metrics::snapshot::SelfStats;
use crate::resource::Runtime;
use crate::span::SpanRecord;

/// What the pipeline is built from: set once at start-up.
pub struct Settings {
    pub config: Config,
    pub runtime: Runtime,
    /// The process that started the agent (a pre-fork master); its descendants share metrics.
    pub origin_pid: u32,
}

static SETTINGS: OnceCell<Arc<Settings>> = OnceCell::new();
static CURRENT: AtomicPtr<Pipeline> = AtomicPtr::new(ptr::null_mut());

enum Control {
    /// Export everything queued, then acknowledge: the processing thread and each export thread
    /// answer on their own clone of the sender (`false`: could not take part); the channel
    /// closes once all have.
    Flush(Sender<bool>),
    /// Flush, acknowledge and end the threads.
    Shutdown(Sender<bool>),
}

/// This process's counters for self-observation.
#[derive(Default)]
pub struct Stats {
    pub started: AtomicU64,
    pub queued: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub filtered: AtomicU64,
    pub sampled_out: AtomicU64,
    pub exported: AtomicU64,
    pub export_failures: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> SelfStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SelfStats {
            spans_started: get(&self.started),
            spans_exported: get(&self.exported),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_filtered: get(&self.filtered),
            dropped_sampled_out: get(&self.sampled_out),
            export_failures: get(&self.export_failures),
        }
    }
}

/// This process's log-record counters.
#[derive(Default)]
pub struct LogStats {
    pub queued: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub exported: AtomicU64,
    pub export_failures: AtomicU64,
}

pub struct Pipeline {
    generation: u64,
    queue: ArrayQueue<SpanRecord>,
    /// Log records (`OTEL_BLRP_MAX_QUEUE_SIZE`), only when log export is on. Drained by the same
    /// export thread; a full queue drops and counts, like the span queue.
    logs: Option<ArrayQueue<LogRecord>>,
    pub log_stats: LogStats,
    started: AtomicBool,
    stopped: AtomicBool,
    control_tx: Sender<Control>,
    control_rx: Receiver<Control>,
    pub stats: Stats,
    settings: Arc<Settings>,
}

/// Install the settings (first call wins). Spans submitted before this are ignored.
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(Arc::new(settings));
}

/// This process's pipeline, built on first use in each fork generation.
fn current() -> Option<&'static Pipeline> {
    let gen = fork::generation();
    let ptr = CURRENT.load(Ordering::Acquire);
    if !ptr.is_null() {
        // SAFETY: pipelines are leaked, never freed.
        let p = unsafe { &*ptr };
        if p.generation == gen {
            return Some(p);
        }
    }
    let settings = SETTINGS.get()?.clone();
    let fresh = Box::into_raw(Box::new(Pipeline::new(gen, settings)));
    match CURRENT.compare_exchange(ptr, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(unsafe { &*fresh }),
        Err(winner) => {
            // Another thread built one first: use it, free ours (never shared).
            drop(unsafe { Box::from_raw(fresh) });
            Some(unsafe { &*winner })
        }
    }
}

/// The pipeline if this process already has one (does not build it).
fn existing() -> Option<&'static Pipeline> {
    let ptr = CURRENT.load(Ordering::Acquire);
    (!ptr.is_null()).then(|| unsafe { &*ptr }).filter(|p| p.generation == fork::generation())
}

impl Pipeline {
    fn new(generation: u64, settings: Arc<Settings>) -> Self {
        let (control_tx, control_rx) = crossbeam_channel::bounded(16);
        Pipeline {
            generation,
            queue: ArrayQueue::new(settings.config.batch.max_queue_size),
            logs: settings.config.logs.export_enabled().then(|| ArrayQueue::new(settings.config.logs.batch.max_queue_size)),
            log_stats: LogStats::default(),
            started: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            control_tx,
            control_rx,
            stats: Stats::default(),
            settings,
        }
    }

    fn ensure_worker(&'static self) {
        if self.started.load(Ordering::Relaxed) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new().name("ferrotel-export".into()).spawn(move || worker::run(self));
        if let Err(e) = spawned {
            crate::log::warn_once("thread", &format!("could not start the export thread ({e}); spans will be dropped"));
        }
    }
}

/// Count a span start (self-telemetry; one relaxed atomic add).
pub fn note_started() {
    if let Some(p) = current() {
        p.stats.started.fetch_add(1, Ordering::Relaxed);
    }
}

/// Count a span the request thread dropped itself (a head-dropped server span that only counted
/// in the metrics cells, `metrics::cells`): no record, no queue. The processing thread still has
/// to run, to drain the cells into the metrics it exports.
pub fn note_dropped(filtered: bool) {
    if let Some(p) = current() {
        let counter = if filtered { &p.stats.filtered } else { &p.stats.sampled_out };
        counter.fetch_add(1, Ordering::Relaxed);
        p.ensure_worker();
    }
}

/// The filter of the processing chain, for the request threads' own verdicts (`note_dropped`).
pub fn filter() -> Option<&'static crate::processors::filter::Filter> {
    static FILTER: OnceCell<crate::processors::filter::Filter> = OnceCell::new();
    let s = SETTINGS.get()?;
    Some(FILTER.get_or_init(|| crate::processors::filter::Filter::new(&s.config.processing)))
}

/// The settings, once the agent has started.
pub fn settings() -> Option<&'static Settings> {
    SETTINGS.get().map(|s| &**s)
}

/// Hand a finished span to the export thread. Never blocks; drops (and counts) when full.
pub fn submit(span: SpanRecord) {
    let Some(p) = current() else { return };
    if p.stopped.load(Ordering::Relaxed) {
        return;
    }
    match p.queue.push(span) {
        Ok(()) => {
            p.stats.queued.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            p.stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
    p.ensure_worker();
}

/// Whether Python log records are exported in this process (the agent started with
/// `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true` and a logs exporter).
pub fn logs_enabled() -> bool {
    SETTINGS.get().is_some_and(|s| s.config.logs.export_enabled())
}

/// Hand a log record to the export thread. Never blocks; drops (and counts) when full.
pub fn submit_log(record: LogRecord) {
    let Some(p) = current() else { return };
    let Some(queue) = p.logs.as_ref() else { return };
    if p.stopped.load(Ordering::Relaxed) {
        return;
    }
    match queue.push(record) {
        Ok(()) => {
            p.log_stats.queued.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            p.log_stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
    p.ensure_worker();
}

/// This process's log counters: (exported, dropped because the queue was full, failed exports).
pub fn log_stats() -> (u64, u64, u64) {
    existing().map_or((0, 0, 0), |p| {
        let s = &p.log_stats;
        (s.exported.load(Ordering::Relaxed), s.dropped_queue_full.load(Ordering::Relaxed), s.export_failures.load(Ordering::Relaxed))
    })
}

fn request(make: fn(Sender<bool>) -> Control, timeout: Duration) -> bool {
    let Some(p) = existing() else { return true };
    if !p.started.load(Ordering::Acquire) {
        return p.queue.is_empty() && p.logs.as_ref().is_none_or(|q| q.is_empty());
    }
    let deadline = std::time::Instant::now() + timeout;
    let (ack_tx, ack_rx) = crossbeam_channel::bounded(8);
    if p.control_tx.send_timeout(make(ack_tx), timeout).is_err() {
        return false;
    }
    // Every thread's answer, until the last one drops its sender.
    let mut done = true;
    let mut answered = false;
    loop {
        match ack_rx.recv_deadline(deadline) {
            Ok(ok) => {
                done &= ok;
                answered = true;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return done && answered,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => return false,
        }
    }
}

/// Export everything queued so far; wait at most `timeout`. True when done in time.
pub fn flush(timeout: Duration) -> bool {
    request(Control::Flush, timeout)
}

/// A C-level `atexit` hook as well as Python's: some processes end without running Python's
/// `atexit` (the uwsgi master exits from C). Runs no Python; a second shutdown returns at once.
pub fn install_exit_hook() {
    extern "C" fn at_exit() {
        let _ = std::panic::catch_unwind(shutdown);
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        libc::atexit(at_exit);
    });
}

/// Flush and stop this process's export thread; later spans are ignored. Waits at most the
/// OTLP export timeout, so an unreachable collector cannot hold up interpreter exit for longer.
pub fn shutdown() -> bool {
    let done = shutdown_pipeline();
    remove_shared_metrics();
    done
}

/// The process that started the agent removes the directory its descendants shared for the
/// Prometheus endpoint (it exits last in a pre-fork server).
fn remove_shared_metrics() {
    let Some(s) = SETTINGS.get() else { return };
    let m = &s.config.metrics;
    if s.origin_pid == std::process::id() && m.exporters.contains(&crate::config::MetricsExporter::Prometheus) {
        let _ = std::fs::remove_dir_all(crate::metrics::prometheus::shared_dir(s.origin_pid, m.prometheus_port));
    }
}

fn shutdown_pipeline() -> bool {
    let Some(p) = existing() else { return true };
    if p.stopped.swap(true, Ordering::AcqRel) {
        return true; // already shut down (atexit, then the C-level exit hook)
    }
    let done = request(Control::Shutdown, p.settings.config.otlp.timeout);
    // One line when data was lost in ways not reported yet: a full queue, or a flush cut short.
    // Filtering and sampling are by design (counted in the metrics); a failing exporter has
    // already said so when it started failing.
    let s = p.stats.snapshot();
    if s.dropped_queue_full > 0 || !done {
        crate::log::warn(&format!(
            "at exit: {} spans started, {} exported, {} dropped because the queue was full, {} failed exports{}",
            s.spans_started,
            s.spans_exported,
            s.dropped_queue_full,
            s.export_failures,
            if done { "" } else { "; the final flush did not finish in time" }
        ));
    }
    let (logs_exported, logs_dropped, logs_failures) = log_stats();
    if logs_dropped > 0 {
        crate::log::warn(&format!(
            "at exit: {logs_exported} log records exported, {logs_dropped} dropped because the queue was full, {logs_failures} failed log exports"
        ));
    }
    done
}

/// This process's counters, if it has a pipeline.
pub fn stats() -> SelfStats {
    existing().map(|p| p.stats.snapshot()).unwrap_or_default()
}
