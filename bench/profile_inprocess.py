"""Instructions per request, by callgrind: the in-process loop (bench/inprocess.py) for no agent and
ferrotel (optionally the pure-Python agent), each run at two lengths under
``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``; instructions per request is the difference
of the totals divided by the difference in requests, so interpreter start-up, imports and exit
cancel out. These VMs have no hardware counters (perf stat fails), and instruction counts repeat to
a fraction of a percent where wall time on a shared 2-core VM does not.

    make bench-profile
    .venv/bin/python bench/profile_inprocess.py [--lengths 1000 3000] [--route /users/42] [--upstream]
    .venv/bin/python bench/profile_inprocess.py --cache     # I1/D1 misses, hooked vs unwrapped app

Threads are counted apart (``--separate-threads=yes``): "main" is the request thread, "all" adds
the agent's background threads (export, encoding). The callgrind files of the longer run are kept
in bench/results/callgrind/ for ``callgrind_annotate``. Export goes to a local OTLP receiver, as in
the benchmark. Needs the venvs that bench/run.py builds (run `make bench` once, or this builds them).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import envs  # noqa: E402
from support.otlp_receiver import Receiver  # noqa: E402

OUT = HERE / "results" / "callgrind"
EXTRA_ENV: dict = {}  # --env: added to every run's environment
LABEL = ""  # --label: suffix of the kept callgrind files
WARMUP = 200


def totals(path: str) -> int:
    with open(path) as f:
        for line in f:
            m = re.match(r"(?:totals|summary):\s*(\d+)", line)
            if m:
                return int(m.group(1))
    raise ValueError(f"no totals in {path}")


EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]


def totals_by_event(path: str) -> dict:
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return dict(zip(EVENTS, map(int, line.split()[1:])))
    raise ValueError(f"no totals in {path}")


def cache_profile(cfg: envs.Config, endpoint: str, route: str, n1: int, n2: int) -> None:
    """--cache: callgrind's cache simulation of the request thread, the hooked app against the
    app the hook wraps, in processes that both load the agent: per-request deltas of
    instructions and of level-1 instruction/data cache misses."""
    per = {}
    warm(cfg, endpoint)
    for variant in ("raw", "hooked"):
        got = {}
        for n in (n1, n2):
            stem = OUT / f"cache-{variant}{LABEL}-{n}.out"
            for old in glob.glob(f"{stem}*"):
                os.remove(old)
            env = cfg.env(endpoint, f"bench-profile-cache-{variant}")
            env["PYTHONHASHSEED"] = "0"
            env.update(EXTRA_ENV)
            print(f"profile: cache simulation, {variant} n={n} ...", flush=True)
            cmd = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--separate-threads=yes", f"--callgrind-out-file={stem}",
                   str(cfg.python), str(HERE / "inprocess.py"), "--routes", route, "--requests", str(n), "--chunks", "1",
                   "--warmup", str(WARMUP), "--variant", variant]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"profile: {variant} n={n} failed:\n{proc.stderr[-3000:]}")
            got[n] = totals_by_event(sorted(glob.glob(f"{stem}-*"))[0])
        per[variant] = {e: (got[n2][e] - got[n1][e]) / (n2 - n1) for e in EVENTS}
    print()
    print(f"request thread, per request, route {route}: hooked app minus the app it wraps (agent loaded in both)")
    for e in ("Ir", "I1mr", "D1mr", "D1mw"):
        print(f"  {e:5s} {per['raw'][e]:12,.0f} -> {per['hooked'][e]:12,.0f}   {per['hooked'][e] - per['raw'][e]:+10,.0f}")


def warm(cfg: envs.Config, endpoint: str, variant: str = "hooked") -> None:
    """One short run outside valgrind first: the built tree is installed without bytecode, so the
    first process compiles (and caches) its modules; under callgrind that one-time cost (millions
    of instructions) would land in whichever length ran first and skew the difference."""
    env = cfg.env(endpoint, "bench-profile-warm")
    env["PYTHONHASHSEED"] = "0"
    env.update(EXTRA_ENV)
    subprocess.run([str(cfg.python), str(HERE / "inprocess.py"), "--routes", "/", "--requests", "10", "--chunks", "1",
                    "--warmup", "10", "--variant", variant], env=env, capture_output=True, text=True)


def run_one(cfg: envs.Config, endpoint: str, route: str, n: int) -> dict:
    """Instruction totals of one run: {"main": ..., "all": ..., "threads": k}."""
    stem = OUT / f"{envs_slug(cfg.name)}{LABEL}-{n}.out"
    for old in glob.glob(f"{stem}*"):
        os.remove(old)
    env = cfg.env(endpoint, f"bench-profile-{envs_slug(cfg.name)}-{n}")
    env["PYTHONHASHSEED"] = "0"
    env.update(EXTRA_ENV)
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={stem}",
           str(cfg.python), str(HERE / "inprocess.py"), "--routes", route, "--requests", str(n), "--chunks", "1",
           "--warmup", str(WARMUP)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"profile: {cfg.name} n={n} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    files = sorted(glob.glob(f"{stem}-*")) or [str(stem)]
    if files[0] != str(stem) and stem.exists() and stem.stat().st_size == 0:
        stem.unlink()  # with --separate-threads callgrind leaves the bare name empty
    per_thread = [totals(f) for f in files]
    return {"main": per_thread[0], "all": sum(per_thread), "threads": len(files), "files": files}


def envs_slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs=2, default=[1000, 3000], metavar=("N1", "N2"))
    ap.add_argument("--route", default="/")
    ap.add_argument("--upstream", action="store_true", help="also the pure-Python agent (slow under valgrind)")
    ap.add_argument("--cache", action="store_true", help="cache simulation: hooked vs unwrapped app (see cache_profile)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the agent's runs, e.g. OTEL_TRACES_SAMPLER_ARG=0.01 (repeatable)")
    ap.add_argument("--label", default="", help="suffix for the kept callgrind files (to keep runs with different --env apart)")
    args = ap.parse_args()
    for item in args.env:
        k, _, v = item.partition("=")
        EXTRA_ENV[k] = v
    global LABEL
    LABEL = args.label
    n1, n2 = sorted(args.lengths)
    if n1 == n2:
        raise SystemExit("profile: the two lengths must differ")
    if not shutil.which("valgrind"):
        envs.ensure_tool("valgrind", "valgrind")
    configs = envs.build()
    names = [envs.NO_AGENT, envs.FERROTEL] + ([envs.UPSTREAM] if args.upstream else [])
    OUT.mkdir(parents=True, exist_ok=True)

    if args.cache:
        with Receiver(lazy=True) as rx:
            cache_profile(configs[envs.FERROTEL], rx.http_endpoint, args.route, n1, n2)
        return 0

    per_request = {}
    with Receiver(lazy=True) as rx:
        for name in names:
            runs = {}
            warm(configs[name], rx.http_endpoint)
            for n in (n1, n2):
                print(f"profile: {name} route {args.route} n={n} under callgrind ...", flush=True)
                runs[n] = run_one(configs[name], rx.http_endpoint, args.route, n)
            per_request[name] = {k: (runs[n2][k] - runs[n1][k]) / (n2 - n1) for k in ("main", "all")}
            per_request[name]["files"] = runs[n2]["files"]
            print(f"profile: {name}: {per_request[name]['main']:,.0f} instructions/request on the request thread, "
                  f"{per_request[name]['all']:,.0f} all threads ({runs[n2]['threads']} thread files)", flush=True)

    base = per_request[envs.NO_AGENT]
    print()
    print(f"instructions per request, route {args.route}, difference of {n2} and {n1} requests (PYTHONHASHSEED=0)")
    print(f"{'configuration':14s} {'request thread':>16s} {'all threads':>14s} {'delta (req.)':>14s} {'delta (all)':>14s}")
    for name, v in per_request.items():
        print(f"{name:14s} {v['main']:16,.0f} {v['all']:14,.0f} {v['main'] - base['main']:+14,.0f} "
              f"{v['all'] - base['all']:+14,.0f}")
    print()
    print("annotate, e.g.: callgrind_annotate --inclusive=yes " + per_request[envs.FERROTEL]["files"][0] + " | head -60")
    return 0


if __name__ == "__main__":
    sys.exit(main())
