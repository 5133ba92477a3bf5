"""Cost of ferrotel's logging support (issue 10): per log record, and at interpreter start-up.

    .venv/bin/python bench/logging_cost.py                # after `make dist`
    .venv/bin/python bench/logging_cost.py --json out.json

(Not named bench/logging.py: bench/run.py puts bench/ first on sys.path, so a bench/logging.py
would shadow the standard library's logging for everything run.py imports, grpc included.)

Per record: a child interpreter logs through an ordinary logger (a StreamHandler with a Formatter
writing to /dev/null, level INFO, as a service does), in timed chunks, with the agent injected
the Operator's way (PYTHONPATH) or not:

- ``no agent``
- ``ferrotel``: the record factory only (``otelTraceID``/``otelSpanID``/... on every record)
- ``ferrotel + OTLP logs``: also ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``, every
  record exported over OTLP/HTTP to a local receiver (tests/support)

each outside and inside an active span (for ``no agent`` both loops are the same). Configurations
run in rotated order per round; the report gives medians of per-record microseconds and the
difference to ``no agent``.

Start-up: wall time of ``python -c pass`` and ``python -c "import logging"`` with and without the
agent (the logging hook runs when ``logging`` is imported), rotated, medians.

Standard library plus tests/support (the receiver needs the project venv's packages). Reports
only; exits 0 whatever the numbers. Settings: BENCH_LOG_RECORDS (20000 per chunk loop and case),
BENCH_LOG_ROUNDS (5), BENCH_STARTUP_REPS (30).

``make bench`` runs it too (bench/run.py's ``logging`` part, fewer rounds) and appends the table
to bench/results/latest.md. ``--callgrind``: instructions per record instead of wall time (the
load-independent figure; see ``callgrind_records``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DIST = Path(os.environ.get("FERROTEL_DIST", REPO / "dist" / "autoinstrumentation")).resolve()

CHILD = r"""
import json, logging, os, sys, time
n = int(sys.argv[1]); chunks = int(sys.argv[2])
log = logging.getLogger("bench.app")
log.setLevel(logging.INFO)
log.propagate = False
handler = logging.StreamHandler(open(os.devnull, "w"))
handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
log.addHandler(handler)
if os.environ.get("BENCH_EXPORT"):
    log.addHandler(logging.getLogger().handlers[-1])  # the agent's export handler on the root logger
try:
    from ferrotel import _native
except ImportError:
    _native = None

def loop(count):
    info = log.info
    t0 = time.perf_counter_ns()
    for i in range(count):
        info("request %d handled in %s ms", i, "1.5")
    return time.perf_counter_ns() - t0

def in_span(count):
    if _native is None:
        return loop(count)
    span = _native.start_span("bench")
    token = _native.set_current(span)
    try:
        return loop(count)
    finally:
        _native.reset_current(token)
        span.end()

