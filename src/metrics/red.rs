//! The RED aggregator: runs on the export thread and sees every finished server span (sampled or
//! not, filtered or not) after enrichment, so counts equal requests served.

use std::collections::HashMap;

use super::snapshot::{Counter, Gauge, Histogram, Labels, Snapshot};
use super::{active, DURATION_BOUNDS};
use crate::processors::{errors, slow};
use crate::semconv as sc;
use crate::span::{now_ns, SpanKind, SpanRecord, Value};

#[derive(Default)]
pub struct Red {
    start_ns: u64,
    durations: HashMap<Labels, Histogram>,
    slow: HashMap<Labels, u64>,
    errors: HashMap<Labels, u64>,
}

fn label(span: &SpanRecord, key: &'static str, out: &mut Labels) {
    let v = match span.get(key) {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        _ => return,
    };
    out.push((key.to_string(), v));
}

impl Red {
    pub fn new() -> Self {
        Red { start_ns: now_ns(), ..Default::default() }
    }

    pub fn observe(&mut self, span: &SpanRecord) {
        if span.kind != SpanKind::Server {
            return;
        }
        let seconds = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e9;
        let mut labels = Labels::with_capacity(5);
        for key in [sc::ERROR_TYPE, sc::HTTP_REQUEST_METHOD, sc::HTTP_RESPONSE_STATUS_CODE, sc::HTTP_ROUTE, sc::URL_SCHEME] {
            label(span, key, &mut labels); // already in key order
        }
        let h = self.durations.entry(labels).or_insert_with_key(|l| Histogram {
            labels: l.clone(),
            counts: vec![0; DURATION_BOUNDS.len() + 1],
            ..Default::default()
        });
        let bucket = DURATION_BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(DURATION_BOUNDS.len());
        h.counts[bucket] += 1;
        h.sum += seconds;
        h.count += 1;
        let mut route = Labels::with_capacity(3);
        label(span, sc::HTTP_REQUEST_METHOD, &mut route);
        label(span, sc::HTTP_ROUTE, &mut route);
        if slow::is_slow(span) {
            *self.slow.entry(route.clone()).or_default() += 1;
        }
        if errors::is_error(span) {
            let mut l = route;
            label(span, sc::ERROR_TYPE, &mut l);
            l.sort();
            *self.errors.entry(l).or_default() += 1;
        }
    }

    /// Cumulative values now (the active gauge is read from the request-thread counters).
    pub fn snapshot(&self) -> Snapshot {
        let counters = |m: &HashMap<Labels, u64>| {
            let mut v: Vec<Counter> = m.iter().map(|(l, n)| Counter { labels: l.clone(), value: *n }).collect();
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            v
        };
        let mut durations: Vec<Histogram> = self.durations.values().cloned().collect();
        durations.sort_by(|a, b| a.labels.cmp(&b.labels));
        let active = active::read()
            .into_iter()
            .map(|(m, s, v)| Gauge { labels: vec![(sc::HTTP_REQUEST_METHOD.into(), m.into()), (sc::URL_SCHEME.into(), s.into())], value: v })
            .collect();
        Snapshot {
            pid: std::process::id(),
            start_ns: self.start_ns,
            time_ns: now_ns(),
            durations,
            slow: counters(&self.slow),
            errors: counters(&self.errors),
            active,
            stats: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::test_support::server_span;
    use crate::span::Status;

    #[test]
    fn aggregates_durations_slow_and_errors() {
        let mut red = Red::new();
        for ms in [1, 2, 150] {
            let mut s = server_span("/", ms);
            s.set(sc::HTTP_RESPONSE_STATUS_CODE, 200i64);
            if ms == 150 {
                s.set(slow::SLOW, true);
            }
            red.observe(&s);
        }
        let mut e = server_span("/error", 3);
        e.status = Status::Error(String::new());
        e.set(sc::ERROR_TYPE, "ValueError");
        e.set(sc::HTTP_RESPONSE_STATUS_CODE, 500i64);
        red.observe(&e);
        let snap = red.snapshot();
        assert_eq!(snap.durations.len(), 2);
        let root = snap.durations.iter().find(|h| h.labels.contains(&("http.route".into(), "/".into()))).unwrap();
        assert_eq!(root.count, 3);
        assert_eq!(root.counts[0], 2, "1 ms and 2 ms fall in the first bucket");
        assert_eq!(root.counts[6], 1, "150 ms falls in the 0.25 s bucket");
        assert_eq!(snap.slow[0].value, 1);
        assert_eq!(snap.errors[0].labels, vec![
            ("error.type".to_string(), "ValueError".to_string()),
            ("http.request.method".into(), "GET".into()),
            ("http.route".into(), "/error".into())
        ]);
    }
}
