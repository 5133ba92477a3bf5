"""`make demo` and `make semconv-check`, Celery part: the messaging suite's driver sends a task through kombu's
memory:// transport and runs tasks eagerly, with the agent injected through PYTHONPATH only (as
the Operator does it), so the live-check sees Celery's send and process spans (no broker or worker
needed); one line per span the agent printed (console exporter)."""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DIST = Path(os.environ.get("FERROTEL_DIST", ROOT / "dist" / "autoinstrumentation"))


def main():
    site = DIST / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=f"{site}:{HERE}:{DIST}", OTEL_SERVICE_NAME="celery-demo", OTEL_TRACES_EXPORTER="console",
               OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", CELERY_BROKER_URL="memory://")
    if os.environ.get("FERROTEL_DEMO_OTLP_ENDPOINT"):
        env.update(OTEL_TRACES_EXPORTER="console,otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                   OTEL_EXPORTER_OTLP_ENDPOINT=os.environ["FERROTEL_DEMO_OTLP_ENDPOINT"])
    for mode in ("memory", "eager"):
        run = subprocess.run([sys.executable, str(HERE / "driver.py"), mode], cwd=str(HERE), env=env, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise SystemExit(f"demo: celery {mode} failed\n{run.stderr[-3000:]}")
        print(f"\n== Celery, {mode}")
        for line in run.stderr.splitlines():
            if line.startswith("{"):
                span = json.loads(line)
                print(f"  {span['kind']:<8} {span['name']:<24} {span['status']['code']:<5} trace={span['trace_id'][:8]} "
                      f"parent={(span['parent_span_id'] or '-')[:8]} {span['attributes'].get('ferrotel.celery.task.name', '')}")


if __name__ == "__main__":
    main()
