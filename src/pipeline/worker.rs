//! The export thread: wakes on a short tick (never per span), exports when a batch is full, when
//! the schedule delay has passed, or on request; builds its exporters and resource itself, so
//! everything it uses belongs to the process it runs in.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::{Control, Pipeline};
use crate::export::{self, SpanExporter};
use crate::resource::Resource;
use crate::span::SpanRecord;

/// How often the thread looks at the queue between exports.
const TICK: Duration = Duration::from_millis(50);

pub(super) fn run(p: &'static Pipeline) {
    let cfg = &p.settings.config;
    let resource = Resource::build(cfg, &p.settings.runtime);
    let mut exporters = export::build(cfg);
    let mut failing = vec![false; exporters.len()];
    let batch_size = cfg.batch.max_export_batch_size;
    let delay = cfg.batch.schedule_delay;
    let tick = TICK.min(delay.max(Duration::from_millis(1)));
    let mut batch: Vec<SpanRecord> = Vec::with_capacity(batch_size);
    let mut last_export = Instant::now();
    loop {
        let (ack, stop) = match p.control_rx.recv_timeout(tick) {
            Ok(Control::Flush(ack)) => (Some(ack), false),
            Ok(Control::Shutdown(ack)) => (Some(ack), true),
            Err(RecvTimeoutError::Timeout) => (None, false),
            Err(RecvTimeoutError::Disconnected) => (None, true),
        };
        let due = ack.is_some() || p.queue.len() >= batch_size || last_export.elapsed() >= delay;
        if due {
            while let Some(span) = p.queue.pop() {
                batch.push(span);
                if batch.len() == batch_size {
                    send(p, &mut exporters, &mut failing, &mut batch, &resource);
                }
            }
            if !batch.is_empty() {
                send(p, &mut exporters, &mut failing, &mut batch, &resource);
            }
            last_export = Instant::now();
        }
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        if stop {
            return;
        }
    }
}

fn send(p: &Pipeline, exporters: &mut [Box<dyn SpanExporter>], failing: &mut [bool], batch: &mut Vec<SpanRecord>, resource: &Resource) {
    let mut ok = true;
    for (exporter, failing) in exporters.iter_mut().zip(failing.iter_mut()) {
        match exporter.export(batch, resource) {
            Ok(()) => {
                if *failing {
                    crate::log::warn(&format!("export to {} works again", exporter.target()));
                }
                *failing = false;
            }
            Err(e) => {
                ok = false;
                if !*failing {
                    crate::log::warn(&format!("export to {} failed: {e}; spans are dropped until it recovers", exporter.target()));
                }
                *failing = true;
            }
        }
    }
    if ok {
        p.stats.exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
    } else {
        p.stats.export_failures.fetch_add(1, Ordering::Relaxed);
    }
    batch.clear();
}
