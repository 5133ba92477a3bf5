//! One process's cumulative metric values: what the aggregator produces, what is written for the
//! multi-process Prometheus endpoint, merged across processes, and encoded for OTLP.

use serde::{Deserialize, Serialize};

/// Attribute set of one series, sorted by key (semantic-convention names, with dots).
pub type Labels = Vec<(String, String)>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub labels: Labels,
    /// One count per bucket of `DURATION_BOUNDS`, plus the overflow bucket.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    pub labels: Labels,
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gauge {
    pub labels: Labels,
    pub value: i64,
}

/// The attribute of `ferrotel.spans.dropped` (Prometheus label `ferrotel_drop_reason`); it was the
/// un-namespaced `reason` before the project's registry (`semconv/ferrotel.yaml`).
pub const DROP_REASON: &str = "ferrotel.drop.reason";

/// The agent's own counters (self-telemetry).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SelfStats {
    pub spans_started: u64,
    pub spans_exported: u64,
    pub dropped_queue_full: u64,
    pub dropped_filtered: u64,
    pub dropped_sampled_out: u64,
    pub export_failures: u64,
}

impl SelfStats {
    /// `ferrotel.spans.dropped`, one value per `ferrotel.drop.reason` (its registry members).
    pub fn dropped(&self) -> [(&'static str, u64); 3] {
        [("queue_full", self.dropped_queue_full), ("filtered", self.dropped_filtered), ("sampled_out", self.dropped_sampled_out)]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub pid: u32,
    pub start_ns: u64,
    pub time_ns: u64,
    pub durations: Vec<Histogram>,
    /// `http.client.request.duration` (HTTP CLIENT spans); absent in snapshots of older versions.
    #[serde(default)]
    pub client_durations: Vec<Histogram>,
    /// `db.client.operation.duration` (buckets of `DB_DURATION_BOUNDS`).
    #[serde(default)]
    pub db_durations: Vec<Histogram>,
    pub slow: Vec<Counter>,
    pub errors: Vec<Counter>,
    pub active: Vec<Gauge>,
    pub stats: SelfStats,
}

impl Snapshot {
    /// Add `other` into `self`, series by series. `live` says whether `other`'s process is still
    /// running: a dead process's counters stay (they are cumulative), its gauges do not.
    pub fn merge(&mut self, other: &Snapshot, live: bool) {
        merge_histograms(&mut self.durations, &other.durations);
        merge_histograms(&mut self.client_durations, &other.client_durations);
        merge_histograms(&mut self.db_durations, &other.db_durations);
        merge_counters(&mut self.slow, &other.slow);
        merge_counters(&mut self.errors, &other.errors);
        if live {
            for g in &other.active {
                match self.active.iter_mut().find(|x| x.labels == g.labels) {
                    Some(x) => x.value += g.value,
                    None => self.active.push(g.clone()),
                }
            }
        }
        let (s, o) = (&mut self.stats, &other.stats);
        s.spans_started += o.spans_started;
        s.spans_exported += o.spans_exported;
        s.dropped_queue_full += o.dropped_queue_full;
        s.dropped_filtered += o.dropped_filtered;
        s.dropped_sampled_out += o.dropped_sampled_out;
        s.export_failures += o.export_failures;
    }
}

fn merge_histograms(into: &mut Vec<Histogram>, from: &[Histogram]) {
    for h in from {
        match into.iter_mut().find(|x| x.labels == h.labels) {
            Some(x) => {
                for (a, b) in x.counts.iter_mut().zip(&h.counts) {
                    *a += b;
                }
                x.sum += h.sum;
                x.count += h.count;
            }
            None => into.push(h.clone()),
        }
    }
}

fn merge_counters(into: &mut Vec<Counter>, from: &[Counter]) {
    for c in from {
        match into.iter_mut().find(|x| x.labels == c.labels) {
            Some(x) => x.value += c.value,
            None => into.push(c.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: u64, active: i64) -> Snapshot {
        let labels: Labels = vec![("http.route".into(), "/".into())];
        Snapshot {
            durations: vec![Histogram { labels: labels.clone(), counts: vec![n, 0], sum: n as f64, count: n }],
            client_durations: vec![Histogram { labels: labels.clone(), counts: vec![n, 0], sum: n as f64, count: n }],
            errors: vec![Counter { labels: labels.clone(), value: n }],
            active: vec![Gauge { labels, value: active }],
            stats: SelfStats { spans_started: n, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn merges_live_and_dead_processes() {
        let mut total = Snapshot::default();
        total.merge(&snap(3, 1), true);
        total.merge(&snap(2, 5), false);
        assert_eq!(total.durations[0].count, 5);
        assert_eq!(total.durations[0].counts, vec![5, 0]);
        assert_eq!(total.client_durations[0].count, 5);
        assert_eq!(total.errors[0].value, 5);
        assert_eq!(total.active[0].value, 1, "a dead process's gauge is gone");
        assert_eq!(total.stats.spans_started, 5);
    }

    #[test]
    fn reads_snapshots_without_client_durations() {
        // A snapshot written by an older agent (pre-fork workers of a rolling upgrade).
        let old = r#"{"pid":1,"start_ns":0,"time_ns":0,"durations":[],"slow":[],"errors":[],"active":[],"stats":{"spans_started":1,"spans_exported":0,"dropped_queue_full":0,"dropped_filtered":0,"dropped_sampled_out":0,"export_failures":0}}"#;
        let s: Snapshot = serde_json::from_str(old).unwrap();
        assert!(s.client_durations.is_empty());
    }
}
