//! The Prometheus scrape endpoint (`OTEL_METRICS_EXPORTER=prometheus`).
//!
//! Pre-fork servers: every worker aggregates its own requests, but only one process can listen on
//! the port. So each process writes its cumulative snapshot to a directory shared by every
//! process descended from the one that started the agent (`$TMPDIR/ferrotel-metrics-<uid>-<pid
//! that started the agent>-<port>`; spawned Python children find that pid in `ORIGIN_VAR`), every
//! half second and at exit. The process that started the agent serves `/metrics` from start-up
//! (`serve_from_start`: an idle server answers too), merging all snapshots at scrape time; if it
//! cannot (the port is taken for now, or it exits), workers retry binding every few seconds, so
//! one of them takes over. Counters and
//! histograms of exited workers stay in the sum (they are cumulative); their gauges are dropped.
//! The text format is written here rather than through a registry crate: the series come from
//! merged snapshots of several processes, not from one process's live instruments.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use super::snapshot::{Labels, Snapshot, DROP_REASON};
use super::{DB_DURATION_BOUNDS, DURATION_BOUNDS};

/// The directory the processes of one agent start-up share.
pub fn shared_dir(origin_pid: u32, port: u16) -> PathBuf {
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("ferrotel-metrics-{uid}-{origin_pid}-{port}"))
}

