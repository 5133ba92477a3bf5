"""Per-request cost in-process: the Flask test app called through WSGI in a loop.

Run by the orchestrator (and by profile_inprocess.py) with the configuration's interpreter and
environment: the agent, if any, is loaded by the injected sitecustomize before this runs, and
hooks Flask when tests/app/app.py imports it, as in any application.

Each route gets `--warmup` requests, then `--chunks` timed chunks of `--requests`/`--chunks`
requests; routes alternate chunk by chunk so that noise hits both alike. One request is what a
WSGI server does: a fresh copy of a precomputed environ, ``app(environ, start_response)``, the
body iterated and ``close()``d (which is what ends a span). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "app"))

from app import app  # noqa: E402  (imports flask: the agent's import hook fires here)
from werkzeug.test import EnvironBuilder  # noqa: E402

HEADERS = {"User-Agent": "ferrotel-bench/1", "Accept": "*/*"}


def make_environ(path: str) -> dict:
    builder = EnvironBuilder(path=path, base_url="http://127.0.0.1:8000", headers=HEADERS)
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    environ["REMOTE_PORT"] = "54321"
    return environ


_status = []


def start_response(status, headers, exc_info=None):
    _status.append(status)
    return None


def check(path: str, environ: dict) -> str:
    """One request whose status and body are checked (also a first warm-up)."""
    _status.clear()
    body = app(environ.copy(), start_response)
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    if not _status or not _status[0].startswith("200"):
        raise SystemExit(f"inprocess: {path} answered {_status} {data[:200]!r}")
    return _status[0]


def loop(environ: dict, n: int, wsgi=None) -> tuple[int, int]:
    """n requests (to `wsgi`, default the app); returns (elapsed wall ns, this thread's CPU ns).
    CPU time leaves out the time the thread spent descheduled, so it stays comparable on a busy
    machine."""
    target = wsgi or app
    copy = environ.copy
    sr = start_response
    status = _status
    c0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        body = target(copy(), sr)
        for _chunk in body:
            pass
        body.close()
    elapsed = time.perf_counter_ns() - t0
    cpu = time.thread_time_ns() - c0
    status.clear()  # start_response appends; keep the list from growing without bound
    return elapsed, cpu


def paired(routes: list[str], pairs: int, per_chunk: int) -> dict:
    """The agent's cost measured inside one process: chunks through the hooked app and through the
    app the hook wraps (``app.wsgi_app.app``), alternating, order flipped every pair. Both halves
    run in the same interpreter, with the same memory layout and the export thread running, so
    the per-pair difference is the hook's cost without the process-to-process spread (a few µs
    between runs of the same configuration on these VMs). Request-thread CPU time per request."""
    hooked = app.wsgi_app
    raw = getattr(hooked, "app", None)
    if raw is None:
        raise SystemExit(f"inprocess --paired: the app is not hooked ({hooked!r})")
    out, sent = {}, 0
    for route in routes:
        environ = make_environ(route)

        def run(f, n):
            return loop(environ, n, f)[1] / n / 1000.0

        run(hooked, 1000)
        run(raw, 1000)
        sent += 1000
        diffs, hooked_us, raw_us = [], [], []
        for i in range(pairs):
            if i % 2:
                h = run(hooked, per_chunk)
                r = run(raw, per_chunk)
            else:
                r = run(raw, per_chunk)
                h = run(hooked, per_chunk)
            sent += per_chunk
            hooked_us.append(h)
            raw_us.append(r)
            diffs.append(h - r)
        out[route] = {"hooked_us": hooked_us, "raw_us": raw_us, "diffs_us": diffs}
    return {"paired": out, "total_sent": sent}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["hooked", "raw"], default="hooked",
                    help="raw: call the app the agent's hook wraps (app.wsgi_app.app), for profiles")
    ap.add_argument("--paired", type=int, default=0, metavar="PAIRS",
                    help="measure hooked vs unwrapped app in this process (see paired())")
    ap.add_argument("--routes", nargs="+", default=["/", "/users/42"])
    ap.add_argument("--requests", type=int, default=5000, help="timed requests per route")
    ap.add_argument("--chunks", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=300)
    args = ap.parse_args()
    if args.variant == "raw":
        global app
        raw = getattr(app.wsgi_app, "app", None)
        if raw is None:
            raise SystemExit("inprocess --variant raw: the app is not hooked")
        app = raw
    if args.paired:
        result = paired(args.routes, args.paired, 300)
        result["agents"] = {"ferrotel._native": "ferrotel._native" in sys.modules}
        print(json.dumps(result), flush=True)
        return

    environs = {route: make_environ(route) for route in args.routes}
    sent = {route: 0 for route in args.routes}
    for route, environ in environs.items():
        check(route, environ)
        sent[route] += 1
        loop(environ, args.warmup)
        sent[route] += args.warmup

    per_chunk = max(1, args.requests // args.chunks)
    chunks_us = {route: [] for route in args.routes}
    chunks_cpu_us = {route: [] for route in args.routes}
    for _ in range(args.chunks):
        for route, environ in environs.items():
            ns, cpu = loop(environ, per_chunk)
            sent[route] += per_chunk
            chunks_us[route].append(ns / per_chunk / 1000.0)
            chunks_cpu_us[route].append(cpu / per_chunk / 1000.0)

    agents = {name: name in sys.modules for name in ("ferrotel._native", "opentelemetry.instrumentation.flask")}
    print(json.dumps({"chunks_us": chunks_us, "chunks_cpu_us": chunks_cpu_us, "sent": sent, "total_sent": sum(sent.values()), "agents": agents}),
          flush=True)


if __name__ == "__main__":
    main()
