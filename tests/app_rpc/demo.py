"""`make demo`, RPC part: a gRPC client service calling a gRPC server service (unary and streaming,
one call failing), and an aiohttp.web service whose handler calls a second aiohttp service with
aiohttp's client -- every process with the agent injected through PYTHONPATH only (as the Operator
does it), one line per span the agent printed (console exporter), grouped by trace.

The apps are the ones tests/rpc uses (tests/rpc/grpc_app.py, tests/rpc/aiohttp_app.py)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("FERROTEL_DIST", ROOT / "dist" / "autoinstrumentation"))
APPS = ROOT / "tests" / "rpc"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, title):
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit(f"demo: {title} did not start")
            time.sleep(0.1)


def spans_of(text):
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=30)[1]


def show(title, spans):
    print(f"\n== {title}: {len(spans)} spans")
    by_trace = defaultdict(list)
    for s in spans:
        by_trace[s["trace_id"]].append(s)
    for trace_id, members in by_trace.items():
        services = sorted({s["resource"].get("service.name", "?") for s in members})
        print(f"  trace {trace_id[:8]} ({', '.join(services)})")
        for s in sorted(members, key=lambda s: s["start_time_unix_nano"]):
            a = s["attributes"]
            code = a.get("rpc.response.status_code", a.get("http.response.status_code", "-"))
            print(f"    {s['resource'].get('service.name', '?'):<16} {s.get('kind', '?'):<8} {s['name']:<28} {code!s:<10} "
                  f"{s['status']['code']:<5} {s['duration_ms']:7.1f} ms  span={s['span_id'][:8]} parent={(s['parent_span_id'] or '-')[:8]}")


def main():
    site = DIST / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.update(PYTHONPATH=f"{site}:{DIST}", OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none",
                OTEL_BSP_SCHEDULE_DELAY="200")
    # `make semconv-check`: the same traffic also goes over OTLP/gRPC to Weaver's live-check.
    if os.environ.get("FERROTEL_DEMO_OTLP_ENDPOINT"):
        base.update(OTEL_TRACES_EXPORTER="console,otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                    OTEL_EXPORTER_OTLP_ENDPOINT=os.environ["FERROTEL_DEMO_OTLP_ENDPOINT"])
    py = sys.executable

    # gRPC: a server service, and a client service making one call of each kind under a span "job".
    port = free_port()
    server = subprocess.Popen([py, str(APPS / "grpc_app.py"), "server", "sync", str(port)], cwd=APPS,
                              env=dict(base, OTEL_SERVICE_NAME="grpc-server"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    wait_listening(server, port, "the gRPC server")
    client = subprocess.run([py, str(APPS / "grpc_app.py"), "client", "sync", str(port)], cwd=APPS,
                            env=dict(base, OTEL_SERVICE_NAME="grpc-client"), capture_output=True, text=True, timeout=60)
    print("$ python tests/rpc/grpc_app.py client sync PORT  ->", client.stdout.strip() or client.stderr[-500:])
    time.sleep(0.6)
    show("gRPC client service -> gRPC server service (sync)", spans_of(client.stderr) + spans_of(stop(server)))

    # aiohttp: the frontend's /orders/{id} calls the backend twice at once with aiohttp's client.
    port_b, port_f = free_port(), free_port()
    backend = subprocess.Popen([py, str(APPS / "aiohttp_app.py"), "backend", str(port_b)], cwd=APPS,
                               env=dict(base, OTEL_SERVICE_NAME="aiohttp-backend"), stderr=subprocess.PIPE, text=True)
    frontend = subprocess.Popen([py, str(APPS / "aiohttp_app.py"), "frontend", str(port_f)], cwd=APPS,
                                env=dict(base, OTEL_SERVICE_NAME="aiohttp-frontend", BACKEND_URL=f"http://127.0.0.1:{port_b}"),
                                stderr=subprocess.PIPE, text=True)
    wait_listening(backend, port_b, "the aiohttp backend")
    wait_listening(frontend, port_f, "the aiohttp frontend")
    for target in ("/orders/7", "/fail"):
        try:
            status = urllib.request.urlopen(f"http://127.0.0.1:{port_f}{target}", timeout=10).status
        except urllib.error.HTTPError as e:
            status = e.code
        print(f"GET {target:<10} -> {status}")
    time.sleep(0.6)
    show("aiohttp frontend -> aiohttp backend", spans_of(stop(frontend)) + spans_of(stop(backend)))


if __name__ == "__main__":
    main()