/// Write this process's snapshot (atomically: temp file + rename).
pub fn publish(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let pid = std::process::id();
    let tmp = dir.join(format!(".{pid}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(snap).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, dir.join(format!("{pid}.json")))
}

fn alive(pid: u32) -> bool {
    unsafe { libc::kill(pid as i32, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// Every process's snapshot in `dir`, merged.
pub fn collect(dir: &Path) -> Snapshot {
    let mut total = Snapshot::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return total };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_suffix(".json")).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(bytes) = std::fs::read(entry.path()) else { continue };
        if let Ok(snap) = serde_json::from_slice::<Snapshot>(&bytes) {
            total.merge(&snap, alive(pid));
        }
    }
    total
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn label_text(labels: &Labels, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{}=\"{}\"", k.replace('.', "_"), escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

fn histogram(out: &mut String, name: &str, help: &str, series: &[super::snapshot::Histogram], bounds: &[f64]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for h in series {
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().chain(std::iter::once(&f64::INFINITY)).enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_text(&h.labels, Some(("le", &number(*bound)))));
        }
        let _ = writeln!(out, "{name}_sum{} {}", label_text(&h.labels, None), number(h.sum));
        let _ = writeln!(out, "{name}_count{} {}", label_text(&h.labels, None), h.count);
    }
}

/// Prometheus text exposition format 0.0.4.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    histogram(&mut out, "http_server_request_duration_seconds", "Duration of HTTP server requests.", &s.durations, &DURATION_BOUNDS);
    histogram(&mut out, "http_client_request_duration_seconds", "Duration of HTTP client requests.", &s.client_durations, &DURATION_BOUNDS);
    histogram(&mut out, "db_client_operation_duration_seconds", "Duration of database client operations.", &s.db_durations, &DB_DURATION_BOUNDS);
    let name = "http_server_active_requests";
    let _ = writeln!(out, "# HELP {name} Number of active HTTP server requests.\n# TYPE {name} gauge");
    for g in &s.active {
        let _ = writeln!(out, "{name}{} {}", label_text(&g.labels, None), g.value);
    }
    for (name, help, series) in [
        ("ferrotel_http_server_slow_requests_total", "HTTP server requests slower than their threshold.", &s.slow),
        ("ferrotel_http_server_error_requests_total", "HTTP server requests that ended in error.", &s.errors),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for c in series {
            let _ = writeln!(out, "{name}{} {}", label_text(&c.labels, None), c.value);
        }
    }
    let st = &s.stats;
    for (name, help, value) in [
        ("ferrotel_spans_started_total", "Spans started by the agent.", st.spans_started),
        ("ferrotel_spans_exported_total", "Spans exported successfully.", st.spans_exported),
        ("ferrotel_export_failures_total", "Failed export requests.", st.export_failures),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    let name = "ferrotel_spans_dropped_total";
    let _ = writeln!(out, "# HELP {name} Spans not exported, by reason.\n# TYPE {name} counter");
    for (reason, v) in st.dropped() {
        let _ = writeln!(out, "{name}{} {v}", label_text(&vec![(DROP_REASON.to_string(), reason.to_string())], None));
    }
    out
}

/// The variable through which the process that started the agent tells the Python processes it
/// spawns (uvicorn's `--workers`, multiprocessing's spawn, Django's autoreloader) to publish into
/// its shared directory: its pid.
pub const ORIGIN_VAR: &str = "FERROTEL_PROMETHEUS_ORIGIN";

/// The pid whose shared directory this process publishes into: an ancestor that set
/// `ORIGIN_VAR` and is still alive, else this process (which then sets the variable for the
/// processes it spawns). Called once at start-up, while the interpreter is still starting.
pub fn origin() -> u32 {
    let me = std::process::id();
    if let Some(pid) = std::env::var(ORIGIN_VAR).ok().and_then(|v| v.trim().parse::<u32>().ok()) {
        if pid != me && pid > 1 && alive(pid) {
            return pid;
        }
    }
    std::env::set_var(ORIGIN_VAR, me.to_string());
    me
}

/// The listening socket of the endpoint this process serves, so a forked child can close its
/// inherited copy (a child that outlives the parent must not hold a port nobody answers on).
static LISTENER: AtomicI32 = AtomicI32::new(-1);
/// The process whose thread serves the endpoint (0: none).
static SERVING_PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn close_inherited_listener() {
    // In the forked child: only async-signal-safe calls (close) and atomics.
    let fd = LISTENER.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
}

/// Whether this process serves `/metrics` (its export thread then need not try the port).
pub fn served_here() -> bool {
    SERVING_PID.load(Ordering::Relaxed) == std::process::id()
}

/// Serve `/metrics` from start-up, before any request: an idle server must not look down to
/// Prometheus. Called in the process that started the agent (a pre-fork master, a single-process
/// server, uvicorn's supervisor). One thread, started before any fork: it only waits in `accept`
/// (and retries the port every few seconds while another process holds it), shares nothing with
/// the request path, and a forked child closes its copy of the socket (`pthread_atfork`) and
/// publishes its own snapshot for this thread to merge. The thread owns no state a child needs.
pub fn serve_from_start(host: String, port: u16, dir: PathBuf, retry: Duration) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(close_inherited_listener));
    });
    let spawned = std::thread::Builder::new().name("ferrotel-prometheus".into()).spawn(move || {
        let me = std::process::id();
        loop {
            match bind(&host, port) {
                Ok(Some(listener)) => {
                    if std::process::id() != me {
                        return; // forked while binding: this copy is not the serving process
                    }
                    LISTENER.store(listener.as_raw_fd(), Ordering::SeqCst);
                    SERVING_PID.store(me, Ordering::SeqCst);
                    serve(listener, dir);
                    return;
                }
                Ok(None) => std::thread::sleep(retry), // another process holds it (for now)
                Err(e) => {
                    crate::log::warn_once("prometheus-bind", &format!("cannot listen on {host}:{port} for /metrics ({e})"));
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        crate::log::warn_once("prometheus-bind", &format!("cannot start the /metrics thread ({e})"));
    }
}

/// Try to take the port; `Ok(None)` when another process holds it.
pub fn bind(host: &str, port: u16) -> std::io::Result<Option<TcpListener>> {
    match TcpListener::bind((host, port)) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// Serve `/metrics` (and nothing else) from merged snapshots, one connection at a time.
pub fn serve(listener: TcpListener, dir: PathBuf) {
    for stream in listener.incoming().flatten() {
        let _ = respond(stream, &dir);
    }
}

fn respond(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(&collect(dir))),
        ("GET", _) => ("404 Not Found", "text/plain", "not found: this endpoint serves /metrics only\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "method not allowed\n".into()),
    };
    write!(stream, "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::{Counter, Histogram};

    #[test]
    fn renders_cumulative_buckets() {
        let labels: Labels = vec![("http.request.method".into(), "GET".into()), ("http.route".into(), "/a\"b".into())];
        let mut counts = vec![0; DURATION_BOUNDS.len() + 1];
        counts[0] = 2;
        counts[3] = 1;
        let s = Snapshot {
            durations: vec![Histogram { labels: labels.clone(), counts, sum: 0.06, count: 3 }],
            slow: vec![Counter { labels, value: 1 }],
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.contains("http_server_request_duration_seconds_bucket{http_request_method=\"GET\",http_route=\"/a\\\"b\",le=\"0.005\"} 2"));
        assert!(text.contains("le=\"0.05\"} 3"));
        assert!(text.contains("le=\"+Inf\"} 3"));
        assert!(text.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/a\\\"b\"} 3"));
        assert!(text.contains("ferrotel_http_server_slow_requests_total{http_request_method=\"GET\",http_route=\"/a\\\"b\"} 1"));
        assert!(text.contains("ferrotel_spans_dropped_total{ferrotel_drop_reason=\"queue_full\"} 0"));
    }

    #[test]
    fn renders_the_client_duration() {
        let labels: Labels = vec![("http.request.method".into(), "GET".into()), ("server.address".into(), "api".into()), ("server.port".into(), "443".into())];
        let mut counts = vec![0; DURATION_BOUNDS.len() + 1];
        counts[2] = 1;
        let text = render(&Snapshot { client_durations: vec![Histogram { labels, counts, sum: 0.02, count: 1 }], ..Default::default() });
        assert!(text.contains("# TYPE http_client_request_duration_seconds histogram"));
        assert!(text.contains("http_client_request_duration_seconds_count{http_request_method=\"GET\",server_address=\"api\",server_port=\"443\"} 1"));
    }

    #[test]
    fn publishes_and_collects_across_processes() {
        let dir = std::env::temp_dir().join(format!("ferrotel-test-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut snap = Snapshot { pid: std::process::id(), ..Default::default() };
        snap.stats.spans_started = 4;
        publish(&dir, &snap).unwrap();
        // A snapshot left by a process that has exited (pid 0x7ffffffe is never a live pid).
        std::fs::write(dir.join("2147483646.json"), serde_json::to_vec(&snap).unwrap()).unwrap();
        assert_eq!(collect(&dir).stats.spans_started, 8);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
