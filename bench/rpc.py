"""Per-call cost of the gRPC client and server hooks (issue 16), beside the pure-Python agent's.

    FERROTEL_DIST=dist/autoinstrumentation .venv/bin/python bench/rpc.py [--calls 4000] [--rounds 7]

One sync unary call (a few bytes each way, generic handlers, no generated code) from a channel to
a ``grpc.server`` in the same process, over loopback: the cheapest real call there is, so the
hooks' cost is as visible as it gets. Three processes, the same loop in each: no agent; ferrotel
injected the Operator's way (``PYTHONPATH``); the pure-Python agent (its sitecustomize,
``opentelemetry-instrumentation-grpc`` client and server). Both agents export over OTLP/HTTP to a
sink that answers 200 and discards; every call is a root span (no request around it).

Then instruction counts under callgrind (valgrind), the repeatable figure on a shared VM where
wall time is not: every thread of the process, per call, for the same loops.

Columns: µs per call (median of rounds) per process and the difference to no agent, then
"paired", measured inside one process where chunks of calls alternate between a hooked and an
unhooked path, which removes the process-to-process noise (several µs on a loaded 2-vCPU VM for a
~150 µs call): the client hook alone (hooked channel → unhooked server, against unhooked →
unhooked) and the server hook alone (unhooked channel → hooked server). The unhooked objects are
the originals the hooks keep as ``__wrapped__``. The bar (issue 16): ≤ 3 µs per call for each hook.
The venvs are this bench's own (``.venvs/bench-rpc-{base,upstream}``): grpcio pinned to the
project's. Reports only: the exit code is 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import envs  # noqa: E402
from db import start_sink  # noqa: E402

LOOP = r"""
import functools, gc, json, statistics, sys, time
from concurrent import futures
import grpc
n, rounds, paired = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def handler(request, context):
    return request

