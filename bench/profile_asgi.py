"""What ferrotel's automatic hooks add to a FastAPI and a Django request, measured paired in one
process: the hooked application against the same application built without the hook ("raw"),
both under the loaded agent, so only the hook's own work differs.

    .venv/bin/python bench/profile_asgi.py                       # callgrind, both apps
    .venv/bin/python bench/profile_asgi.py --apps fastapi --cache # + I1/D1 misses (--cache-sim=yes)
    .venv/bin/python bench/profile_asgi.py --wall                # paired wall clock (noisy VM)
    .venv/bin/python bench/profile_asgi.py --apps fastapi --only ferrotel --by-function
        # + where hooked - quiet goes, by function (needs an unstripped build: see --by-function)
    .venv/bin/python bench/profile_asgi.py --apps fastapi --only ferrotel \
        --env OTEL_TRACES_SAMPLER=parentbased_traceidratio --env OTEL_TRACES_SAMPLER_ARG=0.01 \
        --env OTEL_METRICS_EXPORTER=otlp                          # sampled-out requests

- ``fastapi``: bench/asgi.py's app (``GET /`` -> ``hello``) awaited in a loop. Hooked: the app as
  the agent left it (its middleware stack under the native ASGI middleware, built on the first
  request inside ``Starlette.__call__``). Raw: a second FastAPI app with the same route whose
  stack was built by the original ``build_middleware_stack``.
- ``django``: bench/django_app.py (``/items/<int:item_id>``, no middleware) called through
  WSGI as gunicorn does (environ copy, ``app(environ, start_response)``, body iterated and
  closed). Hooked: Django's ``WSGIHandler`` as the agent patched it (its ``__call__`` and
  ``BaseHandler.resolve_request``). Raw: a ``WSGIHandler`` subclass with the original functions.

FastAPI also has ``quiet``: the raw app with FastAPI's per-request telemetry check answered "no"
as the hook answers it (``NativeTelemetry.enabled``; see README, FastAPI). Hooked minus raw is
what the app pays with the agent; hooked minus quiet is the hook's own work.

Callgrind: per configuration and app, one process runs every variant n1 times, and one process
per variant runs that variant n2 times and the others n1 times, after the same warm-up; the
differences give instructions per request of each variant on the request thread, with the same objects alive in every process
(heap layout moves a FastAPI request by thousands of instructions between unlike processes).
Exporter ``none`` for callgrind (the request thread's work is the same; the export thread is
not counted), OTLP to a local receiver for wall clock. Needs the venvs bench/asgi.py builds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "results" / "callgrind"

# --------------------------------------------------------------------------- the apps (worker side)


def fastapi_targets():
    """(raw, hooked, run, extra): ASGI apps, a driver `run(target, n)`, and more variants by name:
    ``quiet`` is the raw app with FastAPI's per-request telemetry check answered "no" the way the
    hook answers it (so hooked minus quiet is the hook's own work, hooked minus raw what the app
    pays)."""
    sys.path.insert(0, str(HERE))
    import asgi
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    hooked = asgi.app
    raw = FastAPI()

    @raw.get("/")
    async def hello():
        return PlainTextResponse("hello")

    quiet = FastAPI()

    @quiet.get("/")
    async def hello2():
        return PlainTextResponse("hello")

    build = FastAPI.build_middleware_stack
    raw.middleware_stack = getattr(build, "__wrapped__", build)(raw)
    quiet.middleware_stack = getattr(build, "__wrapped__", build)(quiet)
    quiet._native_telemetry.enabled = bool
    loop = asyncio.new_event_loop()

    def run(target, n):
        return loop.run_until_complete(asgi._drive(target, n))

    return raw, hooked, run, {"quiet": quiet}


def django_targets():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app")
    sys.path.insert(0, str(HERE))
    import django_app
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.wsgi import WSGIHandler

    hooked = django_app.application()  # django.setup(); the agent's hooks are on WSGIHandler

    class RawHandler(WSGIHandler):
        __call__ = getattr(WSGIHandler.__call__, "__wrapped__", WSGIHandler.__call__)
        resolve_request = getattr(BaseHandler.resolve_request, "__wrapped__", BaseHandler.resolve_request)

    return RawHandler(), hooked, django_app.drive, {}


def worker(app: str, plan: list[tuple[str, int]], warmup: int, chunks: int) -> dict:
    raw, hooked, run, extra = fastapi_targets() if app == "fastapi" else django_targets()
    targets = {"raw": raw, "hooked": hooked, **extra}
    targets = {name: targets[name] for name, _ in plan}
    for t in targets.values():
        run(t, warmup)
    gc.collect()
    gc.freeze()
    times = {name: [] for name in targets}
    for i in range(chunks):
        order = plan if i % 2 == 0 else plan[::-1]
        for name, n in order:
            if n:
                times[name].append(run(targets[name], n) / n / 1000.0)
    return {"app": app, "us": times, "native": "ferrotel._native" in sys.modules}


# --------------------------------------------------------------------------- orchestration


def _configs():
    sys.path.insert(0, str(HERE))
    import asgi

    cfgs = asgi.configs()
    return {k: cfgs[k] for k in (asgi.NO_AGENT, asgi.FERROTEL)}


def _worker_cmd(cfg, app, plan, warmup, chunks):
    spec = ",".join(f"{name}:{n}" for name, n in plan)
    return [str(cfg.python), str(Path(__file__).resolve()), "--worker", app, "--plan", spec, "--warmup", str(warmup),
            "--chunks", str(chunks)]


EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]


def _main_thread_totals(stem: str) -> dict:
    files = sorted(glob.glob(f"{stem}-*"))
    main = next(f for f in files if f.endswith("-01"))
    with open(main) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return dict(zip(EVENTS, map(int, line.split()[1:])))
    raise ValueError(f"no totals in {main}")


def callgrind(cfgs, apps, n1, n2, warmup, cache, endpoint, keep, extra_env=None, only_variants=None, by_function=0):
    rows = []
    for app in apps:
        for name, cfg in cfgs.items():
            env = cfg.env(endpoint, f"bench-profile-asgi-{app}")
            env.update(PYTHONHASHSEED="0", OTEL_TRACES_EXPORTER="none")
            env.update(extra_env or {})
            got = {}
            variants = ["raw", "hooked"] + (["quiet"] if app == "fastapi" else [])
            if only_variants:
                variants = [v for v in variants if v in only_variants]
            mains = {}
            # Every module's bytecode compiled before measuring: a run that compiles a changed or
            # never-imported file (the tree, bench/) counts the compiler, ~50k instructions per
            # request of a 1,200-request run.
            subprocess.run(_worker_cmd(cfg, app, [(v, 2) for v in variants], 2, 1), env=env, cwd=str(HERE), check=True,
                           capture_output=True)
            plans = [tuple(n1 for _ in variants)] + [tuple(n2 if i == j else n1 for i in range(len(variants))) for j in range(len(variants))]
            with tempfile.TemporaryDirectory() as tmp:
                for counts in plans:
                    tag = ".".join(map(str, counts))
                    stem = f"{tmp}/cg.{tag}"
                    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={stem}"]
                    if cache:
                        cmd.append("--cache-sim=yes")
                    cmd += _worker_cmd(cfg, app, list(zip(variants, counts)), warmup, 1)
                    print(f"profile_asgi: {app} / {name}: {' + '.join(f'{v} x{c}' for v, c in zip(variants, counts))} under callgrind ...",
                          file=sys.stderr, flush=True)
                    subprocess.run(cmd, env=env, cwd=str(HERE), check=True, capture_output=True)
                    got[counts] = _main_thread_totals(stem)
                    if by_function:
                        kept = Path(tmp) / f"main.{tag}"
                        shutil.copy(next(f for f in sorted(glob.glob(f"{stem}-*")) if f.endswith("-01")), kept)
                        mains[counts] = kept
                    if keep:  # bench/results/callgrind/asgi-<app>-<config>-<a>-<b>-<thread>
                        OUT.mkdir(parents=True, exist_ok=True)
                        for f in glob.glob(f"{stem}-*"):
                            dest = OUT / f"asgi-{app}-{name.replace(' ', '-')}-{tag.replace('.', '-')}{f[len(stem):]}"
                            shutil.copy(f, dest)
                if by_function and name != "no agent":
                    _by_function(mains, plans, variants, n2 - n1, by_function)
            events = EVENTS if cache else ["Ir"]
            per = {v: {e: (got[plans[j + 1]][e] - got[plans[0]][e]) / (n2 - n1) for e in events} for j, v in enumerate(variants)}
            rows.append({"app": app, "config": name, **per})
            print(f"profile_asgi: {app} / {name}: " + ", ".join(f"{v} {per[v]['Ir']:,.0f}" for v in variants)
                  + " instructions/request"
                  + "".join(f" (hooked - {o} {per['hooked']['Ir'] - per[o]['Ir']:+,.0f})" for o in ("raw", "quiet") if o in per and "hooked" in per),
                  file=sys.stderr, flush=True)
    return rows


def _annotate(path: Path, inclusive: bool) -> dict:
    """{function: Ir} from callgrind_annotate (self cost, or inclusive)."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--show-percs=no", "--auto=no",
                          f"--inclusive={'yes' if inclusive else 'no'}", str(path)],
                         capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].replace(",", "").isdigit() and ":" in parts[1]:
            fn = parts[1].split(" [", 1)[0]
            got[fn] = got.get(fn, 0) + int(parts[0].replace(",", ""))
    return got


