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
//!
//! Worker churn (`gunicorn --max-requests`, `uwsgi --max-requests`): a snapshot file is named
//! after its process's pid *and start time* (`<pid>-<start>.json`, the start time in clock ticks
//! from `/proc/<pid>/stat`), so a process is alive only if a process with that pid and that start
//! time exists: a recycled pid is a new process with a new file, not a counter reset of the old
//! one. At each scrape, under a lock on the directory, the files of exited processes are folded
//! into one `retained.json` (their counters and histograms) and removed: the directory holds at
//! most one file per live process plus one. Scrapes are answered on a thread each (a few at
//! once), so one slow scraper does not hold up the others.
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

/// The totals of exited processes, folded in by `collect`.
const RETAINED: &str = "retained.json";

/// A process's start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`); `None` when
/// it does not exist (or `/proc` is not there).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses; the fields after it are plain.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// This process's snapshot file name.
fn own_file_name() -> String {
    let pid = std::process::id();
    match start_time(pid) {
        Some(start) => format!("{pid}-{start}.json"),
        None => format!("{pid}.json"),
    }
}

/// Write this process's snapshot (atomically: temp file + rename).
pub fn publish(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let pid = std::process::id();
    let tmp = dir.join(format!(".{pid}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(snap).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, dir.join(own_file_name()))
}

fn alive(pid: u32) -> bool {
    unsafe { libc::kill(pid as i32, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// Whether the process that wrote the snapshot file `name` still runs: `(pid, alive)`, or `None`
/// for a name that is not a snapshot's.
fn writer(name: &str) -> Option<(u32, bool)> {
    let stem = name.strip_suffix(".json")?;
    match stem.split_once('-') {
        Some((pid, start)) => {
            let (pid, start) = (pid.parse::<u32>().ok()?, start.parse::<u64>().ok()?);
            Some((pid, start_time(pid) == Some(start)))
        }
        // An agent of an older version (rolling upgrade): its pid only.
        None => stem.parse::<u32>().ok().map(|pid| (pid, alive(pid))),
    }
}

/// An exclusive `flock` on the directory's lock file while it lives (collectors fold and
/// remove files under it; publishers never take it: they only rename their own file).
struct DirLock(Option<std::fs::File>);

impl DirLock {
    fn take(dir: &Path) -> Self {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".lock")).ok();
        if let Some(f) = &file {
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        }
        DirLock(file)
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

fn read_snapshot(path: &Path) -> Option<Snapshot> {
    serde_json::from_slice::<Snapshot>(&std::fs::read(path).ok()?).ok()
}

/// Every process's snapshot in `dir`, merged; the snapshots of processes that have exited are
/// folded into `retained.json` and removed.
pub fn collect(dir: &Path) -> Snapshot {
    let mut total = Snapshot::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return total };
    let _lock = DirLock::take(dir);
    let mut retained = read_snapshot(&dir.join(RETAINED)).unwrap_or_default();
    let mut exited = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((_, live)) = name.to_str().and_then(writer) else { continue };
        let Some(snap) = read_snapshot(&entry.path()) else { continue };
        if live {
            total.merge(&snap, true);
        } else {
            retained.merge(&snap, false);
            exited.push(entry.path());
        }
    }
    if !exited.is_empty() {
        // The new total first, then the files it includes: a failure in between counts an
        // exited process twice at worst, never loses it.
        let tmp = dir.join(".retained.tmp");
        let written = serde_json::to_vec(&retained)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, dir.join(RETAINED)));
        match written {
            Ok(()) => {
                for path in exited {
                    let _ = std::fs::remove_file(path);
                }
            }
            Err(e) => crate::log::warn_once("prometheus-retain", &format!("cannot fold exited workers' metrics in {} ({e})", dir.display())),
        }
    }
    total.merge(&retained, false);
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

/// At most this many scrapes are answered at once on their own threads; more wait their turn.
const MAX_CONCURRENT: usize = 16;

/// Serve `/metrics` (and nothing else) from merged snapshots, each connection on its own thread
/// (up to `MAX_CONCURRENT`; beyond that, on this one).
pub fn serve(listener: TcpListener, dir: PathBuf) {
    let dir = std::sync::Arc::new(dir);
    let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for stream in listener.incoming().flatten() {
        if in_flight.fetch_add(1, Ordering::AcqRel) < MAX_CONCURRENT {
            let (dir, in_flight) = (dir.clone(), in_flight.clone());
            let done = in_flight.clone();
            let spawned = std::thread::Builder::new().name("ferrotel-scrape".into()).spawn(move || {
                let _ = respond(stream, &dir);
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
            if spawned.is_err() {
                done.fetch_sub(1, Ordering::AcqRel); // the stream went with the closure: closed
            }
        } else {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            let _ = respond(stream, &dir);
        }
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

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".json")).collect();
        v.sort();
        v
    }

    #[test]
    fn exited_processes_are_folded_and_a_reused_pid_is_a_new_process() {
        let dir = std::env::temp_dir().join(format!("ferrotel-test-churn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let my_start = start_time(me).expect("/proc/self/stat");
        let snap = |n: u64, active: i64| {
            let labels: Labels = vec![("http.route".into(), "/".into())];
            let mut s = Snapshot {
                durations: vec![crate::metrics::snapshot::Histogram { labels: labels.clone(), counts: vec![n, 0], sum: n as f64, count: n }],
                active: vec![crate::metrics::snapshot::Gauge { labels, value: active }],
                ..Default::default()
            };
            s.stats.spans_started = n;
            s
        };
        let write = |name: String, s: &Snapshot| std::fs::write(dir.join(name), serde_json::to_vec(s).unwrap()).unwrap();
        // This process (alive), an earlier process that had this same pid (a reused pid: other
        // start time), and ten exited workers.
        publish(&dir, &snap(5, 1)).unwrap();
        write(format!("{me}-{}.json", my_start.wrapping_sub(1)), &snap(7, 3));
        for i in 0..10 {
            write(format!("{}-{}.json", 2_147_483_000 + i, 1000 + i), &snap(1, 2));
        }
        let total = collect(&dir);
        assert_eq!(total.stats.spans_started, 5 + 7 + 10, "every process's requests counted once");
        assert_eq!(total.durations[0].count, 22);
        assert_eq!(total.active[0].value, 1, "only the live process's gauge");
        assert_eq!(files(&dir), vec![format!("{me}-{my_start}.json"), RETAINED.to_string()], "exited processes folded and removed");
        // Later scrapes count the same, and this process's new values replace its old ones.
        publish(&dir, &snap(6, 0)).unwrap();
        assert_eq!(collect(&dir).stats.spans_started, 6 + 7 + 10);
        assert_eq!(collect(&dir).durations[0].count, 23);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_the_start_time_of_a_process() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(2_147_483_646), None);
        assert_eq!(writer("notes.txt"), None);
        assert_eq!(writer(RETAINED), None);
    }
}
