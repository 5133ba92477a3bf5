"""ferrotel benchmark suite (issue 7, measurements 1-3): no agent vs ferrotel vs the pure-Python agent.

    make bench                          # everything: builds dist, the venvs, installs wrk if missing
    .venv/bin/python bench/run.py --only inprocess startup

Settings (environment): BENCH_ROUNDS (5), BENCH_REQUESTS (timed requests per route and round,
4000), BENCH_SECONDS (measured wrk seconds per configuration, 10),
BENCH_SERVER_ROUNDS (5 rotated slices), BENCH_WARMUP_SECONDS (2), BENCH_WRK_CONNECTIONS (2),
BENCH_STARTUP_REPS (30), BENCH_BSP_SCHEDULE_DELAY (unset: each agent's default).

All configurations export over OTLP/HTTP protobuf to one local receiver (tests/support), which
counts the spans of every process by its service name. It keeps the bodies and decodes them
after each measured run (`Receiver(lazy=True)`): a collector runs elsewhere in production, and on
a 2-core machine its decoding would compete with the process being measured. Prints one table and writes
bench/results/latest.md and latest.json (a run with --only writes partial.md/.json). Benchmarks report, they do not judge: the exit code is 0
whatever the bars say (non-zero only when the harness itself cannot run).

Runs under the project venv (.venv), which has what the receiver needs; otherwise standard library.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

import envs  # noqa: E402
import report  # noqa: E402
import server  # noqa: E402
import startup  # noqa: E402
from support.otlp_receiver import Receiver  # noqa: E402

RESULTS = HERE / "results"
PARTS = ("inprocess", "server", "startup", "pipeline", "logging")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def slug(name: str) -> str:
    return name.lower().replace(" ", "-")


class SpanTally:
    """Spans received, per service name (each benchmark process has its own)."""

    def __init__(self, rx: Receiver):
        self.rx = rx
        self.counts = collections.Counter()
        # The last cumulative `http.server.request.duration` count each service pushed.
        self.requests_counted: dict = {}
        self.errors: list[str] = []

    def drain(self) -> None:
        with self.rx._cond:  # reentrant: take and clear atomically, so memory stays flat
            reqs = self.rx.requests("traces")
            metric_reqs = self.rx.requests("metrics")
            self.errors += self.rx.errors()
            self.rx.clear()
        for req in metric_reqs:
            for rm in req.message.resource_metrics:
                service = next((kv.value.string_value for kv in rm.resource.attributes if kv.key == "service.name"), "?")
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == "http.server.request.duration":
                            self.requests_counted[service] = sum(dp.count for dp in m.histogram.data_points)
        for req in reqs:
            for rs in req.message.resource_spans:
                service = next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), "?")
                self.counts[service] += sum(len(ss.spans) for ss in rs.scope_spans)

    def wait(self, service: str, expected: int, timeout: float = 5.0) -> int:
        """Spans of `service` once `expected` arrived (or `timeout` passed), after a short settle."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if self.counts[service] >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        self.drain()
        return self.counts[service]


def _stderr_lines(text: str, limit: int = 20) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[:limit]


# ---------------------------------------------------------------------------
# 1. in-process
# ---------------------------------------------------------------------------


