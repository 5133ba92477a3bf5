//! OTLP encoding of a metrics snapshot, with the semantic-convention names and units, in the
//! temporality `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` asks for (the OTLP metric
//! exporter's specification):
//!
//! | instrument (here)                                             | cumulative | delta | lowmemory |
//! |---------------------------------------------------------------|------------|-------|-----------|
//! | histogram (the duration histograms)                           | C          | D     | D         |
//! | counter (slow / error requests, counted per span)             | C          | D     | D         |
//! | asynchronous counter (`ferrotel.spans.*`, `ferrotel.export.failures`, read from the pipeline's counters) | C | D | C |
//! | up-down counter (`http.server.active_requests`)               | C          | C     | C         |
//!
//! Snapshots are always cumulative (one process's totals since its aggregator started); a delta
//! is the difference from the snapshot of the last *successful* export to the same exporter
//! (`Previous`), so a failed export's counts go out with the next one instead of being lost, and
//! each pre-fork worker, which has its own aggregator and its own `process.pid`, exports its own
//! deltas.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;

use super::otlp::key_values;
use crate::config::Temporality;
use crate::metrics::snapshot::{self, Labels, Snapshot, DROP_REASON};
use crate::metrics::{DB_DURATION_BOUNDS, DURATION_BOUNDS};
use crate::resource::Resource;

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

/// The instrument kinds, for the temporality table above.
#[derive(Clone, Copy)]
enum Kind {
    Histogram,
    Counter,
    AsyncCounter,
    UpDownCounter,
}

fn is_delta(t: Temporality, k: Kind) -> bool {
    match (t, k) {
        (Temporality::Cumulative, _) | (_, Kind::UpDownCounter) => false,
        (Temporality::Delta, _) => true,
        (Temporality::LowMemory, k) => !matches!(k, Kind::AsyncCounter),
    }
}

/// What an encoding needs besides the snapshot: the temporality, and the snapshot the last
/// successful export was made from (deltas are taken from it; `None`: the first export, whose
/// delta is everything since start).
#[derive(Clone, Copy)]
pub struct Encoding<'a> {
    pub temporality: Temporality,
    pub previous: Option<&'a Snapshot>,
}

impl Encoding<'_> {
    pub const CUMULATIVE: Encoding<'static> = Encoding { temporality: Temporality::Cumulative, previous: None };

    /// The start time and temporality of a point of this kind.
    fn of(&self, s: &Snapshot, k: Kind) -> (u64, i32) {
        if is_delta(self.temporality, k) {
            (self.previous.map_or(s.start_ns, |p| p.time_ns), DELTA)
        } else {
            (s.start_ns, CUMULATIVE)
        }
    }

    /// The previous snapshot when this kind is a delta.
    fn base(&self, k: Kind) -> Option<&Snapshot> {
        self.previous.filter(|_| is_delta(self.temporality, k))
    }
}

fn attrs(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| {
            // Status codes and ports are integers in the semantic conventions.
            let value = match (k.as_str(), v.parse::<i64>()) {
                ("http.response.status_code" | "server.port", Ok(i)) => any_value::Value::IntValue(i),
                _ => any_value::Value::StringValue(v.clone()),
            };
            KeyValue { key: k.clone(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
        })
        .collect()
}

fn point(start: u64, s: &Snapshot, attributes: Vec<KeyValue>, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: s.time_ns,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn sum(name: &str, description: &str, unit: &str, monotonic: bool, temporality: i32, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum { data_points, aggregation_temporality: temporality, is_monotonic: monotonic })),
        ..Default::default()
    }
}

/// Counter series as points: cumulative, or the change since `base` (series that did not change
/// are left out of a delta).
fn counter_points(start: u64, s: &Snapshot, series: &[snapshot::Counter], base: Option<&[snapshot::Counter]>) -> Vec<NumberDataPoint> {
    series
        .iter()
        .filter_map(|c| {
            let before = base.map(|b| b.iter().find(|x| x.labels == c.labels).map_or(0, |x| x.value));
            let value = c.value.saturating_sub(before.unwrap_or(0));
            (before.is_none() || value > 0).then(|| point(start, s, attrs(&c.labels), value as i64))
        })
        .collect()
}

