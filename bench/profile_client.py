"""Instructions per outgoing HTTP call, by callgrind: the agent's hook cost per client library.

    .venv/bin/python bench/profile_client.py [--clients http.client httpx] [--lengths 200 600]
        [--modes noagent unhooked hooked] [--keep DIR] [--no-gc]

Per client (bench/client.py's list: http.client, urllib.request, requests, urllib3, httpx, httpx
async) and per mode, the same loop of calls to a keep-alive HTTP server in another process (so only
the client's instructions are counted) runs under ``valgrind --tool=callgrind --separate-threads=yes``
with ``PYTHONHASHSEED=0`` at two lengths; instructions per call are the difference of the totals
divided by the difference in calls, so start-up, imports and exit cancel out. Modes:

- ``noagent``: no agent at all, but the same environment variables and as many ``sys.path``
  entries (empty directories in PYTHONPATH): per-call work that grows with them (requests reads
  the proxy variables from ``os.environ`` on every call, ~25k instructions per variable; a failing
  import, such as httpcore's ``import sniffio`` per request when it is not installed, scans every
  ``sys.path`` entry) then counts alike;
- ``hooked``: the agent injected the Operator's way (PYTHONPATH), every call inside a parent span
  (as calls made while serving a request are), spans exported over OTLP/HTTP to a local receiver;
- ``unhooked``: the same process with the client's hooks taken out (each one's ``__wrapped__`` put
  back): what the agent costs a call besides its hooks (nothing, when all is well).

"hook" is hooked minus unhooked on the calling thread ("main"); "all threads" adds the export
thread. The µs column converts instructions with the rate this machine runs the no-agent call at
(instructions per µs of user CPU time, measured outside valgrind), so it is a rough figure; the
instruction counts are the repeatable one: to within a few hundred instructions with ``--no-gc``
(the collector off in the measured loop; with it on, where a collection falls moves a count by
1-2k). ``--keep DIR`` keeps the callgrind files of the longer hooked run for
``callgrind_annotate --inclusive=yes``. Needs valgrind. ``make bench`` runs the short form through
bench/client.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import client as bench_client  # noqa: E402

MODES = ("noagent", "unhooked", "hooked")
WARMUP = 50


def child(base: str, name: str, mode: str, n: int) -> None:
    """The measured process: `n` calls of `name` in `mode` (after a warm-up)."""
    call = bench_client.make_call(name, base)
    if mode != "noagent":
        from ferrotel import _native

        parent = _native.start_span("bench parent", kind=1)
        _native.set_current(parent)
    for _ in range(WARMUP):
        call()
    if mode == "unhooked":
        points = bench_client.hook_points(name)
        bench_client.set_hooked(points, {(o, a): getattr(o, a) for o, a in points}, False)
    if os.environ.get("PROFILE_NO_GC"):
        import gc

        gc.disable()
    for _ in range(n):
        call()


def user_us_per_call(base: str, name: str, n: int) -> float:
    """User CPU µs per call of `name` without an agent (this process, outside valgrind)."""
    call = bench_client.make_call(name, base)
    for _ in range(WARMUP):
        call()
    best = float("inf")
    for _ in range(5):
        t0 = resource.getrusage(resource.RUSAGE_THREAD).ru_utime
        for _ in range(n):
            call()
        best = min(best, (resource.getrusage(resource.RUSAGE_THREAD).ru_utime - t0) / n * 1e6)
    return best


def totals(path: str) -> int:
    with open(path) as f:
        for line in f:
            m = re.match(r"(?:totals|summary):\s*(\d+)", line)
            if m:
                return int(m.group(1))
    raise ValueError(f"no totals in {path}")


def run_one(python: str, env: dict, base: str, name: str, mode: str, n: int, out: str) -> dict:
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
           python, str(Path(__file__).resolve()), "--child", base, name, mode, str(n)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {mode} n={n} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    files = sorted(glob.glob(f"{out}-*")) or [out]
    per_thread = [totals(f) for f in files]
    return {"main": per_thread[0], "all": sum(per_thread), "files": files}


def measure(dist: Path, clients=bench_client.CLIENTS, modes=MODES, lengths=(200, 600), keep: Path | None = None,
            jobs: int = 2, no_gc: bool = False, python: str = sys.executable) -> tuple[dict, float]:
    """({client: {mode: instructions per call, "hook": ..., "hook_all": ..., "hook_us": ...}},
    instructions per µs). Needs valgrind."""
    from support.otlp_receiver import Receiver

    n1, n2 = sorted(lengths)
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    rates = {}
    with tempfile.TemporaryDirectory() as tmp, Receiver() as rx:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([python, str(HERE / "client.py"), "--serve", str(port_file)])
        try:
            deadline = time.monotonic() + 10
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("profile_client: the HTTP server did not start")
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}"
            agent = bench_client._agent_env(dict(os.environ), dist, rx.http_endpoint)
            agent.update(PYTHONHASHSEED="0", OTEL_BSP_SCHEDULE_DELAY="200")
            if no_gc:
                agent["PROFILE_NO_GC"] = "1"
            plain = bench_client.no_agent_env(agent, tmp)
            clients = [c for c in clients if subprocess.run([python, "-c", f"import {bench_client.MODULES[c]}"], capture_output=True).returncode == 0]
            futures = []
            with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
                for name in clients:
                    for mode in modes:
                        for n in (n1, n2):
                            slug = f"{name.replace(' ', '-').replace('.', '_')}-{mode}-{n}"
                            out = str((keep if keep and mode == "hooked" and n == n2 else Path(tmp)) / f"{slug}.out")
                            env = plain if mode == "noagent" else agent
                            futures.append(((name, mode, n), pool.submit(run_one, python, env, base, name, mode, n, out)))
                runs = {key: fut.result() for key, fut in futures}
            for name in clients:
                per = {}
                for mode in modes:
                    a, b = runs[(name, mode, n1)], runs[(name, mode, n2)]
                    per[mode] = {k: (b[k] - a[k]) / (n2 - n1) for k in ("main", "all")}
                results[name] = per
                baseline = per.get("noagent") or per.get("unhooked")
                if baseline:
                    us = user_us_per_call(base, name, 300)
                    if us > 0:
                        rates[name] = baseline["main"] / us
        finally:
            server.kill()
            server.wait()
    rate = sorted(rates.values())[len(rates) // 2] if rates else float("nan")
    table = {}
    for name, per in results.items():
        row = {m: round(per[m]["main"]) for m in per}
        if "hooked" in per and "unhooked" in per:
            row["hook"] = round(per["hooked"]["main"] - per["unhooked"]["main"])
            row["hook_all"] = round(per["hooked"]["all"] - per["unhooked"]["all"])
            row["hook_us"] = round(row["hook"] / rate, 2) if rate == rate else None
        if "hooked" in per and "noagent" in per:
            row["agent"] = round(per["hooked"]["main"] - per["noagent"]["main"])
        table[name] = row
    return table, rate


def render(table: dict, rate: float) -> str:
    lines = [
        "| client | no agent | unhooked | hooked | hook (calling thread) | hook µs | bar ≤ 3 µs | hook, all threads |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, row in table.items():
        cell = lambda k: f"{row[k]:,}" if k in row else ""  # noqa: E731
        us = row.get("hook_us")
        bar = ("met" if us <= 3 else "not met") if us is not None else ""
        lines.append(f"| {name} | {cell('noagent')} | {cell('unhooked')} | {cell('hooked')} | {cell('hook')} | "
                     f"{'' if us is None else f'{us:.2f}'} | {bar} | {cell('hook_all')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=4, metavar=("BASE_URL", "CLIENT", "MODE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--clients", nargs="+", default=list(bench_client.CLIENTS))
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--lengths", type=int, nargs=2, default=[200, 600], metavar=("N1", "N2"))
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files of the longer hooked runs here")
    ap.add_argument("--jobs", type=int, default=2, help="valgrind runs at once (counts do not depend on it)")
    ap.add_argument("--no-gc", action="store_true", help="garbage collector off in the measured loop: repeatable to "
                    "a few hundred instructions (with it on, when a collection falls moves counts by 1-2k per call)")
    args = ap.parse_args()
    if args.child:
        base, name, mode, n = args.child
        child(base, name, mode, int(n))
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("profile_client: needs valgrind (Debian: apt-get install valgrind)")
    if sorted(args.lengths)[0] == sorted(args.lengths)[1]:
        raise SystemExit("profile_client: the two lengths must differ")
    dist = Path(os.environ.get("FERROTEL_DIST", REPO / "dist" / "autoinstrumentation")).resolve()
    keep = Path(args.keep).resolve() if args.keep else None
    table, rate = measure(dist, args.clients, args.modes, args.lengths, keep, args.jobs, args.no_gc)
    n1, n2 = sorted(args.lengths)
    print(f"instructions per call, difference of {n2} and {n1} calls (PYTHONHASHSEED=0{', GC off' if args.no_gc else ''}); "
          f"µs at {rate:,.0f} instructions/µs (the median rate of the clients' calls without hooks on this machine)")
    print()
    print(render(table, rate))
    if keep:
        print()
        print(f"callgrind files of the hooked runs: {keep} (callgrind_annotate --inclusive=yes FILE-01)")
    print(json.dumps({"client_profile": table, "instructions_per_us": round(rate) if rate == rate else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