def run_inprocess(configs, rx_endpoint: str, tally: SpanTally) -> dict:
    rounds = _env_int("BENCH_ROUNDS", 5)
    requests = _env_int("BENCH_REQUESTS", 4000)
    routes = ["/", "/users/42"]
    names = list(configs)
    per_round = {route: {n: [] for n in names} for route in routes}
    spans = {n: {"sent": 0, "received": 0} for n in names}
    runs = []
    for rnd in range(rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            cfg = configs[name]
            service = f"bench-inprocess-{slug(name)}-{rnd}"
            env = cfg.env(rx_endpoint, service)
            t0 = time.monotonic()
            proc = subprocess.run([str(cfg.python), str(HERE / "inprocess.py"), "--requests", str(requests),
                                   "--routes", *routes], env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"inprocess under {name} failed ({proc.returncode}):\n{proc.stderr}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            expected = out["total_sent"] if cfg.agent_module else 0
            received = tally.wait(service, expected)
            loaded = out["agents"].get(cfg.agent_module, True) if cfg.agent_module else not any(out["agents"].values())
            for route in routes:
                per_round[route][name].append(statistics.median(out["chunks_us"][route]))
            spans[name]["sent"] += out["total_sent"] if cfg.agent_module else 0
            spans[name]["received"] += received
            runs.append({"round": rnd, "config": name, "chunks_us": out["chunks_us"], "sent": out["total_sent"],
                         "received": received, "agent_loaded": loaded, "wall_s": time.monotonic() - t0,
                         "stderr": _stderr_lines(proc.stderr)})
            print(f"bench: in-process round {rnd + 1}/{rounds} {name:12s} "
                  + "  ".join(f"{r} {per_round[r][name][-1]:7.1f} µs" for r in routes)
                  + f"  spans {received}/{expected}" + ("" if loaded else "  AGENT NOT LOADED"), flush=True)
    paired = None
    if envs.FERROTEL in configs:
        cfg = configs[envs.FERROTEL]
        service = "bench-inprocess-paired"
        pairs = _env_int("BENCH_PAIRS", 60)
        proc = subprocess.run([str(cfg.python), str(HERE / "inprocess.py"), "--paired", str(pairs), "--routes", *routes],
                              env=cfg.env(rx_endpoint, service), capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"inprocess --paired failed ({proc.returncode}):\n{proc.stderr}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        received = tally.wait(service, out["total_sent"])
        paired = {route: {"overhead_us": statistics.median(v["diffs_us"]), "hooked_us": statistics.median(v["hooked_us"]),
                          "raw_us": statistics.median(v["raw_us"]), "pairs": pairs,
                          "q1_us": statistics.quantiles(v["diffs_us"])[0], "q3_us": statistics.quantiles(v["diffs_us"])[2]}
                  for route, v in out["paired"].items()}
        paired["spans"] = {"sent": out["total_sent"], "received": received}
        print("bench: in-process paired (ferrotel, one process) "
              + "  ".join(f"{r} +{paired[r]['overhead_us']:.2f} µs" for r in routes)
              + f"  spans {received}/{out['total_sent']}", flush=True)
    paired_ratio = None
    if envs.FERROTEL in configs:
        paired_ratio = run_paired_ratio(configs[envs.FERROTEL], rx_endpoint, tally, routes)
    summary = {route: {n: {"median_us": statistics.median(v), "min_us": min(v), "max_us": max(v), "rounds_us": v}
                       for n, v in per_route.items()} for route, per_route in per_round.items()}
    # Overhead: the median of per-round differences to no agent (runs of one round are seconds apart,
    # so a burst of load on the machine tends to hit both sides of a difference).
    for route, per_route in per_round.items():
        base = per_route[envs.NO_AGENT]
        for n, v in per_route.items():
            summary[route][n]["overhead_us"] = statistics.median(x - b for x, b in zip(v, base))
    return {"settings": {"rounds": rounds, "requests_per_route_per_round": requests, "chunks": 5, "warmup": 300},
            "routes": summary, "paired": paired, "paired_ratio": paired_ratio, "spans": spans, "agent_loaded": {n: all(r["agent_loaded"] for r in runs if r["config"] == n)
                                                              for n in names},
            "runs": runs}


RATIO_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01",
             "OTEL_METRICS_EXPORTER": "otlp"}


def run_paired_ratio(cfg, rx_endpoint: str, tally: SpanTally, routes: list[str]) -> dict:
    """Issue 19: a high-traffic setting, `parentbased_traceidratio` 0.01 with the RED metrics
    pushed over OTLP; paired in one process as above (hooked vs unwrapped app). The metrics must
    still count every request sent through the hook: the last cumulative
    `http.server.request.duration` count the process pushed is compared with that number."""
    service = "bench-inprocess-paired-ratio"
    pairs = _env_int("BENCH_PAIRS", 60)
    env = cfg.env(rx_endpoint, service)
    env.update(RATIO_ENV)
    proc = subprocess.run([str(cfg.python), str(HERE / "inprocess.py"), "--paired", str(pairs), "--routes", *routes],
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"inprocess --paired (ratio) failed ({proc.returncode}):\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while tally.requests_counted.get(service, 0) < out["total_sent"] and time.monotonic() < deadline:
        time.sleep(0.1)
        tally.drain()
    result = {route: {"overhead_us": statistics.median(v["diffs_us"]), "hooked_us": statistics.median(v["hooked_us"]),
                      "raw_us": statistics.median(v["raw_us"]), "pairs": pairs,
                      "q1_us": statistics.quantiles(v["diffs_us"])[0], "q3_us": statistics.quantiles(v["diffs_us"])[2]}
              for route, v in out["paired"].items()}
    result["env"] = RATIO_ENV
    result["requests"] = {"sent": out["total_sent"], "counted": tally.requests_counted.get(service, 0),
                          "spans_received": tally.counts[service]}
    print("bench: in-process paired, ratio 0.01 + metrics "
          + "  ".join(f"{r} +{result[r]['overhead_us']:.2f} µs" for r in routes)
          + f"  requests counted {result['requests']['counted']}/{out['total_sent']}, spans {tally.counts[service]}", flush=True)
    return result


# ---------------------------------------------------------------------------
# 2. gunicorn + wrk
# ---------------------------------------------------------------------------


def run_server(configs, rx_endpoint: str, tally: SpanTally, wrk: str | None) -> dict:
    seconds = _env_float("BENCH_SECONDS", 10)
    rounds = max(1, _env_int("BENCH_SERVER_ROUNDS", 5))
    warmup = _env_float("BENCH_WARMUP_SECONDS", 2)
    connections = _env_int("BENCH_WRK_CONNECTIONS", 2)
    slice_s = max(1, round(seconds / rounds))
    settings = {"seconds": slice_s * rounds, "rounds": rounds, "slice_seconds": slice_s, "warmup_seconds": warmup,
                "connections": connections, "threads": 1, "workers": 1, "worker_class": "sync", "route": "/"}
    if wrk is None:
        return {"settings": settings, "skipped": "wrk not available"}
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    names = list(configs)
    servers, out = {}, {"settings": settings, "configs": {}}
    try:
        for name in names:  # all up at once; an idle server costs nothing
            servers[name] = server.Server(configs[name].python, configs[name].env(rx_endpoint, f"bench-server-{slug(name)}"),
                                          logs / f"gunicorn-{slug(name)}.log")
        runs = {name: [] for name in names}
        for name in names:
            runs[name].append(server.wrk(wrk, servers[name].url, warmup, connections))
        for rnd in range(rounds):
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                r = server.wrk(wrk, servers[name].url, slice_s, connections)
                runs[name].append(r)
                print(f"bench: gunicorn round {rnd + 1}/{rounds} {name:12s} {r['rps']:8.0f} req/s  "
                      f"p50 {r.get('p50_us', 0):7.0f} µs  p99 {r.get('p99_us', 0):7.0f} µs", flush=True)
    finally:
        codes = {name: srv.stop() for name, srv in servers.items()}
    for name in names:
        cfg, measured = configs[name], runs[name][1:]
        requests = sum(r["requests"] for r in measured)
        duration = sum(r["duration_s"] for r in measured)
        sent_min = servers[name].probes + sum(r["requests"] for r in runs[name])
        sent_max = sent_min + connections * len(runs[name])  # wrk leaves up to -c requests in flight per run
        service = f"bench-server-{slug(name)}"
        received = tally.wait(service, sent_min if cfg.agent_module else 0)
        main = {"requests": requests, "duration_s": duration, "rps": requests / duration if duration else 0.0,
                "non_2xx": sum(r["non_2xx"] for r in measured),
                "socket_errors": sum(r["socket_errors"] for r in measured)}
        for p in ("p50", "p75", "p90", "p99"):
            vals = [r[f"{p}_us"] for r in measured if f"{p}_us" in r]
            if vals:
                main[f"{p}_us"] = statistics.median(vals)
        out["configs"][name] = {
            "main": main, "rounds": [{k: v for k, v in r.items() if k != "raw"} for r in measured],
            "warmup": {k: v for k, v in runs[name][0].items() if k != "raw"},
            "probes": servers[name].probes, "sent_min": sent_min, "sent_max": sent_max, "received": received,
            "spans_ok": (sent_min <= received <= sent_max) if cfg.agent_module else True,
            "exit_code": codes[name], "log": _stderr_lines((logs / f"gunicorn-{slug(name)}.log").read_text()),
        }
        print(f"bench: gunicorn {name:12s} {main['rps']:8.0f} req/s  p50 {main.get('p50_us', 0):7.0f} µs  "
              f"p99 {main.get('p99_us', 0):7.0f} µs  spans {received} (sent {sent_min}..{sent_max})"
              + (f"  non-2xx {main['non_2xx']}" if main["non_2xx"] else "")
              + (f"  socket errors {main['socket_errors']}" if main["socket_errors"] else ""), flush=True)
    return out


# ---------------------------------------------------------------------------
# 3. start-up
# ---------------------------------------------------------------------------


def run_startup(configs, rx_endpoint: str, gnu_time: str | None) -> dict:
    reps = _env_int("BENCH_STARTUP_REPS", 30)
    env_of = {n: c.env(rx_endpoint, "bench-startup") for n, c in configs.items()}
    cases = []
    for script in startup.SCRIPTS:
        for name, cfg in configs.items():
            cases.append((script, name, cfg.python, env_of[name]))
    # The pure-Python agent lives in its own venv: its venv without the agent, as a check that the
    # two venvs start alike (reported in the JSON and as a footnote).
    up = configs[envs.UPSTREAM]
    cases.append(("import flask", "no agent (upstream venv)", up.python,
                  envs.Config("x", up.python, "", "").env(rx_endpoint, "bench-startup")))
    raw = startup.run(cases, reps, gnu_time)
    summary = {}
    for key, s in raw["samples"].items():
        script, name = key.split(" | ")
        summary.setdefault(script, {})[name] = {
            "wall_ms": statistics.median(s["wall_s"]) * 1000,
            "wall_ms_min": min(s["wall_s"]) * 1000,
            "rss_mib": statistics.median(s["rss_kib"]) / 1024 if None not in s["rss_kib"] else None,
        }
    for script, per in summary.items():
        print(f"bench: start-up {script!r}: " + "  ".join(
            f"{n} {v['wall_ms']:.1f} ms {v['rss_mib'] or 0:.1f} MiB" for n, v in per.items()), flush=True)
    agent_ok = {}
    for key, check in raw["checks"].items():
        script, name = key.split(" | ")
        mods = check["modules"]
        if name == envs.FERROTEL:
            agent_ok[key] = mods["ferrotel._native"]
        elif name == envs.UPSTREAM:
            agent_ok[key] = mods["opentelemetry.sdk.trace"]
        else:
            agent_ok[key] = not mods["ferrotel._native"] and not mods["opentelemetry.sdk.trace"]
    return {"settings": {"reps": reps, "warmup": 2, "rss_by": gnu_time}, "summary": summary, "agent_ok": agent_ok, **raw}


# ---------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run_pipeline() -> dict:
    """4. The export pipeline alone: `cargo bench --bench pipeline` (bench/pipeline.rs)."""
    import re

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "pipeline"], cwd=repo, capture_output=True, text=True)
    m = re.search(r"= (\d+) spans/s on one core, (\d+) ns of export-thread CPU per span", out.stdout)
    if not m:
        return {"error": (out.stdout + out.stderr)[-2000:]}
    return {"spans_per_s": int(m.group(1)), "ns_per_span": int(m.group(2)), "line": out.stdout.strip().splitlines()[-1]}


def run_logging() -> dict:
    """Issue 19's log-record bar (≤ +1 µs per record exported over OTLP): bench/logging_cost.py,
    fewer rounds than its own default (BENCH_LOG_ROUNDS, BENCH_LOG_RECORDS to change)."""
    import logging_cost  # bench/ is first on sys.path

    result = {"records": logging_cost.measure_records(_env_int("BENCH_LOG_RECORDS", 20000), _env_int("BENCH_LOG_ROUNDS", 3)),
              "startup": logging_cost.measure_startup(_env_int("BENCH_STARTUP_REPS", 20))}
    print("bench: logging\n" + logging_cost.table(result), flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    args = ap.parse_args()

    t0 = time.monotonic()
    wrk = envs.ensure_wrk() if "server" in args.only else None
    gnu_time = envs.ensure_gnu_time() if "startup" in args.only else None
    configs = envs.build()
    meta = machine_info()
    meta["versions"] = envs.versions(configs)
    results: dict = {"meta": meta}
    with Receiver(lazy=True) as rx:
        tally = SpanTally(rx)
        endpoint = rx.http_endpoint
        if "inprocess" in args.only:
            results["inprocess"] = run_inprocess(configs, endpoint, tally)
        if "server" in args.only:
            results["server"] = run_server(configs, endpoint, tally, wrk)
        if "startup" in args.only:
            results["startup"] = run_startup(configs, endpoint, gnu_time)
        if "pipeline" in args.only:
            results["pipeline"] = run_pipeline()
        if "logging" in args.only:
            results["logging"] = run_logging()
        tally.drain()
        results["receiver_errors"] = tally.errors
        results["spans_by_service"] = dict(tally.counts)
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)

    text = report.render(results)
    if "logging" in results:
        import logging_cost  # bench/ is first on sys.path

        text += "\n\n## Log records exported over OTLP (bench/logging_cost.py)\n\n" + logging_cost.table(results["logging"]) + "\n"
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "latest" if set(args.only) == set(PARTS) else "partial"  # a partial run never replaces the table
    for name, content in ((f"{stem}.md", text), (f"{stem}.json", json.dumps(results, indent=1, default=str) + "\n")):
        tmp = RESULTS / f"{name}.tmp"
        tmp.write_text(content)
        tmp.replace(RESULTS / name)
    print(f"bench: wrote {RESULTS / stem}.md and {stem}.json ({meta['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
