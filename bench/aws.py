"""Per-call cost of the botocore hook (issue 16), beside the pure-Python agent's.

    FERROTEL_DIST=dist/autoinstrumentation .venv/bin/python bench/aws.py [--calls 2000] [--rounds 7]

One AWS API call (S3 ``HeadObject`` with a bucket and key, so the S3 attributes are read) through a
real botocore client, all of botocore's own work included (parameter validation, serialisation,
endpoint rules, signing set-up, events), with no network: a ``before-call`` handler answers the
call with a canned response, as botocore's ``Stubber`` does, so what differs between the
configurations is the hook alone, not a server's noise. Three processes, the same loop in each: no
agent; ferrotel injected the Operator's way (``PYTHONPATH``); the pure-Python agent (its
sitecustomize, ``opentelemetry-instrumentation-botocore``). Both agents export over OTLP/HTTP to a
sink that answers 200 and discards; every call is a root span.

Columns: µs per call (median of rounds) per process and the difference to no agent, then
"paired": inside the ferrotel process, chunks of calls alternate between the hooked method and the
original the hook keeps as ``__wrapped__``. Then instruction counts under callgrind (every thread
of the process, the difference of two loop lengths): the repeatable figure on a shared VM. The
bar (issue 16): ≤ 3 µs per call. The venvs are this bench's own (``.venvs/bench-aws-{base,
upstream}``), botocore pinned to the project's. Reports only: exit code 0 whatever the numbers.
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
import botocore.session
n, rounds, variant = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

class Http:
    status_code = 200
    headers = {"x-amz-request-id": "R1"}
    content = b""
    raw = None

CANNED = (Http(), {"ResponseMetadata": {"RequestId": "R1", "HostId": "H1", "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}, "ContentLength": 5})

session = botocore.session.get_session()
client = session.create_client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                               aws_access_key_id="k", aws_secret_access_key="s")
client.meta.events.register("before-call.s3.HeadObject", lambda **kw: CANNED)
params = {"Bucket": "bench-bucket", "Key": "a/key.txt"}
method = type(client).__mro__[-2].__dict__["_make_api_call"]  # BaseClient's, hooked or not
original = getattr(method, "__wrapped__", method)

def hooked(count):
    call = client._make_api_call
    for _ in range(count):
        call("HeadObject", params)

def plain(count):
    for _ in range(count):
        original(client, "HeadObject", params)

def timed(f, count):
    t0 = time.perf_counter_ns()
    f(count)
    return (time.perf_counter_ns() - t0) / count / 1000

for f in (hooked, plain):
    f(10 if variant in ("hooked", "plain") else 200)
gc.disable()
if variant in ("hooked", "plain"):  # callgrind: just the loop
    (hooked if variant == "hooked" else plain)(n)
    sys.exit(0)
out = {"us": statistics.median([timed(hooked, n) for _ in range(rounds)])}
if variant == "paired":
    chunk = max(50, n // 20)
    diffs = []
    for _ in range(rounds * 10):
        base = timed(plain, chunk)
        diffs.append(timed(hooked, chunk) - base)
    out["paired"] = statistics.median(diffs)
gc.enable()
print(json.dumps(out))
"""

UPSTREAM_PACKAGES = ["opentelemetry-distro", "opentelemetry-exporter-otlp", "opentelemetry-instrumentation-botocore"]


def build() -> dict:
    """The bench's own venvs, botocore pinned to the project's."""
    pins = ["botocore==" + importlib.metadata.version("botocore")]
    return envs.library_configs("aws", pins, UPSTREAM_PACKAGES)


def _env(cfg, endpoint):
    env = cfg.env(endpoint, "bench-aws")
    env.update(OTEL_BSP_MAX_QUEUE_SIZE="1000000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4096", OTEL_METRICS_EXPORTER="none", PYTHONHASHSEED="0")
    return env


