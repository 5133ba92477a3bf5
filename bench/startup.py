"""Interpreter start-up: wall time and peak RSS of ``python -c <script>`` with the agent injected
through PYTHONPATH. Standard library only.

Each repetition runs every (script, configuration) once, in an order rotated per repetition, so
that machine noise hits all alike. Peak RSS comes from GNU time (``/usr/bin/time -f %M``): the
orchestrator's own ``wait4`` rusage is useless here, because Linux folds the high-water mark of
the address space a child had *before* ``exec`` into its ``ru_maxrss``, and Python spawns children
with vfork, sharing the orchestrator's (large) address space until then. GNU time is a small
process, so its child's figure is the interpreter's own. The wall time is taken around the whole
``time python ...`` run and so includes one extra fork+exec (about a millisecond, the same for every
configuration). The report uses medians.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time

SCRIPTS = {
    "import flask": "import flask",
    "pass": "pass",
}


def one(gnu_time, python, script: str, env: dict) -> tuple[float, int | None]:
    """(wall seconds, peak RSS KiB or None) of one child."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as out:
        cmd = [str(python), "-c", script]
        if gnu_time:
            cmd = [gnu_time, "-f", "%M", "-o", out.name] + cmd
        t0 = time.perf_counter()
        code = subprocess.call(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"{python} -c {script!r} exited with {code}")
        rss = int(out.read().strip().splitlines()[-1]) if gnu_time else None
    return wall, rss


def agent_check(python, script: str, env: dict) -> dict:
    """Which agent modules the script's interpreter loaded, and its agent diagnostics on stderr."""
    probe = script + "\nimport sys, json\nprint(json.dumps({m: m in sys.modules for m in " \
        "('ferrotel._native', 'opentelemetry.sdk.trace', 'opentelemetry.instrumentation.flask', 'flask')}))"
    out = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True, check=True)
    return {"modules": json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr.strip()}


def run(cases: list[tuple[str, str, object, dict]], reps: int, gnu_time: str | None, warmup: int = 2) -> dict:
    """cases: (script name, configuration name, python, env). Returns raw samples per case."""
    samples = {(s, c): {"wall_s": [], "rss_kib": []} for s, c, _, _ in cases}
    checks = {f"{s} | {c}": agent_check(py, SCRIPTS[s], env) for s, c, py, env in cases}
    for _ in range(warmup):  # page cache, pyc files
        for s, c, py, env in cases:
            one(gnu_time, py, SCRIPTS[s], env)
    for rep in range(reps):
        shift = rep % len(cases)
        for s, c, py, env in cases[shift:] + cases[:shift]:
            wall, rss = one(gnu_time, py, SCRIPTS[s], env)
            samples[(s, c)]["wall_s"].append(wall)
            samples[(s, c)]["rss_kib"].append(rss)
    return {"samples": {f"{s} | {c}": v for (s, c), v in samples.items()}, "checks": checks}
