//! OTLP encoding of a metrics snapshot (cumulative temporality), with the semantic-convention
//! names and units.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;

use super::otlp::key_values;
use crate::metrics::snapshot::{self, Labels, Snapshot, DROP_REASON};
use crate::metrics::{DB_DURATION_BOUNDS, DURATION_BOUNDS};
use crate::resource::Resource;

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

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

fn point(s: &Snapshot, attributes: Vec<KeyValue>, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: s.start_ns,
        time_unix_nano: s.time_ns,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn sum(name: &str, description: &str, unit: &str, monotonic: bool, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum { data_points, aggregation_temporality: CUMULATIVE, is_monotonic: monotonic })),
        ..Default::default()
    }
}

fn histogram(s: &Snapshot, name: &str, description: &str, series: &[snapshot::Histogram], bounds: &[f64]) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: series
                .iter()
                .map(|h| HistogramDataPoint {
                    attributes: attrs(&h.labels),
                    start_time_unix_nano: s.start_ns,
                    time_unix_nano: s.time_ns,
                    count: h.count,
                    sum: Some(h.sum),
                    bucket_counts: h.counts.clone(),
                    explicit_bounds: bounds.to_vec(),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: CUMULATIVE,
        })),
        ..Default::default()
    }
}

pub fn encode(s: &Snapshot, resource: &Resource) -> ExportMetricsServiceRequest {
    let mut metrics = Vec::new();
    metrics.push(histogram(s, "http.server.request.duration", "Duration of HTTP server requests.", &s.durations, &DURATION_BOUNDS));
    if !s.client_durations.is_empty() {
        metrics.push(histogram(s, "http.client.request.duration", "Duration of HTTP client requests.", &s.client_durations, &DURATION_BOUNDS));
    }
    if !s.db_durations.is_empty() {
        metrics.push(histogram(s, "db.client.operation.duration", "Duration of database client operations.", &s.db_durations, &DB_DURATION_BOUNDS));
    }
    let active = s.active.iter().map(|g| point(s, attrs(&g.labels), g.value)).collect();
    metrics.push(sum("http.server.active_requests", "Number of active HTTP server requests.", "{request}", false, active));
    let slow = s.slow.iter().map(|c| point(s, attrs(&c.labels), c.value as i64)).collect();
    metrics.push(sum("ferrotel.http.server.slow_requests", "HTTP server requests slower than their threshold.", "{request}", true, slow));
    let errors = s.errors.iter().map(|c| point(s, attrs(&c.labels), c.value as i64)).collect();
    metrics.push(sum("ferrotel.http.server.error_requests", "HTTP server requests that ended in error.", "{request}", true, errors));
    let st = &s.stats;
    let one = |v: u64| vec![point(s, Vec::new(), v as i64)];
    metrics.push(sum("ferrotel.spans.started", "Spans started by the agent.", "{span}", true, one(st.spans_started)));
    metrics.push(sum("ferrotel.spans.exported", "Spans exported successfully.", "{span}", true, one(st.spans_exported)));
    metrics.push(sum("ferrotel.export.failures", "Failed export requests.", "{request}", true, one(st.export_failures)));
    let dropped = st.dropped().iter().map(|(reason, v)| point(s, attrs(&vec![(DROP_REASON.to_string(), reason.to_string())]), *v as i64)).collect();
    metrics.push(sum("ferrotel.spans.dropped", "Spans not exported, by reason.", "{span}", true, dropped));
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
}