def _by_function(mains, plans, variants, dn, top):
    """Where ``hooked`` differs from ``quiet`` (else ``raw``), per request and function: self cost
    (the difference of the two variants' long runs), and the agent's own entry points inclusive
    (the hooked long run minus the all-short run). Printed to stderr."""
    other = "quiet" if "quiet" in variants else "raw"
    if "hooked" not in variants or other not in variants:
        return
    h = plans[variants.index("hooked") + 1]
    o = plans[variants.index(other) + 1]
    self_h, self_o = _annotate(mains[h], False), _annotate(mains[o], False)
    diff = {f: (self_h.get(f, 0) - self_o.get(f, 0)) / dn for f in set(self_h) | set(self_o)}
    print(f"\nper request, hooked - {other}, self cost by function (total {sum(diff.values()):+,.0f}):", file=sys.stderr)
    for f, v in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]:
        if abs(v) >= 20:
            print(f"  {v:+10,.0f}  {f}", file=sys.stderr)
    inc_h, inc_0 = _annotate(mains[h], True), _annotate(mains[plans[0]], True)
    inc = {f: (inc_h.get(f, 0) - inc_0.get(f, 0)) / dn for f in inc_h if "ferrotel" in f or "_native" in f}
    print("\nper request, hooked, inclusive, the agent's functions:", file=sys.stderr)
    for f, v in sorted(inc.items(), key=lambda kv: -kv[1])[:top]:
        if v >= 20:
            print(f"  {v:10,.0f}  {f}", file=sys.stderr)