loop(2000); in_span(2000)
per = max(1, n // chunks)
out = {"outside": [], "inside": []}
for _ in range(chunks):
    out["outside"].append(loop(per) / per / 1000.0)
    out["inside"].append(in_span(per) / per / 1000.0)
if _native is not None:
    _native.flush(10000)
    out["log_stats"] = _native.log_stats()
out["agent"] = "ferrotel._native" in sys.modules
print(json.dumps(out))
"""

NO_AGENT, FERROTEL, EXPORT = "no agent", "ferrotel", "ferrotel + OTLP logs"


def _env(agent: bool, export: bool, endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON", "FERROTEL_"))}
    env.update(OTEL_SERVICE_NAME="bench-logging", OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none",
               OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    if agent:
        env["PYTHONPATH"] = f"{DIST}/opentelemetry/instrumentation/auto_instrumentation{os.pathsep}{DIST}"
    if export:
        env["OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"] = "true"
        env["BENCH_EXPORT"] = "1"
    return env


def measure_records(records: int, rounds: int, python: str = sys.executable) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from support.otlp_receiver import Receiver

    configs = {NO_AGENT: (False, False), FERROTEL: (True, False), EXPORT: (True, True)}
    samples = {name: {"outside": [], "inside": []} for name in configs}
    stats = {}
    with Receiver(lazy=True) as rx:
        names = list(configs)
        for rnd in range(rounds):
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                agent, export = configs[name]
                out = subprocess.run([python, "-c", CHILD, str(records), "5"], env=_env(agent, export, rx.http_endpoint),
                                     capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    raise RuntimeError(f"{name}: {out.stderr}")
                got = json.loads(out.stdout.strip().splitlines()[-1])
                if got["agent"] != agent:
                    raise RuntimeError(f"{name}: agent loaded = {got['agent']}\n{out.stderr}")
                for case in ("outside", "inside"):
                    samples[name][case].extend(got[case])
                if "log_stats" in got:
                    stats[name] = got["log_stats"]
            rx.clear()
    result = {"records_per_case": records, "rounds": rounds, "per_record_us": {}, "log_stats": stats}
    for name, cases in samples.items():
        result["per_record_us"][name] = {case: statistics.median(v) for case, v in cases.items()}
    return result


def measure_startup(reps: int, python: str = sys.executable) -> dict:
    scripts = {"pass": "pass", "import logging": "import logging"}
    cases = [(s, agent) for s in scripts for agent in (False, True)]
    walls = {c: [] for c in cases}
    for rep in range(reps + 2):
        shift = rep % len(cases)
        for script, agent in cases[shift:] + cases[:shift]:
            env = _env(agent, False, "http://127.0.0.1:9")
            t0 = time.perf_counter()
            subprocess.run([python, "-c", scripts[script]], env=env, check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if rep >= 2:  # two warm-up repetitions
                walls[(script, agent)].append(time.perf_counter() - t0)
    out = {}
    for script in scripts:
        base = statistics.median(walls[(script, False)]) * 1000
        with_agent = statistics.median(walls[(script, True)]) * 1000
        out[script] = {"no agent ms": round(base, 2), "ferrotel ms": round(with_agent, 2), "added ms": round(with_agent - base, 2)}
    return out


def callgrind_records(lengths=(1000, 3000), python: str = sys.executable) -> dict:
    """Instructions per log record by callgrind (load-independent): the child loop run at two
    lengths under ``valgrind --tool=callgrind --separate-threads=yes`` with PYTHONHASHSEED=0;
    per record = difference of the totals / difference of the records logged (half outside, half
    inside a span), so start-up, imports and exit cancel out. "main" is the logging thread, "all"
    adds the agent's threads (the export thread's batching and OTLP encoding)."""
    import glob
    import re
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    from support.otlp_receiver import Receiver

    def totals(path):
        with open(path) as f:
            for line in f:
                m = re.match(r"(?:totals|summary):\s*(\d+)", line)
                if m:
                    return int(m.group(1))
        raise ValueError(path)

    configs = {NO_AGENT: (False, False), FERROTEL: (True, False), EXPORT: (True, True)}
    out = {}
    n1, n2 = lengths
    with Receiver(lazy=True) as rx, tempfile.TemporaryDirectory(prefix="ferrotel-logcg-") as tmp:
        for name, (agent, export) in configs.items():
            got = {}
            # Once outside valgrind: the tree is installed without bytecode, and the first process
            # compiles it (a one-time cost that would skew the difference of the two lengths).
            subprocess.run([python, "-c", CHILD, "10", "1"], env=_env(agent, export, rx.http_endpoint), capture_output=True)
            for n in (n1, n2):
                stem = f"{tmp}/{name.replace(' ', '_').replace('+', 'p')}-{n}.out"
                env = _env(agent, export, rx.http_endpoint)
                env["PYTHONHASHSEED"] = "0"
                proc = subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={stem}",
                                       python, "-c", CHILD, str(n), "1"], env=env, capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(f"{name}: {proc.stderr[-2000:]}")
                files = sorted(f for f in glob.glob(f"{stem}-*")) or [stem]
                per_thread = [totals(f) for f in files]
                got[n] = (per_thread[0], sum(per_thread))
            records = 2 * (n2 - n1)
            out[name] = {"main": (got[n2][0] - got[n1][0]) / records, "all": (got[n2][1] - got[n1][1]) / records}
    return out


def table(result: dict) -> str:
    lines = ["| per log record (µs, median) | outside a span | inside a span | added (outside / inside) | bar | met? |",
             "|---|---|---|---|---|---|"]
    per = result["records"]["per_record_us"]
    base = per[NO_AGENT]
    for name, v in per.items():
        d_out, d_in = v["outside"] - base["outside"], v["inside"] - base["inside"]
        added = "" if name == NO_AGENT else f"{d_out:+.2f} / {d_in:+.2f}"
        bar, met = "", ""
        if name == EXPORT:  # issue 19: a record exported over OTLP costs at most 1 µs more than none
            bar, met = "≤ +1 µs", "met" if max(d_out, d_in) <= 1.0 else "NOT met"
        lines.append(f"| {name} | {v['outside']:.2f} | {v['inside']:.2f} | {added} | {bar} | {met} |")
    lines += ["", "| start-up (ms, median) | no agent | ferrotel | added |", "|---|---|---|---|"]
    for script, v in result["startup"].items():
        lines.append(f"| `python -c \"{script}\"` | {v['no agent ms']} | {v['ferrotel ms']} | {v['added ms']:+} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--callgrind", action="store_true", help="instructions per record by callgrind instead of wall time")
    args = ap.parse_args()
    if not (DIST / "ferrotel").is_dir():
        print(f"bench/logging_cost.py: {DIST} not built: run `make dist`", file=sys.stderr)
        return 1
    if args.callgrind:
        cg = callgrind_records()
        base = cg[NO_AGENT]
        print("instructions per log record (callgrind, PYTHONHASHSEED=0; difference of two run lengths)")
        print(f"{'configuration':22s} {'logging thread':>15s} {'all threads':>12s} {'added (thread)':>15s} {'added (all)':>12s}")
        for name, v in cg.items():
            print(f"{name:22s} {v['main']:15,.0f} {v['all']:12,.0f} {v['main'] - base['main']:+15,.0f} {v['all'] - base['all']:+12,.0f}")
        if args.json:
            Path(args.json).write_text(json.dumps(cg, indent=2))
        return 0
    result = {
        "python": sys.version.split()[0],
        "records": measure_records(int(os.environ.get("BENCH_LOG_RECORDS", 20000)), int(os.environ.get("BENCH_LOG_ROUNDS", 5))),
        "startup": measure_startup(int(os.environ.get("BENCH_STARTUP_REPS", 30))),
    }
    print(table(result))
    print(json.dumps(result["records"]["log_stats"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
