"""Per-call cost of the gRPC client and server hooks (issue 16), beside the pure-Python agent's.

    FERROTEL_DIST=dist/autoinstrumentation .venv/bin/python bench/rpc.py [--calls 4000] [--rounds 7]

One sync unary call (a few bytes each way, generic handlers, no generated code) from a channel to
a ``grpc.server`` in the same process, over loopback: the cheapest real call there is, so the
hooks' cost is as visible as it gets. Three processes, the same loop in each: no agent; ferrotel
injected the Operator's way (``PYTHONPATH``); the pure-Python agent (its sitecustomize,
``opentelemetry-instrumentation-grpc`` client and server). Both agents export over OTLP/HTTP to a
sink that answers 200 and discards; every call is a root span (no request around it).

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
import gc, json, statistics, sys, time
from concurrent import futures
import grpc
n, rounds, paired = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"

def handler(request, context):
    return request

generic = grpc.method_handlers_generic_handler("bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(handler)})

def serve(make):
    server = make(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "127.0.0.1:%d" % port

def caller(make_channel, target):
    return make_channel(target).unary_unary("/bench.Echo/Call")

def timed(f, count):
    t0 = time.perf_counter_ns()
    for _ in range(count):
        f(b"ping")
    return (time.perf_counter_ns() - t0) / count / 1000

server, target = serve(grpc.server)
call = caller(grpc.insecure_channel, target)
for _ in range(max(200, n // 10)):
    call(b"ping")
gc.disable()
out = {"us": statistics.median([timed(call, n) for _ in range(rounds)])}
if paired:
    plain_server_make = getattr(grpc.server, "__wrapped__", None)
    plain_channel_make = getattr(grpc.insecure_channel, "__wrapped__", None)
    if plain_server_make is not None and plain_channel_make is not None:
        plain_server, plain_target = serve(plain_server_make)
        plain = caller(plain_channel_make, plain_target)
        client_hooked = caller(grpc.insecure_channel, plain_target)
        server_hooked = caller(plain_channel_make, target)
        for f in (plain, client_hooked, server_hooked):
            for _ in range(200):
                f(b"ping")
        chunk = max(50, n // 20)
        client, srv = [], []
        for _ in range(rounds * 10):
            base = timed(plain, chunk)
            client.append(timed(client_hooked, chunk) - base)
            base = timed(plain, chunk)
            srv.append(timed(server_hooked, chunk) - base)
        out["client_paired"] = statistics.median(client)
        out["server_paired"] = statistics.median(srv)
gc.enable()
print(json.dumps(out))
"""

UPSTREAM_PACKAGES = ["opentelemetry-distro", "opentelemetry-exporter-otlp", "opentelemetry-instrumentation-grpc"]


def build() -> dict:
    """The bench's own venvs, grpcio (and protobuf) pinned to the project's."""
    pins = ["grpcio==" + importlib.metadata.version("grpcio"), "protobuf==" + importlib.metadata.version("protobuf")]
    base = envs._ensure_venv(envs.VENVS / "bench-rpc-base", pins)
    up = envs._ensure_venv(envs.VENVS / "bench-rpc-upstream", pins + UPSTREAM_PACKAGES)
    ferrotel_path = f"{envs.DIST}/opentelemetry/instrumentation/auto_instrumentation{os.pathsep}{envs.DIST}"
    return {
        envs.NO_AGENT: envs.Config(envs.NO_AGENT, base, "", ""),
        envs.FERROTEL: envs.Config(envs.FERROTEL, base, ferrotel_path, "ferrotel._native"),
        envs.UPSTREAM: envs.Config(envs.UPSTREAM, up, str(envs.upstream_sitecustomize_dir(up)), ""),
    }


def run(cfg, endpoint: str, calls: int, rounds: int) -> dict:
    env = cfg.env(endpoint, "bench-rpc")
    env.update(OTEL_BSP_MAX_QUEUE_SIZE="1000000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4096", OTEL_METRICS_EXPORTER="none")
    paired = "1" if cfg.name == envs.FERROTEL else "0"
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
    fmt = lambda v: "-" if v is None else f"+{v:.2f}"  # noqa: E731
    print(f"grpcio {importlib.metadata.version('grpcio')}, opentelemetry-instrumentation-grpc {version or '?'}, "
          f"{args.calls} calls × {args.rounds} rounds; sync unary call over loopback, client and server in one process.\n")
    print("| sync unary call | no agent µs | ferrotel µs | ferrotel Δ (both hooks) | pure-Python µs | pure-Python Δ (both hooks) |")
    print("|---|---|---|---|---|---|")
    print(f"| per call | {base:.1f} | {ours:.1f} | {fmt(ours - base)} | {up:.1f} | {fmt(up - base)} |")
    print()
    print("| ferrotel, paired in one process | Δ µs per call | bar ≤ 3 µs |")
    print("|---|---|---|")
    print(f"| client hook (interceptor on the channel) | {fmt(client)} | {met(client)} |")
    print(f"| server hook (interceptor on the server) | {fmt(server)} | {met(server)} |")
    print(json.dumps({"rpc": r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
