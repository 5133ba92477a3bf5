"""Request latency while the traces endpoint hangs (issue 18): the same gunicorn worker, rounds of
sequential ``GET /`` alternating between a healthy receiver and one that holds every trace export
(`Receiver.stall("traces", ...)`), p50 / p99 per phase (best round of each, as noise on these
shared 2-vCPU VMs only ever adds).

    FERROTEL_DIST=dist/autoinstrumentation .venv/bin/python bench/isolation.py [--requests 300] [--rounds 3]

The tests assert the effect (metrics and logs keep flowing during the stall:
tests/reliability/test_export_settings.py); this only reports the latency. Exit code 0 whatever
the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.load import Latency, measure_latencies  # noqa: E402
from support.operator import install_like_operator, operator_env  # noqa: E402
from support.otlp_receiver import Receiver  # noqa: E402
from support.processes import GunicornLauncher  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    dist = Path(os.environ.get("FERROTEL_DIST", ROOT / "dist" / "autoinstrumentation"))
    with tempfile.TemporaryDirectory() as tmp, Receiver(lazy=True) as rx:
        install = install_like_operator(dist, Path(tmp))
        env = operator_env(
            install,
            rx.http_endpoint,
            extra={"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_EXPORTER_OTLP_TIMEOUT": "600000", "OTEL_BSP_EXPORT_TIMEOUT": "600000"},
        )
        launcher = GunicornLauncher(Path(tmp))
        try:
            app = launcher.start(env, workers=1)
            app.wait_for_workers(1)
            measure_latencies(app.port, "/", 100)  # warm up
            healthy, stalled = [], []
            for _ in range(args.rounds):
                rx.release()
                time.sleep(0.5)
                healthy.append(Latency.of(measure_latencies(app.port, "/", args.requests)))
                rx.stall("traces", 600)
                time.sleep(0.5)
                stalled.append(Latency.of(measure_latencies(app.port, "/", args.requests)))
            rx.release()
            best = lambda rows: min(rows, key=lambda l: l.p99)  # noqa: E731
            metrics_during_stall = len(rx.requests("metrics"))
            print(f"healthy receiver:        best of {args.rounds}: {best(healthy)}")
            print(f"traces endpoint hanging: best of {args.rounds}: {best(stalled)}")
            print(f"(metrics export requests received over the run: {metrics_during_stall})")
            app.stop()
        finally:
            launcher.kill_all()


if __name__ == "__main__":
    main()
