//! The export thread: wakes on a short tick (never per span), runs every queued span through the
//! processing chain and the RED aggregator, exports spans when a batch is full, when the schedule
//! delay has passed or on request, and exports metrics on their own interval. It builds its
//! exporters and resource itself, so everything it uses belongs to the process it runs in.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::{Control, Pipeline};
use crate::config::MetricsExporter;
use crate::export::logs::LogExporter;
use crate::export::{self, Otlp, SpanExporter};
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
    let resource = Resource::build(cfg, &p.settings.runtime);
    let chain = Chain::new(&cfg.processing, &cfg.limits);
    let mut spans = Spans::new(p);
    let mut metrics = Metrics::new(p);
    let mut logs = Logs::new(p);
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
        while let Some(mut span) = p.queue.pop() {
            chain.enrich(&mut span);
            if let Some(m) = metrics.as_mut() {
                m.red.observe(&span);
            }
            match chain.decide(&mut span) {
                Ok(()) => spans.add(span, &resource),
                Err(DropReason::Filtered) => drop(p.stats.filtered.fetch_add(1, Ordering::Relaxed)),
                Err(DropReason::SampledOut) => drop(p.stats.sampled_out.fetch_add(1, Ordering::Relaxed)),
            }
        }
        spans.maybe_send(&resource, ack.is_some());
        if let Some(l) = logs.as_mut() {
            l.drain(&resource, ack.is_some());
        }
        if let Some(m) = metrics.as_mut() {
            m.tick(&resource, ack.is_some());
        }
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        if stop {
            return;
        }
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

/// The span side: batching and the span exporters.
struct Spans {
    p: &'static Pipeline,
    exporters: Vec<Box<dyn SpanExporter>>,
    failing: Vec<bool>,
    batch: Vec<SpanRecord>,
    last_send: Instant,
}

impl Spans {
    fn new(p: &'static Pipeline) -> Self {
        let exporters = export::build(&p.settings.config);
        let failing = vec![false; exporters.len()];
        let batch = Vec::with_capacity(p.settings.config.batch.max_export_batch_size);
        Spans { p, exporters, failing, batch, last_send: Instant::now() }
    }

    fn add(&mut self, span: SpanRecord, resource: &Resource) {
        self.batch.push(span);
        if self.batch.len() >= self.p.settings.config.batch.max_export_batch_size {
            self.send(resource);
        }
    }

    fn maybe_send(&mut self, resource: &Resource, now: bool) {
        if now || self.last_send.elapsed() >= self.p.settings.config.batch.schedule_delay {
            if !self.batch.is_empty() {
                self.send(resource);
            }
            self.last_send = Instant::now();
        }
    }

    fn send(&mut self, resource: &Resource) {
        let mut ok = true;
        for (exporter, failing) in self.exporters.iter_mut().zip(self.failing.iter_mut()) {
            ok &= report(exporter.export(&self.batch, resource), failing, &exporter.target());
        }
        let stats = &self.p.stats;
        if ok {
            stats.exported.fetch_add(self.batch.len() as u64, Ordering::Relaxed);
        } else {
            stats.export_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.batch.clear();
    }
}

/// The log side: batching (`OTEL_BLRP_*`) and the log exporters.
struct Logs {
    p: &'static Pipeline,
    exporters: Vec<Box<dyn LogExporter>>,
    failing: Vec<bool>,
    batch: Vec<LogRecord>,
    last_send: Instant,
}

impl Logs {
    fn new(p: &'static Pipeline) -> Option<Self> {
        p.logs.as_ref()?;
        let cfg = &p.settings.config.logs;
        let exporters = export::logs::build(cfg);
        let failing = vec![false; exporters.len()];
        Some(Logs { p, exporters, failing, batch: Vec::with_capacity(cfg.batch.max_export_batch_size), last_send: Instant::now() })
    }

    /// Move queued records into batches; send full batches, and the rest when the schedule delay
    /// has passed or on request.
    fn drain(&mut self, resource: &Resource, now: bool) {
        let cfg = &self.p.settings.config.logs.batch;
        if let Some(queue) = self.p.logs.as_ref() {
            while let Some(rec) = queue.pop() {
                self.batch.push(rec);
                if self.batch.len() >= cfg.max_export_batch_size {
                    self.send(resource);
                }
            }
        }
        if now || self.last_send.elapsed() >= cfg.schedule_delay {
            if !self.batch.is_empty() {
                self.send(resource);
            }
            self.last_send = Instant::now();
        }
    }

    fn send(&mut self, resource: &Resource) {
        let mut ok = true;
        for (exporter, failing) in self.exporters.iter_mut().zip(self.failing.iter_mut()) {
            ok &= report(exporter.export(&self.batch, resource), failing, &format!("{} (logs)", exporter.target()));
        }
        let stats = &self.p.log_stats;
        if ok {
            stats.exported.fetch_add(self.batch.len() as u64, Ordering::Relaxed);
        } else {
            stats.export_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.batch.clear();
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

/// The metrics side: aggregation, OTLP metric export, the shared Prometheus endpoint.
struct Metrics {
    p: &'static Pipeline,
    red: Red,
    otlp: Option<(Otlp, bool)>,
    last_otlp: Instant,
    prometheus: Option<Prometheus>,
}

struct Prometheus {
    dir: std::path::PathBuf,
    serving: bool,
    last_publish: Instant,
    last_bind: Option<Instant>,
}

impl Metrics {
    fn new(p: &'static Pipeline) -> Option<Self> {
        let m = &p.settings.config.metrics;
        if m.exporters.is_empty() {
            return None;
        }
        let otlp = m.exporters.contains(&MetricsExporter::Otlp).then(|| (Otlp::new(&m.otlp), false));
        let prometheus = m.exporters.contains(&MetricsExporter::Prometheus).then(|| Prometheus {
            dir: prometheus::shared_dir(p.settings.origin_pid, m.prometheus_port),
            serving: false,
            last_publish: Instant::now() - PUBLISH_EVERY,
            last_bind: None,
        });
        Some(Metrics { p, red: Red::new(), otlp, last_otlp: Instant::now(), prometheus })
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = self.red.snapshot();
        s.stats = self.p.stats.snapshot();
        s
    }

    fn tick(&mut self, resource: &Resource, now: bool) {
        let cfg = &self.p.settings.config.metrics;
        if let Some((otlp, failing)) = self.otlp.as_mut() {
            if now || self.last_otlp.elapsed() >= cfg.interval {
                let snap = {
                    let mut s = self.red.snapshot();
                    s.stats = self.p.stats.snapshot();
                    s
                };
                report(otlp.export_metrics(&snap, resource), failing, &otlp.target());
                self.last_otlp = Instant::now();
            }
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