def wall(cfgs, apps, per_chunk, chunks, warmup, endpoint):
    rows = []
    for app in apps:
        for name, cfg in cfgs.items():
            env = cfg.env(endpoint, f"bench-profile-asgi-{app}")
            load0 = os.getloadavg()[0]
            out = subprocess.run(_worker_cmd(cfg, app, [("raw", per_chunk), ("hooked", per_chunk)], warmup, chunks), env=env,
                                 cwd=str(HERE), capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"profile_asgi: {app}/{name} failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            raw, hooked = r["us"]["raw"], r["us"]["hooked"]
            diffs = [h - w for w, h in zip(raw, hooked)]
            rows.append({"app": app, "config": name, "raw_us": statistics.median(raw), "hooked_us": statistics.median(hooked),
                         "paired_diff_us": statistics.median(diffs), "load": (load0, os.getloadavg()[0])})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["fastapi", "django"])
    ap.add_argument("--plan", default="raw:100,hooked:100")
    ap.add_argument("--apps", nargs="+", default=["fastapi", "django"], choices=["fastapi", "django"])
    ap.add_argument("--lengths", type=int, nargs=2, default=[300, 900])
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--per-chunk", type=int, default=500)
    ap.add_argument("--cache", action="store_true", help="callgrind --cache-sim=yes (I1/D1 misses)")
    ap.add_argument("--wall", action="store_true", help="paired wall clock instead of callgrind")
    ap.add_argument("--only", choices=["no agent", "ferrotel"], help="one configuration")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind files in bench/results/callgrind/")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="added to every callgrind run's environment (e.g. the sampler and its ratio)")
    ap.add_argument("--variants", nargs="+", choices=["raw", "hooked", "quiet"], help="only these variants")
    ap.add_argument("--by-function", type=int, nargs="?", const=60, default=0, metavar="N",
                    help="also print the N functions where hooked and quiet (else raw) differ most, per request "
                         "(callgrind_annotate; function names need an unstripped build: "
                         "CARGO_PROFILE_RELEASE_STRIP=none, FERROTEL_DIST=<its tree>)")
    args = ap.parse_args()
    if args.worker:
        plan = [(p.split(":")[0], int(p.split(":")[1])) for p in args.plan.split(",")]
        print(json.dumps(worker(args.worker, plan, args.warmup, args.chunks)))
        return 0
    cfgs = _configs()
    if args.only:
        cfgs = {args.only: cfgs[args.only]}
    sys.path.insert(0, str(REPO / "tests"))
    from support.otlp_receiver import Receiver

    with Receiver(lazy=True) as rx:
        endpoint = rx.endpoint("http/protobuf")
        if args.wall:
            rows = wall(cfgs, args.apps, args.per_chunk, args.chunks, args.warmup, endpoint)
            print("| app | configuration | raw µs | hooked µs | paired difference µs (median) | load avg (1 min) before/after |")
            print("|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['app']} | {r['config']} | {r['raw_us']:.2f} | {r['hooked_us']:.2f} | {r['paired_diff_us']:+.2f} | "
                      f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |")
        else:
            n1, n2 = sorted(args.lengths)
            extra = dict(e.split("=", 1) for e in args.env)
            rows = callgrind(cfgs, args.apps, n1, n2, args.warmup, args.cache, endpoint, args.keep, extra, args.variants,
                             args.by_function)
            print(f"| app | configuration | raw instr/request | hooked instr/request | hooked - raw (what the app pays) | "
                  f"hooked - quiet (the hook's own work) | {'I1 misses | D1 misses |' if args.cache else ''}")
            print("|---|---|---|---|---|---|" + ("---|---|" if args.cache else ""))
            for r in rows:
                if "hooked" not in r or "raw" not in r:
                    vs = [v for v in ("raw", "hooked", "quiet") if v in r]
                    print("| " + " | ".join(f"{r['app']} {r['config']} {v} {r[v]['Ir']:,.0f}" for v in vs) + " |")
                    continue
                extra = ""
                if args.cache:
                    extra = (f" {r['hooked']['I1mr'] - r['raw']['I1mr']:+,.0f} | "
                             f"{r['hooked']['D1mr'] + r['hooked']['D1mw'] - r['raw']['D1mr'] - r['raw']['D1mw']:+,.0f} |")
                own = f"{r['hooked']['Ir'] - r['quiet']['Ir']:+,.0f}" if "quiet" in r else "(same)"
                print(f"| {r['app']} | {r['config']} | {r['raw']['Ir']:,.0f} | {r['hooked']['Ir']:,.0f} | "
                      f"{r['hooked']['Ir'] - r['raw']['Ir']:+,.0f} | {own} |{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
