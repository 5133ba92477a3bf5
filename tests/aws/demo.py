"""Demo of the AWS SDK instrumentation (a candidate for `make demo` and `make semconv-check`'s
DEMOS): the Flask app of tests/aws (boto3: S3, SQS, DynamoDB, and a plain requests call) under
gunicorn with the agent injected through PYTHONPATH only, calling a local moto server; one line per
span the agent printed (console exporter). With FERROTEL_DEMO_OTLP_ENDPOINT set, the spans also go
over OTLP/gRPC there (Weaver's live-check)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("FERROTEL_DIST", ROOT / "dist" / "autoinstrumentation"))
APP = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, title):
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit(f"demo: {title} did not start")
            time.sleep(0.1)


def main():
    if not (BIN / "moto_server").exists():
        print("demo: moto_server is not installed (pip install 'moto[server]'): AWS demo skipped")
        return
    site = DIST / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_"))}
    moto_port, app_port = free_port(), free_port()
    moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], env=base,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_listening(moto, moto_port, "moto_server")
    env = dict(base, PYTHONPATH=f"{site}:{DIST}", OTEL_SERVICE_NAME="aws-demo", OTEL_TRACES_EXPORTER="console",
               OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_BSP_SCHEDULE_DELAY="200",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    if os.environ.get("FERROTEL_DEMO_OTLP_ENDPOINT"):
        env.update(OTEL_TRACES_EXPORTER="console,otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                   OTEL_EXPORTER_OTLP_ENDPOINT=os.environ["FERROTEL_DEMO_OTLP_ENDPOINT"])
    app = subprocess.Popen([str(BIN / "gunicorn"), "--chdir", str(APP), "-w", "1", "-b", f"127.0.0.1:{app_port}",
                            "--log-level", "warning", "aws_app:app"], cwd=APP, env=env, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        wait_listening(app, app_port, "the AWS app")
        for path in ("/s3/demo", "/sqs/demo", "/dynamodb/demo", "/plain"):
            with urllib.request.urlopen(f"http://127.0.0.1:{app_port}{path}", timeout=60) as resp:
                print(f"GET {path:<16} -> {resp.status}")
        time.sleep(0.6)
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        err = app.communicate(timeout=30)[1]
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(timeout=30)
    spans = []
    for line in err.splitlines():
        if line.startswith("{"):
            try:
                spans.append(json.loads(line))
            except ValueError:
                pass
    print(f"\n== boto3 calls under Flask requests: {len(spans)} spans")
    for s in sorted(spans, key=lambda s: s["start_time_unix_nano"]):
        a = s["attributes"]
        detail = a.get("aws.s3.bucket") or a.get("messaging.destination.name") or a.get("aws.dynamodb.table_names") or a.get("url.full") or ""
        print(f"  {s.get('kind', '?'):<8} {s['name']:<24} {a.get('rpc.method', '-'):<24} {a.get('error.type', '-'):<10} "
              f"{str(detail)[:40]:<40} span={s['span_id'][:8]} parent={(s['parent_span_id'] or '-')[:8]}")


if __name__ == "__main__":
    main()