generic = grpc.method_handlers_generic_handler("bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(handler)})

def serve(make):
    server = make(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port

def timed(f, count):
    t0 = time.perf_counter_ns()
    for _ in range(count):
        f(b"ping")
    return (time.perf_counter_ns() - t0) / count / 1000

# Unhooked originals (ferrotel keeps them as __wrapped__; without an agent they are the plain ones).
make_plain_server = getattr(grpc.server, "__wrapped__", grpc.server)
server, target = serve(grpc.server)
plain_server, plain_target = serve(make_plain_server)
hooked_call = grpc.insecure_channel(target).unary_unary("/bench.Echo/Call")
def plain_caller(t):
    mc = grpc.insecure_channel(t).unary_unary("/bench.Echo/Call")
    method = type(mc).__call__
    return functools.partial(getattr(method, "__wrapped__", method), mc)
variants = {
    "hooked": hooked_call,                                                         # both hooks
    "client": grpc.insecure_channel(plain_target).unary_unary("/bench.Echo/Call"),  # client hook only
    "server": plain_caller(target),                                                # server hook only
    "plain": plain_caller(plain_target),                                           # neither
}
for f in variants.values():
    for _ in range(20 if paired in variants else 200):  # under callgrind every call is slow
        f(b"ping")
gc.disable()
if paired in variants:  # callgrind: just the loop
    call = variants[paired]
    for _ in range(n):
        call(b"ping")
    sys.exit(0)
out = {"us": statistics.median([timed(hooked_call, n) for _ in range(rounds)])}
if paired == "1":
    chunk = max(50, n // 20)
    client, srv = [], []
    for _ in range(rounds * 10):
        base = timed(variants["plain"], chunk)
        client.append(timed(variants["client"], chunk) - base)
        base = timed(variants["plain"], chunk)
        srv.append(timed(variants["server"], chunk) - base)
    out["client_paired"] = statistics.median(client)
    out["server_paired"] = statistics.median(srv)
gc.enable()
print(json.dumps(out))
"""


def _instructions(cfg, endpoint: str, n: int, variant: str) -> int | None:
    """Instructions of the whole process (every thread: the client's, gRPC's, the server's
    workers and the agent's export thread) for a loop of `n` calls."""
    env = cfg.env(endpoint, "bench-rpc")
    env.update(OTEL_BSP_MAX_QUEUE_SIZE="1000000", OTEL_METRICS_EXPORTER="none", PYTHONHASHSEED="0")
    return envs.callgrind_instructions(cfg, env, ["-c", LOOP, str(n), "0", variant])


def callgrind(configs: dict, endpoint: str, lengths=(50, 250)) -> dict | None:
    plan = [
        ("no agent", configs[envs.NO_AGENT], "hooked"),
        ("ferrotel, neither hook", configs[envs.FERROTEL], "plain"),
        ("ferrotel, client hook", configs[envs.FERROTEL], "client"),
        ("ferrotel, server hook", configs[envs.FERROTEL], "server"),
        ("pure-Python, both hooks", configs[envs.UPSTREAM], "hooked"),
    ]
    return envs.per_call_instructions(plan, lambda cfg, n, v: _instructions(cfg, endpoint, n, v), lengths)


UPSTREAM_PACKAGES = ["opentelemetry-distro", "opentelemetry-exporter-otlp", "opentelemetry-instrumentation-grpc"]


def build() -> dict:
    """The bench's own venvs, grpcio (and protobuf) pinned to the project's."""
    pins = ["grpcio==" + importlib.metadata.version("grpcio"), "protobuf==" + importlib.metadata.version("protobuf")]
    return envs.library_configs("rpc", pins, UPSTREAM_PACKAGES)


def run(cfg, endpoint: str, calls: int, rounds: int) -> dict:
    env = cfg.env(endpoint, "bench-rpc")
    env.update(OTEL_BSP_MAX_QUEUE_SIZE="1000000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4096", OTEL_METRICS_EXPORTER="none")
    paired = "1" if cfg.name == envs.FERROTEL else "0"  # "0": timing only, no paired rounds
    out = subprocess.run([str(cfg.python), "-c", LOOP, str(calls), str(rounds), paired], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{cfg.name}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_RPC_CALLS", "4000")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_RPC_ROUNDS", "7")))
    args = parser.parse_args()
    if not (envs.DIST / "ferrotel").is_dir():
        raise SystemExit(f"bench: {envs.DIST} not built: run `make dist` (make bench does)")
    configs = build()
    endpoint = start_sink()
    r = {name: run(cfg, endpoint, args.calls, args.rounds) for name, cfg in configs.items()}
    version = subprocess.run([str(configs[envs.UPSTREAM].python), "-c", "import importlib.metadata as m; print(m.version('opentelemetry-instrumentation-grpc'))"],
                             capture_output=True, text=True).stdout.strip()
    base, ours, up = r[envs.NO_AGENT]["us"], r[envs.FERROTEL]["us"], r[envs.UPSTREAM]["us"]
    client, server = r[envs.FERROTEL].get("client_paired"), r[envs.FERROTEL].get("server_paired")
    met = lambda v: "-" if v is None else ("met" if v <= 3 else "**not met**")  # noqa: E731
    fmt = lambda v: "-" if v is None else f"{v:+.2f}"  # noqa: E731
    print(f"grpcio {importlib.metadata.version('grpcio')}, opentelemetry-instrumentation-grpc {version or '?'}, "
          f"{args.calls} calls × {args.rounds} rounds; sync unary call over loopback, client and server in one process.\n")
    print("| sync unary call | no agent µs | ferrotel µs | ferrotel Δ (both hooks) | pure-Python µs | pure-Python Δ (both hooks) |")
    print("|---|---|---|---|---|---|")
    print(f"| per call | {base:.1f} | {ours:.1f} | {fmt(ours - base)} | {up:.1f} | {fmt(up - base)} |")
    print()
    print("| ferrotel, paired in one process (wall time) | Δ µs per call | bar ≤ 3 µs (wall time) |")
    print("|---|---|---|")
    print(f"| client hook (the multi-callables' call methods) | {fmt(client)} | {met(client)} |")
    print(f"| server hook (interceptor on the server) | {fmt(server)} | {met(server)} |")
    profile = callgrind(configs, endpoint)
    if profile:
        rate = 7300  # instructions per µs of this machine's CPython (bench/results/client.md)
        plain = profile["ferrotel, neither hook"]
        client_i, server_i = profile["ferrotel, client hook"] - plain, profile["ferrotel, server hook"] - plain
        both_i, up_i = client_i + server_i, profile["pure-Python, both hooks"] - profile["no agent"]
        print()
        print("Instructions per call (callgrind, every thread of the process: client, gRPC's, server workers, export; the "
              "difference of two loop lengths, so start-up cancels out). Repeatable where wall time on a loaded VM is not.\n")
        print("| configuration | instructions per call | Δ vs its unhooked | ≈ µs at %d instr/µs | bar ≤ 3 µs |" % rate)
        print("|---|---|---|---|---|")
        print(f"| no agent | {profile['no agent']:.0f} | | | |")
        print(f"| ferrotel, hooks present but not on this call's path | {plain:.0f} | | | |")
        for label, d in (("ferrotel, client hook", client_i), ("ferrotel, server hook", server_i)):
            print(f"| {label} | {profile[label]:.0f} | +{d:.0f} | {d / rate:.2f} | {met(d / rate)} |")
        print(f"| ferrotel, both hooks (sum) | | +{both_i:.0f} | {both_i / rate:.2f} | |")
        print(f"| pure-Python agent, both hooks | {profile['pure-Python, both hooks']:.0f} | +{up_i:.0f} (vs no agent) | {up_i / rate:.2f} | |")
        if both_i > 0:
            print(f"\npure-Python agent's hooks ÷ ferrotel's: {up_i / both_i:.1f}×")
    print(json.dumps({"rpc": r, "rpc_profile": profile}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