def run(cfg, endpoint: str, calls: int, rounds: int) -> dict:
    variant = "paired" if cfg.name == envs.FERROTEL else "timed"
    out = subprocess.run([str(cfg.python), "-c", LOOP, str(calls), str(rounds), variant], env=_env(cfg, endpoint), capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{cfg.name}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _instructions(cfg, endpoint: str, n: int, variant: str) -> int | None:
    return envs.callgrind_instructions(cfg, _env(cfg, endpoint), ["-c", LOOP, str(n), "0", variant])


def callgrind(configs: dict, endpoint: str, lengths=(40, 200)) -> dict | None:
    plan = [
        ("no agent", configs[envs.NO_AGENT], "hooked"),
        ("ferrotel, original method", configs[envs.FERROTEL], "plain"),
        ("ferrotel, hooked", configs[envs.FERROTEL], "hooked"),
        ("pure-Python, original method", configs[envs.UPSTREAM], "plain"),
        ("pure-Python, hooked", configs[envs.UPSTREAM], "hooked"),
    ]
    return envs.per_call_instructions(plan, lambda cfg, n, v: _instructions(cfg, endpoint, n, v), lengths)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_AWS_CALLS", "2000")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_AWS_ROUNDS", "7")))
    args = parser.parse_args()
    if not (envs.DIST / "ferrotel").is_dir():
        raise SystemExit(f"bench: {envs.DIST} not built: run `make dist` (make bench does)")
    configs = build()
    endpoint = start_sink()
    r = {name: run(cfg, endpoint, args.calls, args.rounds) for name, cfg in configs.items()}
    version = subprocess.run([str(configs[envs.UPSTREAM].python), "-c", "import importlib.metadata as m; print(m.version('opentelemetry-instrumentation-botocore'))"],
                             capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    base, ours, up = r[envs.NO_AGENT]["us"], r[envs.FERROTEL]["us"], r[envs.UPSTREAM]["us"]
    paired = r[envs.FERROTEL].get("paired")
    met = lambda v: "-" if v is None else ("met" if v <= 3 else "**not met**")  # noqa: E731
    fmt = lambda v: "-" if v is None else f"{v:+.2f}"  # noqa: E731
    print(f"botocore {importlib.metadata.version('botocore')}, opentelemetry-instrumentation-botocore {version or '?'}, "
          f"{args.calls} calls × {args.rounds} rounds; S3 HeadObject answered by a before-call handler (no network); "
          f"load average {load:.2f} at the end of the timed runs.\n")
    print("| S3 HeadObject | no agent µs | ferrotel µs | ferrotel Δ | pure-Python µs | pure-Python Δ |")
    print("|---|---|---|---|---|---|")
    print(f"| per call (wall time) | {base:.1f} | {ours:.1f} | {fmt(ours - base)} | {up:.1f} | {fmt(up - base)} |")
    print()
    print(f"ferrotel, paired in one process (hooked method vs its `__wrapped__`, wall time): {fmt(paired)} µs per call ({met(paired)})")
    profile = callgrind(configs, endpoint)
    if profile:
        rate = 7300  # instructions per µs of this machine's CPython (bench/results/client.md)
        ours_i = profile["ferrotel, hooked"] - profile["ferrotel, original method"]
        up_i = profile["pure-Python, hooked"] - profile["pure-Python, original method"]
        print()
        print("Instructions per call (callgrind, every thread of the process, the difference of two loop lengths, "
              "so start-up cancels out). Repeatable where wall time on a loaded VM is not.\n")
        print("| configuration | instructions per call | Δ vs the original method | ≈ µs at %d instr/µs | bar ≤ 3 µs |" % rate)
        print("|---|---|---|---|---|")
        print(f"| no agent | {profile['no agent']:.0f} | | | |")
        print(f"| ferrotel, original method (`__wrapped__`) | {profile['ferrotel, original method']:.0f} | | | |")
        print(f"| ferrotel, hooked | {profile['ferrotel, hooked']:.0f} | +{ours_i:.0f} | {ours_i / rate:.2f} | {met(ours_i / rate)} |")
        print(f"| pure-Python, original method (`__wrapped__`) | {profile['pure-Python, original method']:.0f} | | | |")
        print(f"| pure-Python, hooked | {profile['pure-Python, hooked']:.0f} | +{up_i:.0f} | {up_i / rate:.2f} | |")
        if ours_i > 0:
            print(f"\npure-Python agent's hook ÷ ferrotel's: {up_i / ours_i:.1f}×")
    print(json.dumps({"aws": r, "aws_profile": profile}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