fn histogram(s: &Snapshot, enc: &Encoding<'_>, name: &str, description: &str, pick: fn(&Snapshot) -> &Vec<snapshot::Histogram>, bounds: &[f64]) -> Metric {
    let (start, temporality) = enc.of(s, Kind::Histogram);
    let base = enc.base(Kind::Histogram).map(pick);
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: pick(s)
                .iter()
                .filter_map(|h| {
                    let mut h = h.clone();
                    if let Some(b) = base.and_then(|b| b.iter().find(|x| x.labels == h.labels)) {
                        for (c, before) in h.counts.iter_mut().zip(&b.counts) {
                            *c = c.saturating_sub(*before);
                        }
                        h.count = h.count.saturating_sub(b.count);
                        h.sum -= b.sum;
                        if h.count == 0 {
                            return None; // unchanged since the last export
                        }
                    }
                    Some(HistogramDataPoint {
                        attributes: attrs(&h.labels),
                        start_time_unix_nano: start,
                        time_unix_nano: s.time_ns,
                        count: h.count,
                        sum: Some(h.sum.max(0.0)),
                        bucket_counts: h.counts,
                        explicit_bounds: bounds.to_vec(),
                        ..Default::default()
                    })
                })
                .collect(),
            aggregation_temporality: temporality,
        })),
        ..Default::default()
    }
}

/// The snapshot as an export request, every metric cumulative.
pub fn encode(s: &Snapshot, resource: &Resource) -> ExportMetricsServiceRequest {
    encode_as(s, resource, &Encoding::CUMULATIVE)
}

