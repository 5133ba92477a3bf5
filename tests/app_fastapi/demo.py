"""`make demo`, ASGI and Django part: the FastAPI test app under uvicorn and the Django test
project under gunicorn, each with the agent injected through PYTHONPATH only (as the Operator does
it), a request to a few endpoints, and one line per span the agent printed (console exporter)."""

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
BIN = Path(sys.executable).parent
TESTS = ROOT / "tests"

RUNS = [
    ("FastAPI under uvicorn", [str(BIN / "uvicorn"), "--app-dir", str(TESTS / "app_fastapi"), "--port", "{port}", "--log-level", "warning", "app:app"],
     {}, ["/", "/api/items/42?q=x", "/api/sync/7", "/sub/things/abc", "/star/hello/bob", "/stream", "/api/missing/3", "/error", "/gather?port={port}"]),
    ("Django under gunicorn", [str(BIN / "gunicorn"), "--chdir", str(TESTS / "app_django"), "-b", "127.0.0.1:{port}", "--log-level", "warning", "mysite.wsgi:application"],
     {"DJANGO_SETTINGS_MODULE": "mysite.settings"}, ["/", "/api/items/7", "/legacy/2024/", "/stream", "/missing", "/error"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    site = DIST / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.update(PYTHONPATH=f"{site}:{DIST}", OTEL_SERVICE_NAME="asgi-demo", OTEL_TRACES_EXPORTER="console",
                OTEL_METRICS_EXPORTER="none", OTEL_BSP_SCHEDULE_DELAY="200")
    # `make semconv-check`: the same traffic also goes over OTLP/gRPC (spans and metrics) to the
    # receiver named here, Weaver's live-check (semconv/live_check.py).
    if os.environ.get("FERROTEL_DEMO_OTLP_ENDPOINT"):
        base.update(OTEL_TRACES_EXPORTER="console,otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                    OTEL_EXPORTER_OTLP_ENDPOINT=os.environ["FERROTEL_DEMO_OTLP_ENDPOINT"])
    for title, cmd, extra, targets in RUNS:
        port = free_port()
        proc = subprocess.Popen([c.format(port=port) for c in cmd], env={**base, **extra}, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise SystemExit(f"demo: {title} did not start")
                time.sleep(0.1)
        for target in targets:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{target.format(port=port)}", timeout=10).read()
            except urllib.error.HTTPError:
                pass
        time.sleep(0.6)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        print(f"\n== {title}")
        for line in err.splitlines():
            if not line.startswith("{"):
                continue
            try:
                span = json.loads(line)
            except ValueError:  # not a span line (the app's own output beginning with "{")
                continue
            a = span["attributes"]
            events = ",".join(e["name"] for e in span["events"])
            print(f"  {span['kind']:<8} {span['name']:<32} status={a.get('http.response.status_code', '-')!s:<4} "
                  f"{span['status']['code']:<5} {span['duration_ms']:7.1f} ms  trace={span['trace_id'][:8]} "
                  f"parent={(span['parent_span_id'] or '-')[:8]} {events}")


if __name__ == "__main__":
    main()
