"""`make demo`: the Flask test app under gunicorn with the agent injected through PYTHONPATH only
(as the Operator does it), a request to every endpoint, and the spans the agent printed — no
collector needed (OTEL_TRACES_EXPORTER=console).

Two instances run: service A (flask-demo) gets the requests; a second instance, service B
(flask-demo-downstream), is what A's /downstream/<client> routes call, so those requests show one
trace across both services: A's SERVER span, its CLIENT span, B's SERVER span under it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("FERROTEL_DIST", ROOT / "dist" / "autoinstrumentation"))
APP_DIR = Path(__file__).resolve().parent
REQUESTS = ["/", "/users/42?x=1", "/orders/7", "/slow", "/stream", "/error", "/nope"]
# /orders/7 runs two sqlite3 statements: two database CLIENT spans under its SERVER span.
DB_SPANS = 2
# Calls that cross to service B: each adds A's CLIENT span and B's SERVER span to the trace.
DOWNSTREAM = ["/downstream/requests", "/downstream/httpx"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env, port):
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [str(gunicorn), "--chdir", str(APP_DIR), "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning", "app:app"]
    proc = subprocess.Popen(cmd, cwd=APP_DIR, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, cmd
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                sys.exit("gunicorn did not start")
            time.sleep(0.1)


def main():
    port, port_b = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        PYTHONPATH=f"{DIST}/opentelemetry/instrumentation/auto_instrumentation:{DIST}",
        OTEL_SERVICE_NAME="flask-demo",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",  # no collector in the demo: metrics would only report failed pushes
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    # `make semconv-check`: the same traffic also goes over OTLP/gRPC (spans and metrics) to the
    # receiver named here, Weaver's live-check (semconv/live_check.py).
    if os.environ.get("FERROTEL_DEMO_OTLP_ENDPOINT"):
        env.update(OTEL_TRACES_EXPORTER="console,otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                   OTEL_EXPORTER_OTLP_ENDPOINT=os.environ["FERROTEL_DEMO_OTLP_ENDPOINT"])
    env_b = dict(env, OTEL_SERVICE_NAME="flask-demo-downstream")
    env["DOWNSTREAM_URL"] = f"http://127.0.0.1:{port_b}"
    proc_b, _ = start(env_b, port_b)
    proc, cmd = start(env, port)
    print(f"$ PYTHONPATH={env['PYTHONPATH']} OTEL_TRACES_EXPORTER=console {' '.join(cmd[0:1])} -w 2 app:app", flush=True)
    print(f"  (and a second instance on :{port_b} as service B; DOWNSTREAM_URL points A at it)", flush=True)
    err = ""
    try:
        for target in REQUESTS + DOWNSTREAM:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{target}",
                headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} if target == "/slow" else {},
            )
            try:
                status = urllib.request.urlopen(req).status
            except urllib.error.HTTPError as e:
                status = e.code
            print(f"GET {target:<22} -> {status}")
        # Exported on the batch schedule (200 ms here) while the servers still run; what is left
        # goes out at shutdown. On a loaded machine the final flush can be cut short, so wait.
        time.sleep(1.5)
    finally:
        for p in (proc, proc_b):
            p.send_signal(signal.SIGTERM)
        for p in (proc, proc_b):
            err += p.communicate(timeout=30)[1]
    spans, other = [], []
    for line in err.splitlines():
        try:
            spans.append(json.loads(line))
        except ValueError:
            other.append(line)
    print(f"\n{len(spans)} spans exported by the native engine (console exporter):\n")
    print(f"{'service':<22} {'kind':<6} {'name':<24} {'status':<7} {'ms':>7}  {'trace_id':<32} {'span':<16} {'parent':<16} worker")
    for s in sorted(spans, key=lambda s: s["start_time_unix_nano"]):
        print(
            f"{s['resource'].get('service.name', '?'):<22} {s.get('kind', '?'):<6} {s['name']:<24} {s['status']['code']:<7} "
            f"{s['duration_ms']:>7.1f}  {s['trace_id']} {s['span_id']:<16} {s['parent_span_id'] or '-':<16} {s['resource']['process.pid']}"
        )
    crossing = [s for s in spans if s.get("kind") == "CLIENT"]
    if crossing:
        c = crossing[0]
        child = next((s for s in spans if s["parent_span_id"] == c["span_id"]), None)
        print(f"\none trace across two services: A's CLIENT span {c['span_id']} ({c['attributes'].get('url.full')})")
        if child:
            print(f"  is the parent of B's SERVER span {child['span_id']} in {child['resource'].get('service.name')}")
    query = next((s for s in spans if "db.query.text" in s["attributes"] and "SELECT" in s["attributes"]["db.query.text"]), None)
    if query:
        print("\na database span in full (the literal 'alice@example.com' never leaves the process):\n" + json.dumps(query, indent=2))
    error = next((s for s in spans if s["status"]["code"] == "ERROR"), None)
    if error:
        print("\nthe /error span in full:\n" + json.dumps(error, indent=2))
    agent_lines = [l for l in other if l.startswith("ferrotel:")]
    if agent_lines:
        print("\nagent messages:\n" + "\n".join(agent_lines))
    expected = len(REQUESTS) + 3 * len(DOWNSTREAM) + DB_SPANS
    if len(spans) != expected:
        sys.exit(f"expected {expected} spans, got {len(spans)}")


if __name__ == "__main__":
    main()
