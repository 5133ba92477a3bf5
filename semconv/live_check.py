"""`make semconv-check`: OpenTelemetry Weaver's `registry live-check` over ferrotel's demo traffic.

Weaver listens for OTLP/gRPC on a loopback port; the demos (tests/app/demo.py: Flask under gunicorn,
with errors, a slow request, streaming and outgoing calls to a second service through requests and
httpx; tests/app_fastapi/demo.py: FastAPI under uvicorn with concurrent outgoing calls, Django under
gunicorn; tests/app_rpc/demo.py: a gRPC client and server service, two aiohttp services;
tests/aws/demo.py: S3, SQS and DynamoDB calls to a local moto server; tests/messaging/demo.py:
Celery's send and process spans, memory:// transport and eager mode) run with the agent exporting
their spans and metrics there. Every sample is checked against ferrotel's registry (semconv/)
together with the semantic-conventions registry it extends.

Nothing is downloaded: the semantic conventions come from a local checkout (`--semconv`, default
$SEMCONV or /opt/semconv; its `model/` folder), put in place of the published dependency of
semconv/manifest.yaml in a scratch copy of the registry. Without a `weaver` binary on PATH (or
$WEAVER), or without that checkout, the check says so and exits 0: it is a judge run where the
tools are, not a build requirement.

Exit status: 1 when the live-check finds a violation, or an improvement that is not about
something the conventions themselves still mark as development or release candidate; else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "semconv"
DEMOS = [ROOT / "tests" / "app" / "demo.py", ROOT / "tests" / "app_fastapi" / "demo.py", ROOT / "tests" / "app_rpc" / "demo.py",
         ROOT / "tests" / "aws" / "demo.py", ROOT / "tests" / "messaging" / "demo.py"]
PINNED = "v1.44.0"  # semconv/manifest.yaml's dependency
PUBLISHED_PATH = "https://github.com/open-telemetry/semantic-conventions@v1.44.0[model]"
# Improvements accepted: the conventions' own unfinished parts, nothing of ferrotel's.
UNFINISHED = {"development", "release_candidate", "alpha", "beta", "experimental"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def local_registry(scratch: Path, semconv: Path) -> Path:
    """A copy of semconv/ whose dependency is the local checkout, not the published release."""
    copy = scratch / "registry"
    shutil.copytree(REGISTRY, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    manifest = copy / "manifest.yaml"
    text = manifest.read_text()
    assert PUBLISHED_PATH in text, f"{manifest}: expected the dependency {PUBLISHED_PATH}"
    manifest.write_text(text.replace(PUBLISHED_PATH, str(semconv / "model")))
    return copy


def findings(report: dict):
    """Every finding in the report, with the sample it was given on (walks the nested samples)."""

    def walk(node, owner):
        if isinstance(node, dict):
            result = node.get("live_check_result")
            here = node if ("name" in node or "key" in node) else owner
            if isinstance(result, dict):
                for f in result.get("all_advice", []):
                    yield f, here
            for k, v in node.items():
                if k != "live_check_result":
                    yield from walk(v, here)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, owner)

    yield from walk(report.get("samples", []), None)


#: Recommended attributes of db.client.operation.duration that do not apply to what was measured,
#: with the reason (the conventions recommend each only "if applicable").
NOT_APPLICABLE = {
    "db.stored_procedure.name": "recommended only for a call of a stored procedure (set for callproc)",
    "server.address": "absent only on sqlite's points: an embedded database has no server",
    "network.peer.address": "the resolved peer is not read: a socket look-up per statement; server.address is set",
    "network.peer.port": "recommended only with network.peer.address",
}


def accepted(f: dict) -> bool:
    """An improvement about an attribute or signal the conventions mark as unfinished, or a
    recommended database metric attribute that does not apply (NOT_APPLICABLE)."""
    ctx = f.get("context") or {}
    if f.get("id") == "recommended_attribute_not_present" and f.get("signal_type") == "metric":
        return ctx.get("attribute_key") in NOT_APPLICABLE and f.get("signal_name", "db.client.operation.duration").startswith("db.")
    return f.get("id") == "not_stable" and str(ctx.get("stability", "")).lower() in UNFINISHED


def summarize(report: dict) -> tuple[int, int, int, list[str]]:
    stats = report.get("statistics", {})
    levels = stats.get("advice_level_counts", {})
    lines = [
        f"samples: {stats.get('total_entities', '?')} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.get('total_entities_by_type', {}).items()))})",
        f"violations: {levels.get('violation', 0)}, improvements: {levels.get('improvement', 0)}, "
        f"information: {levels.get('information', 0)}",
    ]
    grouped: Counter = Counter()
    unexpected = 0
    for f, _ in findings(report):
        if f.get("level") not in ("violation", "improvement"):
            continue
        ctx = f.get("context") or {}
        what = ctx.get("attribute_key") or ctx.get("metric_name") or f.get("signal_name") or ""
        extra = f" [{ctx['stability']}]" if "stability" in ctx else ""
        ok = f["level"] == "improvement" and accepted(f)
        unexpected += not ok
        grouped[(f["level"], f["id"], f.get("signal_type") or "", what + extra, "ok" if ok else "NOT OK")] += 1
    for (level, ident, signal, what, verdict), n in sorted(grouped.items()):
        lines.append(f"  {n:4d} x {level:<11} {ident:<34} {signal:<7} {what}  ({verdict})")
    seen = stats.get("seen_non_registry_attributes") or {}
    if seen:
        lines.append(f"attributes not in either registry: {', '.join(sorted(seen))}")
    metrics = stats.get("seen_non_registry_metrics") or {}
    if metrics:
        lines.append(f"metrics not in either registry: {', '.join(sorted(metrics))}")
    return levels.get("violation", 0), levels.get("improvement", 0), unexpected, lines


def why_not(weaver: str, semconv: Path) -> str | None:
    """Why the live-check cannot run here (None when it can)."""
    if shutil.which(weaver) is None:
        return (f"no `{weaver}` on PATH. Build it from a copy of github:open-telemetry/weaver (an empty "
                "ui/dist/index.html, then `cargo build --release`) and put target/release/weaver on PATH, or set WEAVER.")
    if not (semconv / "model").is_dir():
        return (f"no semantic-conventions checkout at {semconv} (its model/ folder; github:open-telemetry/"
                f"semantic-conventions at {PINNED}). Set SEMCONV=<path>.")
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weaver", default=os.environ.get("WEAVER", "weaver"))
    ap.add_argument("--semconv", default=os.environ.get("SEMCONV", "/opt/semconv"), type=Path)
    ap.add_argument("--dist", default=os.environ.get("FERROTEL_DIST", ROOT / "dist" / "autoinstrumentation"), type=Path)
    ap.add_argument("--report", type=Path, help="also write weaver's JSON report here")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the demos (gunicorn, uvicorn beside it)")
    ap.add_argument("--can-run", action="store_true", help="only say whether the tools are there: exit 0 if so, else 1")
    ap.add_argument("--upstream-only", action="store_true",
                    help="check against the semantic conventions alone, without ferrotel's registry (as issue 21 did)")
    args = ap.parse_args()

    # Absolute: the demos start their servers in the apps' directories, with this on PYTHONPATH.
    args.dist, args.semconv = args.dist.resolve(), args.semconv.resolve()
    missing = why_not(args.weaver, args.semconv)
    if args.can_run or missing:
        if missing:
            print(f"semconv-check: SKIPPED: {missing}")
        return 1 if args.can_run and missing else 0
    weaver = shutil.which(args.weaver)
    if not (args.dist / "ferrotel").is_dir():
        print(f"semconv-check: no built agent at {args.dist}: run `make dist` first", file=sys.stderr)
        return 2
    version = subprocess.run([weaver, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"semconv-check: {version}; semantic conventions {args.semconv}/model (pinned {PINNED})")

    with tempfile.TemporaryDirectory(prefix="ferrotel-semconv-") as tmp:
        scratch = Path(tmp)
        if args.upstream_only:
            registry, label, extra = args.semconv / "model", "$SEMCONV/model", []
        else:
            registry, label, extra = local_registry(scratch, args.semconv), "<semconv/ with its dependency at $SEMCONV/model>", ["--include-unreferenced"]
        if not args.upstream_only:
            # The registry itself first: it resolves against the conventions, and their own policies
            # (the checkout's policies/ folder, when it has one) accept it.
            check = [weaver, "registry", "check", "--registry", str(registry)]
            if (args.semconv / "policies").is_dir():
                check += ["--policy", str(args.semconv / "policies")]
            print(f"$ weaver registry check --registry {label}" + (" --policy $SEMCONV/policies" if "--policy" in check else ""))
            result = subprocess.run(check, capture_output=True, text=True, cwd=scratch)
            if result.returncode != 0:
                print(result.stdout[-6000:] + result.stderr[-6000:], file=sys.stderr)
                print("semconv-check: FAILED: weaver does not accept the registry in semconv/", file=sys.stderr)
                return 1
        grpc, admin = free_port(), free_port()
        cmd = [
            weaver, "registry", "live-check",
            "--registry", str(registry), *extra,
            "--input-source", "otlp", "--otlp-grpc-address", "127.0.0.1", "--otlp-grpc-port", str(grpc),
            # Weaver binds its admin endpoint (/health, /stop) on every interface; it is stopped by SIGHUP here.
            "--admin-port", str(admin), "--inactivity-timeout", "600",
            "--format", "json", "--no-stream",
        ]
        shown = " ".join(c if c != str(registry) else label for c in cmd[1:])
        print(f"$ weaver {shown}")
        out = open(scratch / "report.json", "w")
        err = open(scratch / "weaver.log", "w")
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=scratch)
        try:
            if not wait_port(grpc, proc, 120):
                print((scratch / "weaver.log").read_text(), file=sys.stderr)
                print("semconv-check: weaver did not start listening", file=sys.stderr)
                return 2
            env = dict(os.environ, FERROTEL_DEMO_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc}", FERROTEL_DIST=str(args.dist))
            for demo in DEMOS:
                print(f"$ {Path(args.python).name} {demo.relative_to(ROOT)}  (exporting to the live-check too)")
                run = subprocess.run([args.python, str(demo)], env=env, capture_output=True, text=True, timeout=300)
                if run.returncode != 0:
                    print(run.stdout[-3000:] + run.stderr[-3000:], file=sys.stderr)
                    print(f"semconv-check: {demo.name} failed", file=sys.stderr)
                    return 2
            time.sleep(1)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGHUP)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            out.close()
            err.close()
        text = (scratch / "report.json").read_text()
        try:
            report = json.loads(text)
        except ValueError:
            print(text[-2000:] + (scratch / "weaver.log").read_text()[-3000:], file=sys.stderr)
            print("semconv-check: weaver wrote no JSON report", file=sys.stderr)
            return 2
        if args.report:
            args.report.write_text(json.dumps(report, indent=1))
    violations, improvements, unexpected, lines = summarize(report)
    print("\n".join(lines))
    if violations or unexpected:
        print(f"semconv-check: FAILED: {violations} violation(s); {unexpected} finding(s) beyond the conventions' own "
              "development/release-candidate parts")
        return 1
    print(f"semconv-check: OK: 0 violations; the {improvements} improvement(s) are all about attributes or metrics the "
          "semantic conventions still mark as development or release candidate, or recommended database attributes "
          "that do not apply (NOT_APPLICABLE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