/// The snapshot as an export request in the temporality `enc` says (see the table above).
pub fn encode_as(s: &Snapshot, resource: &Resource, enc: &Encoding<'_>) -> ExportMetricsServiceRequest {
    let mut metrics = Vec::new();
    metrics.push(histogram(s, enc, "http.server.request.duration", "Duration of HTTP server requests.", |s| &s.durations, &DURATION_BOUNDS));
    if !s.client_durations.is_empty() {
        metrics.push(histogram(s, enc, "http.client.request.duration", "Duration of HTTP client requests.", |s| &s.client_durations, &DURATION_BOUNDS));
    }
    if !s.db_durations.is_empty() {
        metrics.push(histogram(s, enc, "db.client.operation.duration", "Duration of database client operations.", |s| &s.db_durations, &DB_DURATION_BOUNDS));
    }
    let (start, t) = enc.of(s, Kind::UpDownCounter);
    let active = s.active.iter().map(|g| point(start, s, attrs(&g.labels), g.value)).collect();
    metrics.push(sum("http.server.active_requests", "Number of active HTTP server requests.", "{request}", false, t, active));
    let (start, t) = enc.of(s, Kind::Counter);
    let base = enc.base(Kind::Counter);
    let slow = counter_points(start, s, &s.slow, base.map(|b| b.slow.as_slice()));
    metrics.push(sum("ferrotel.http.server.slow_requests", "HTTP server requests slower than their threshold.", "{request}", true, t, slow));
    let errors = counter_points(start, s, &s.errors, base.map(|b| b.errors.as_slice()));
    metrics.push(sum("ferrotel.http.server.error_requests", "HTTP server requests that ended in error.", "{request}", true, t, errors));
    // The pipeline's own counters are observed (read at collection), not counted per event.
    let (start, t) = enc.of(s, Kind::AsyncCounter);
    let st = &s.stats;
    let before = enc.base(Kind::AsyncCounter).map(|b| b.stats.clone()).unwrap_or_default();
    let one = |v: u64, b: u64| vec![point(start, s, Vec::new(), v.saturating_sub(b) as i64)];
    metrics.push(sum("ferrotel.spans.started", "Spans started by the agent.", "{span}", true, t, one(st.spans_started, before.spans_started)));
    metrics.push(sum("ferrotel.spans.exported", "Spans exported successfully.", "{span}", true, t, one(st.spans_exported, before.spans_exported)));
    metrics.push(sum("ferrotel.export.failures", "Failed export requests.", "{request}", true, t, one(st.export_failures, before.export_failures)));
    let dropped = st
        .dropped()
        .iter()
        .zip(before.dropped())
        .map(|((reason, v), (_, b))| point(start, s, attrs(&vec![(DROP_REASON.to_string(), reason.to_string())]), v.saturating_sub(b) as i64))
        .collect();
    metrics.push(sum("ferrotel.spans.dropped", "Spans not exported, by reason.", "{span}", true, t, dropped));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(PbResource { attributes: key_values(&resource.attributes), ..Default::default() }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: "ferrotel".into(), version: env!("CARGO_PKG_VERSION").into(), ..Default::default() }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::{Histogram as H, SelfStats};

    fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
        req.resource_metrics[0].scope_metrics[0].metrics.iter().find(|m| m.name == name)
    }

    #[test]
    fn names_units_and_attribute_types_follow_the_registries() {
        let labels: Labels = vec![
            ("http.request.method".into(), "GET".into()),
            ("http.response.status_code".into(), "200".into()),
            ("server.address".into(), "api".into()),
            ("server.port".into(), "8080".into()),
        ];
        let h = H { labels, counts: vec![1; DURATION_BOUNDS.len() + 1], sum: 1.0, count: 15 };
        let s = Snapshot { client_durations: vec![h], stats: SelfStats { dropped_filtered: 2, ..Default::default() }, ..Default::default() };
        let req = encode(&s, &Resource::default());
        let client = metric(&req, "http.client.request.duration").expect("client duration");
        assert_eq!(client.unit, "s");
        let Some(metric::Data::Histogram(hist)) = &client.data else { panic!("not a histogram") };
        let int = |key: &str| hist.data_points[0].attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()).and_then(|v| v.value);
        assert_eq!(int("server.port"), Some(any_value::Value::IntValue(8080)));
        assert_eq!(int("http.response.status_code"), Some(any_value::Value::IntValue(200)));
        let Some(metric::Data::Sum(dropped)) = &metric(&req, "ferrotel.spans.dropped").unwrap().data else { panic!("not a sum") };
        let keys: Vec<&str> = dropped.data_points.iter().flat_map(|p| p.attributes.iter().map(|kv| kv.key.as_str())).collect();
        assert_eq!(keys, vec!["ferrotel.drop.reason"; 3]);
        assert!(metric(&encode(&Snapshot::default(), &Resource::default()), "http.client.request.duration").is_none(), "no calls, no metric");
    }

    fn snap(time_ns: u64, requests: u64, errors: u64, started: u64, active: i64) -> Snapshot {
        let labels: Labels = vec![("http.route".into(), "/".into())];
        Snapshot {
            start_ns: 100,
            time_ns,
            durations: vec![H { labels: labels.clone(), counts: vec![requests, 0], sum: requests as f64 * 0.5, count: requests }],
            errors: vec![snapshot::Counter { labels: labels.clone(), value: errors }],
            active: vec![snapshot::Gauge { labels, value: active }],
            stats: SelfStats { spans_started: started, ..Default::default() },
            ..Default::default()
        }
    }

    /// (temporality, start time, values) of the first data points of a metric.
    fn read(req: &ExportMetricsServiceRequest, name: &str) -> (i32, Vec<(u64, f64)>) {
        match &metric(req, name).unwrap().data {
            Some(metric::Data::Histogram(h)) => (h.aggregation_temporality, h.data_points.iter().map(|p| (p.start_time_unix_nano, p.count as f64)).collect()),
            Some(metric::Data::Sum(s)) => (
                s.aggregation_temporality,
                s.data_points
                    .iter()
                    .map(|p| {
                        let Some(number_data_point::Value::AsInt(v)) = p.value else { panic!("not an int") };
                        (p.start_time_unix_nano, v as f64)
                    })
                    .collect(),
            ),
            _ => panic!("unexpected data"),
        }
    }

    #[test]
    fn temporality_preference_follows_the_exporter_spec() {
        let (first, second) = (snap(1000, 5, 1, 5, 2), snap(2000, 8, 3, 9, 1));
        let r = Resource::default();
        let enc = |t, prev| encode_as(&second, &r, &Encoding { temporality: t, previous: prev });
        // Cumulative: everything since start.
        let c = enc(Temporality::Cumulative, Some(&first));
        assert_eq!(read(&c, "http.server.request.duration"), (CUMULATIVE, vec![(100, 8.0)]));
        assert_eq!(read(&c, "ferrotel.spans.started"), (CUMULATIVE, vec![(100, 9.0)]));
        // Delta: histograms, counters and asynchronous counters since the last export.
        let d = enc(Temporality::Delta, Some(&first));
        assert_eq!(read(&d, "http.server.request.duration"), (DELTA, vec![(1000, 3.0)]));
        assert_eq!(read(&d, "ferrotel.http.server.error_requests"), (DELTA, vec![(1000, 2.0)]));
        assert_eq!(read(&d, "ferrotel.spans.started"), (DELTA, vec![(1000, 4.0)]));
        assert_eq!(read(&d, "http.server.active_requests"), (CUMULATIVE, vec![(100, 1.0)]), "up-down counters stay cumulative");
        // Low memory: asynchronous counters cumulative, synchronous ones delta.
        let l = enc(Temporality::LowMemory, Some(&first));
        assert_eq!(read(&l, "http.server.request.duration"), (DELTA, vec![(1000, 3.0)]));
        assert_eq!(read(&l, "ferrotel.http.server.error_requests"), (DELTA, vec![(1000, 2.0)]));
        assert_eq!(read(&l, "ferrotel.spans.started"), (CUMULATIVE, vec![(100, 9.0)]));
        assert_eq!(read(&l, "http.server.active_requests"), (CUMULATIVE, vec![(100, 1.0)]));
        // The first delta export counts from start; an unchanged series is left out.
        assert_eq!(read(&enc(Temporality::Delta, None), "http.server.request.duration"), (DELTA, vec![(100, 8.0)]));
        let same = encode_as(&second, &r, &Encoding { temporality: Temporality::Delta, previous: Some(&second) });
        assert_eq!(read(&same, "http.server.request.duration"), (DELTA, vec![]));
        assert_eq!(read(&same, "ferrotel.spans.started"), (DELTA, vec![(2000, 0.0)]));
    }
}
