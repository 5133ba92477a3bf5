//! The RED aggregator: runs on the export thread and sees every finished span (sampled or not,
//! filtered or not) after enrichment, so counts equal requests served and statements run. What a
//! span counts in is decided by its family: HTTP server spans (and API-bridge SERVER spans that
//! carry an HTTP method) feed the HTTP server metrics, HTTP client spans
//! `http.client.request.duration`, database spans `db.client.operation.duration`; a SERVER span
//! of another family (gRPC, a queue consumer) is not an HTTP request.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::snapshot::{Counter, Gauge, Histogram, Labels, Snapshot};
use super::cells::ServerKey;
use super::{active, DB_DURATION_BOUNDS, DURATION_BOUNDS};
use crate::processors::{errors, slow};
use crate::semconv::{self as sc, db};
use crate::span::{now_ns, Family, SpanKind, SpanRecord, Value};

/// Series found by a fingerprint of their label values, so observing a span allocates nothing
/// once its series exists (the hot case); the labels are built only for a new series.
struct Series<T> {
    index: HashMap<u64, Vec<usize>>,
    items: Vec<(Labels, T)>,
}

impl<T: Default> Default for Series<T> {
    fn default() -> Self {
        Series { index: HashMap::new(), items: Vec::new() }
    }
}

/// A label value as the span holds it (status codes are integers).
enum Lv<'a> {
    Str(&'a str),
    Int(i64),
}

fn value<'a>(span: &'a SpanRecord, key: &str) -> Option<Lv<'a>> {
    match span.get(key)? {
        Value::Str(s) => Some(Lv::Str(s)),
        Value::Int(i) => Some(Lv::Int(*i)),
        _ => None,
    }
}

fn same(stored: &str, v: &Lv<'_>) -> bool {
    match v {
        Lv::Str(s) => stored == *s,
        Lv::Int(i) => stored.parse::<i64>().ok() == Some(*i),
    }
}

impl<T: Default> Series<T> {
    /// The series for these (key, value) pairs (keys in sorted order; absent values skipped).
    fn get(&mut self, pairs: &[(&'static str, Option<Lv<'_>>)]) -> &mut T {
        let mut h = std::hash::DefaultHasher::new();
        for (k, v) in pairs {
            match v {
                Some(Lv::Str(s)) => (k, 0u8, s).hash(&mut h),
                Some(Lv::Int(i)) => (k, 1u8, i).hash(&mut h),
                None => (k, 2u8).hash(&mut h),
            }
        }
        let fp = h.finish();
        let present = || pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)));
        let found = self.index.get(&fp).and_then(|slots| {
            slots.iter().copied().find(|&i| {
                let labels = &self.items[i].0;
                labels.len() == present().count() && labels.iter().zip(present()).all(|((lk, lv), (k, v))| lk == k && same(lv, v))
            })
        });
        let i = match found {
            Some(i) => i,
            None => {
                let labels: Labels = present()
                    .map(|(k, v)| {
                        let v = match v {
                            Lv::Str(s) => s.to_string(),
                            Lv::Int(i) => i.to_string(),
                        };
                        (k.to_string(), v)
                    })
                    .collect();
                self.items.push((labels, T::default()));
                self.index.entry(fp).or_default().push(self.items.len() - 1);
                self.items.len() - 1
            }
        };
        &mut self.items[i].1
    }
}

#[derive(Default)]
struct Buckets {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Buckets {
    /// Add counts taken elsewhere (`cells`), bucket by bucket.
    fn merge(&mut self, counts: &[u64], sum: f64, count: u64) {
        if self.counts.len() < counts.len() {
            self.counts.resize(counts.len(), 0);
        }
        self.counts.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
        self.sum += sum;
        self.count += count;
    }

