"""Soak: many in-process WSGI requests through a Flask app with the agent on, exporting OTLP/HTTP
to a local receiver; prints resident memory after warm-up and at the end, and the growth.

    .venv/bin/python tests/reliability/soak.py --requests 1000000

The script runs itself twice: this process starts a counting OTLP/HTTP sink (it decodes every
export request, counts the spans and keeps nothing), then starts a child interpreter with the
agent injected the Operator's way (PYTHONPATH on the built tree, ``FERROTEL_DIST`` or
``dist/autoinstrumentation``). The child calls the app directly (no server, no sockets): a mix of
``/``, ``/users/<id>``, a streamed response, a 500 with an exception, a 404, some requests with
``traceparent`` and ``baggage``. It reads its VmRSS after the warm-up, every ``--report-every``
requests, and at the end (after a flush). ``--json`` prints one JSON object instead of text (the
test tests/reliability/test_soak.py runs a short version that way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

CHILD = r'''
import io, json, os, sys, time, logging

from flask import Flask, Response, jsonify

app = Flask("soak")
app.logger.disabled = True
logging.getLogger("werkzeug").disabled = True


@app.route("/")
def index():
    return "hello"


@app.route("/users/<int:uid>")
def user(uid):
    return jsonify({"uid": uid})


@app.route("/stream")
def stream():
    def gen():
        yield "a"
        yield "b"
    return Response(gen())


@app.route("/error")
def error():
    raise ValueError("soak failure")


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


BASE = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "soak/1.0", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
    "wsgi.multiprocess": False, "wsgi.run_once": False,
}
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VARIANTS = [
    ("/", {}),
    ("/users/7", {"QUERY_STRING": "q=1&token=secret"}),
    ("/stream", {}),
    ("/users/8", {"HTTP_TRACEPARENT": TP, "HTTP_BAGGAGE": "tenant=acme,user=42"}),
    ("/error", {}),
    ("/nope", {}),
    ("/", {"HTTP_TRACEPARENT": "garbage"}),
    ("/users/9", {}),
]
statuses = {}


def start_response(status, headers, exc_info=None):
    statuses[status] = statuses.get(status, 0) + 1


def one(i):
    path, extra = VARIANTS[i % len(VARIANTS)]
    environ = dict(BASE, PATH_INFO=path, **extra)
    environ["wsgi.input"] = io.BytesIO(b"")
    body = app(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


N = int(os.environ["SOAK_REQUESTS"])
WARMUP = int(os.environ["SOAK_WARMUP"])
EVERY = int(os.environ["SOAK_EVERY"])
for i in range(WARMUP):
    one(i)
native = sys.modules.get("ferrotel._native")
if native is not None:
    native.flush(10000)
rss_warm = rss_kib()
samples = [(0, rss_warm)]
t0 = time.perf_counter()
for i in range(N):
    one(i)
    if EVERY and (i + 1) % EVERY == 0:
        samples.append((i + 1, rss_kib()))
        print("SOAK-PROGRESS " + json.dumps({"done": i + 1, "rss_kib": samples[-1][1]}), flush=True)
elapsed = time.perf_counter() - t0
if native is not None:
    native.flush(10000)
rss_end = rss_kib()
stats = dict(native.stats()) if native is not None else None
print("SOAK-RESULT " + json.dumps({
    "requests": N, "warmup": WARMUP, "seconds": elapsed, "requests_per_second": N / elapsed if elapsed else None,
    "rss_after_warmup_kib": rss_warm, "rss_end_kib": rss_end, "growth_kib": rss_end - rss_warm,
    "max_rss_kib": max(r for _, r in samples + [(N, rss_end)]), "samples": samples, "statuses": statuses,
    "agent_loaded": native is not None, "stats": stats,
}), flush=True)
'''


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/v1/traces"):
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

            msg = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            n = sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
            with self.server.lock:
                self.server.spans += n
                self.server.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


class CountingSink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Sink)
        self.lock = threading.Lock()
        self.spans = 0
        self.requests = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def agent_env(dist: Path, endpoint: str, extra: dict | None = None) -> dict:
    """The Operator's PYTHONPATH and OTEL_* settings over the built tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=f"{dist}/opentelemetry/instrumentation/auto_instrumentation:{dist}",
        OTEL_SERVICE_NAME="soak",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_METRIC_EXPORT_INTERVAL="5000",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    env.update(extra or {})
    return env


def run(requests: int, warmup: int, every: int, dist: Path, extra_env: dict | None = None, echo=None) -> dict:
    """Run the soak; returns the child's figures plus what the sink received."""
    sink = CountingSink()
    thread = threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        env = agent_env(dist, sink.endpoint, extra_env)
        env.update(SOAK_REQUESTS=str(requests), SOAK_WARMUP=str(warmup), SOAK_EVERY=str(every))
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        result = None
        for line in proc.stdout:
            if line.startswith("SOAK-PROGRESS ") and echo:
                echo(json.loads(line[len("SOAK-PROGRESS ") :]))
            elif line.startswith("SOAK-RESULT "):
                result = json.loads(line[len("SOAK-RESULT ") :])
        stderr = proc.stderr.read()
        code = proc.wait()
        if result is None or code != 0:
            raise RuntimeError(f"soak child failed (exit {code})\n{stderr[-4000:]}")
        time.sleep(0.5)  # the child's exit flush
        with sink.lock:
            result["sink_spans"] = sink.spans
            result["sink_requests"] = sink.requests
        result["agent_stderr"] = [line for line in stderr.splitlines() if line.startswith("ferrotel:")]
        return result
    finally:
        sink.shutdown()
        sink.server_close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=None, help="requests before the first RSS reading (default: 5%%, at least 5000)")
    parser.add_argument("--report-every", type=int, default=None, help="RSS reading interval (default: requests/10)")
    parser.add_argument("--dist", default=os.environ.get("FERROTEL_DIST", str(REPO / "dist" / "autoinstrumentation")))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else max(5000, args.requests // 20)
    every = args.report_every if args.report_every is not None else max(1, args.requests // 10)
    dist = Path(args.dist)
    if not (dist / "ferrotel").is_dir():
        print(f"no built agent at {dist}: run `make dist` (or pass --dist / set FERROTEL_DIST)", file=sys.stderr)
        return 2

    def echo(p):
        if not args.json:
            print(f"  {p['done']:>10,} requests  RSS {p['rss_kib'] / 1024:8.1f} MiB", flush=True)

    if not args.json:
        print(f"soak: {args.requests:,} requests after {warmup:,} warm-up requests, agent from {dist}", flush=True)
    result = run(args.requests, warmup, every, dist, echo=echo)
    if args.json:
        print(json.dumps(result))
        return 0
    stats = result["stats"] or {}
    print(
        f"RSS after warm-up {result['rss_after_warmup_kib'] / 1024:.1f} MiB, at the end {result['rss_end_kib'] / 1024:.1f} MiB, "
        f"growth {result['growth_kib'] / 1024:+.2f} MiB (max {result['max_rss_kib'] / 1024:.1f} MiB)\n"
        f"{result['requests']:,} requests in {result['seconds']:.1f} s ({result['requests_per_second']:,.0f}/s); "
        f"statuses {result['statuses']}\n"
        f"spans: started {stats.get('spans_started')}, exported {stats.get('spans_exported')}, "
        f"dropped (queue full) {stats.get('dropped_queue_full')}, export failures {stats.get('export_failures')}; "
        f"received by the sink {result['sink_spans']}"
    )
    for line in result["agent_stderr"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
