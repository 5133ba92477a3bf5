"""`make demo`: the Flask test app under gunicorn with the agent injected through PYTHONPATH only
(as the Operator does it), a request to every endpoint, and the spans the agent printed — no
collector needed (OTEL_TRACES_EXPORTER=console)."""

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
DIST = ROOT / "dist" / "autoinstrumentation"
APP_DIR = Path(__file__).resolve().parent
REQUESTS = ["/", "/users/42?x=1", "/slow", "/stream", "/error", "/nope"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        PYTHONPATH=f"{DIST}/opentelemetry/instrumentation/auto_instrumentation:{DIST}",
        OTEL_SERVICE_NAME="flask-demo",
        OTEL_TRACES_EXPORTER="console",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [str(gunicorn), "--chdir", str(APP_DIR), "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning", "app:app"]
    print(f"$ PYTHONPATH={env['PYTHONPATH']} OTEL_TRACES_EXPORTER=console {' '.join(cmd[0:1])} -w 2 app:app", flush=True)
    proc = subprocess.Popen(cmd, cwd=APP_DIR, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    sys.exit("gunicorn did not start")
                time.sleep(0.1)
        for target in REQUESTS:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{target}",
                headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} if target == "/slow" else {},
            )
            try:
                status = urllib.request.urlopen(req).status
            except urllib.error.HTTPError as e:
                status = e.code
            print(f"GET {target:<16} -> {status}")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    spans, other = [], []
    for line in err.splitlines():
        try:
            spans.append(json.loads(line))
        except ValueError:
            other.append(line)
    print(f"\n{len(spans)} spans exported by the native engine (console exporter):\n")
    print(f"{'name':<24} {'status':<7} {'ms':>7}  {'trace_id':<32} {'parent':<16} worker")
    for s in sorted(spans, key=lambda s: s["start_time_unix_nano"]):
        print(
            f"{s['name']:<24} {s['status']['code']:<7} {s['duration_ms']:>7.1f}  {s['trace_id']} "
            f"{s['parent_span_id'] or '-':<16} {s['resource']['process.pid']}"
        )
    error = next((s for s in spans if s["status"]["code"] == "ERROR"), None)
    if error:
        print("\nthe /error span in full:\n" + json.dumps(error, indent=2))
    agent_lines = [l for l in other if l.startswith("ferrotel:")]
    if agent_lines:
        print("\nagent messages:\n" + "\n".join(agent_lines))
    if len(spans) != len(REQUESTS):
        sys.exit(f"expected {len(REQUESTS)} spans, got {len(spans)}")


if __name__ == "__main__":
    main()