    fn add(&mut self, bounds: &[f64], seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let bucket = bounds.iter().position(|b| seconds <= *b).unwrap_or(bounds.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// The `db.client.operation.duration` attributes (sorted by key), from the conventions.
const DB_KEYS: [&str; 10] = [
    db::DB_COLLECTION_NAME,
    db::DB_NAMESPACE,
    db::DB_OPERATION_NAME,
    db::DB_QUERY_SUMMARY,
    db::DB_RESPONSE_STATUS_CODE,
    db::DB_STORED_PROCEDURE_NAME,
    db::DB_SYSTEM_NAME,
    sc::ERROR_TYPE,
    sc::SERVER_ADDRESS,
    sc::SERVER_PORT,
];

#[derive(Default)]
pub struct Red {
    start_ns: u64,
    durations: Series<Buckets>,
    client_durations: Series<Buckets>,
    db_durations: Series<Buckets>,
    slow: Series<u64>,
    errors: Series<u64>,
}

impl Red {
    pub fn new() -> Self {
        Red { start_ns: now_ns(), ..Default::default() }
    }

    pub fn observe(&mut self, span: &SpanRecord) {
        match (span.family, span.kind) {
            (Family::Db, _) => self.observe_db(span),
            (Family::Http, SpanKind::Server) => self.observe_http_server(span),
            (Family::Other, SpanKind::Server) if span.get(sc::HTTP_REQUEST_METHOD).is_some() => self.observe_http_server(span),
            (Family::Http | Family::Other, SpanKind::Client) if span.get(sc::HTTP_REQUEST_METHOD).is_some() => self.observe_http_client(span),
            _ => {}
        }
    }

    /// The conventions' attributes; `url.scheme` taken from `url.full`, which is what the
    /// client span carries.
    fn observe_http_client(&mut self, span: &SpanRecord) {
        let seconds = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e9;
        let scheme = value(span, sc::URL_SCHEME).or_else(|| match span.get(sc::URL_FULL) {
            Some(Value::Str(u)) => u.split_once("://").map(|(s, _)| Lv::Str(s)),
            _ => None,
        });
        let v = |k| (k, value(span, k));
        let pairs = [
            v(sc::ERROR_TYPE),
            v(sc::HTTP_REQUEST_METHOD),
            v(sc::HTTP_RESPONSE_STATUS_CODE),
            v(sc::NETWORK_PROTOCOL_VERSION),
            v(sc::SERVER_ADDRESS),
            v(sc::SERVER_PORT),
            (sc::URL_SCHEME, scheme),
        ];
        self.client_durations.get(&pairs).add(&DURATION_BOUNDS, seconds);
    }

    fn observe_db(&mut self, span: &SpanRecord) {
        let seconds = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e9;
        let pairs = DB_KEYS.map(|k| (k, value(span, k)));
        self.db_durations.get(&pairs).add(&DB_DURATION_BOUNDS, seconds);
    }

    fn observe_http_server(&mut self, span: &SpanRecord) {
        let seconds = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e9;
        // `network.protocol.version` takes a handful of values (1.0, 1.1, 2, 3): no series per request.
        let keys = [sc::ERROR_TYPE, sc::HTTP_REQUEST_METHOD, sc::HTTP_RESPONSE_STATUS_CODE, sc::HTTP_ROUTE, sc::NETWORK_PROTOCOL_VERSION, sc::URL_SCHEME];
        let pairs = keys.map(|k| (k, value(span, k)));
        self.durations.get(&pairs).add(&DURATION_BOUNDS, seconds);
        if slow::is_slow(span) {
            *self.slow.get(&[(sc::HTTP_REQUEST_METHOD, value(span, sc::HTTP_REQUEST_METHOD)), (sc::HTTP_ROUTE, value(span, sc::HTTP_ROUTE))]) += 1;
        }
        if errors::is_error(span) {
            let pairs = [
                (sc::ERROR_TYPE, value(span, sc::ERROR_TYPE)),
                (sc::HTTP_REQUEST_METHOD, value(span, sc::HTTP_REQUEST_METHOD)),
                (sc::HTTP_ROUTE, value(span, sc::HTTP_ROUTE)),
            ];
            *self.errors.get(&pairs) += 1;
        }
    }

    /// Requests counted on the request threads (`cells`: head-dropped requests that were neither
    /// errors nor slow), into the same series `observe` feeds.
    pub fn merge_server(&mut self, k: &ServerKey<'_>, counts: &[u64], sum: f64, count: u64) {
        let pairs = [
            (sc::ERROR_TYPE, None),
            (sc::HTTP_REQUEST_METHOD, Some(Lv::Str(k.method))),
            (sc::HTTP_RESPONSE_STATUS_CODE, k.status.map(Lv::Int)),
            (sc::HTTP_ROUTE, k.route.map(Lv::Str)),
            (sc::NETWORK_PROTOCOL_VERSION, k.protocol.map(Lv::Str)),
            (sc::URL_SCHEME, Some(Lv::Str(k.scheme))),
        ];
        self.durations.get(&pairs).merge(counts, sum, count);
    }

    /// Cumulative values now (the active gauge is read from the request-thread counters).
    pub fn snapshot(&self) -> Snapshot {
        let counters = |m: &Series<u64>| {
            let mut v: Vec<Counter> = m.items.iter().map(|(l, n)| Counter { labels: l.clone(), value: *n }).collect();
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            v
        };
        let histograms = |m: &Series<Buckets>| {
            let mut v: Vec<Histogram> = m.items.iter().map(|(l, b)| Histogram { labels: l.clone(), counts: b.counts.clone(), sum: b.sum, count: b.count }).collect();
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            v
        };
        let active = active::read()
            .into_iter()
            .map(|(m, s, v)| Gauge { labels: vec![(sc::HTTP_REQUEST_METHOD.into(), m.into()), (sc::URL_SCHEME.into(), s.into())], value: v })
            .collect();
        Snapshot {
            pid: std::process::id(),
            start_ns: self.start_ns,
            time_ns: now_ns(),
            durations: histograms(&self.durations),
            client_durations: histograms(&self.client_durations),
            db_durations: histograms(&self.db_durations),
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

    #[test]
    fn counts_from_the_request_threads_join_the_series_of_recorded_spans() {
        let mut red = Red::new();
        let mut s = server_span("/users/<int:uid>", 2);
        s.set(sc::HTTP_RESPONSE_STATUS_CODE, 200i64);
        s.set(sc::NETWORK_PROTOCOL_VERSION, "1.1");
        s.set(sc::URL_SCHEME, "http");
        red.observe(&s);
        let key = ServerKey { method: "GET", status: Some(200), route: Some("/users/<int:uid>"), protocol: Some("1.1"), scheme: "http" };
        let mut counts = vec![0u64; DURATION_BOUNDS.len() + 1];
        counts[0] = 3;
        counts[6] = 1;
        red.merge_server(&key, &counts, 0.2, 4);
        red.merge_server(&ServerKey { status: Some(404), route: None, ..key }, &counts, 0.2, 4);
        let snap = red.snapshot();
        assert_eq!(snap.durations.len(), 2, "the same labels are the same series");
        let users = snap.durations.iter().find(|h| h.labels.contains(&("http.route".into(), "/users/<int:uid>".into()))).unwrap();
        assert_eq!((users.count, users.counts[0], users.counts[6]), (5, 4, 1));
        assert!((users.sum - 0.202).abs() < 1e-9);
        let missing = snap.durations.iter().find(|h| h.count == 4).unwrap();
        assert_eq!(missing.labels, vec![
            ("http.request.method".to_string(), "GET".to_string()),
            ("http.response.status_code".into(), "404".into()),
            ("network.protocol.version".into(), "1.1".into()),
            ("url.scheme".into(), "http".into()),
        ]);
    }

    #[test]
    fn protocol_version_is_a_label_of_the_server_duration() {
        let mut red = Red::new();
        for (i, v) in ["1.1", "1.1", "2", "1.1"].iter().enumerate() {
            let mut s = server_span("/users/<int:uid>", 1 + i as u64);
            s.set(sc::NETWORK_PROTOCOL_VERSION, *v);
            s.set(sc::HTTP_RESPONSE_STATUS_CODE, 200i64);
            red.observe(&s);
        }
        let snap = red.snapshot();
        assert_eq!(snap.durations.len(), 2, "one series per protocol version, not per request");
        let h11 = snap.durations.iter().find(|h| h.labels.contains(&("network.protocol.version".into(), "1.1".into()))).unwrap();
        assert_eq!(h11.count, 3);
        let keys: Vec<&str> = h11.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "labels stay sorted: {keys:?}");
    }

    #[test]
    fn client_spans_feed_the_client_duration() {
        let mut red = Red::new();
        let client = |status: Option<i64>, error: Option<&str>| {
            let mut s = server_span("/", 20);
            s.kind = SpanKind::Client;
            s.family = Family::Http;
            s.attributes.clear();
            s.set(sc::HTTP_REQUEST_METHOD, "GET");
            s.set(sc::SERVER_ADDRESS, "api.example.com");
            s.set(sc::SERVER_PORT, 443i64);
            s.set(sc::URL_FULL, "https://api.example.com/v1/items?id=7");
            s.set(sc::NETWORK_PROTOCOL_VERSION, "1.1");
            if let Some(code) = status {
                s.set(sc::HTTP_RESPONSE_STATUS_CODE, code);
            }
            if let Some(e) = error {
                s.set(sc::ERROR_TYPE, e);
            }
            s
        };
        red.observe(&client(Some(200), None));
        red.observe(&client(Some(200), None));
        red.observe(&client(None, Some("urllib3.exceptions.NewConnectionError")));
        let mut db = server_span("/", 1);
        db.kind = SpanKind::Client;
        db.attributes.clear();
        db.set("db.system.name", "sqlite");
        red.observe(&db);
        let snap = red.snapshot();
        assert!(snap.durations.is_empty(), "client spans are not server requests");
        assert_eq!(snap.client_durations.len(), 2, "a client span without an HTTP method is not counted");
        let ok = snap.client_durations.iter().find(|h| h.count == 2).unwrap();
        assert_eq!(ok.labels, vec![
            ("http.request.method".to_string(), "GET".to_string()),
            ("http.response.status_code".into(), "200".into()),
            ("network.protocol.version".into(), "1.1".into()),
            ("server.address".into(), "api.example.com".into()),
            ("server.port".into(), "443".into()),
            ("url.scheme".into(), "https".into()),
        ]);
        let failed = snap.client_durations.iter().find(|h| h.count == 1).unwrap();
        assert_eq!(failed.labels[0], ("error.type".to_string(), "urllib3.exceptions.NewConnectionError".to_string()));
    }
}
