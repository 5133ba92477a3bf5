"""Debug interpreters (Py_DEBUG: CPython's own assertions and reference accounting on) run the
in-process request loops with the same abi3 module: no assertion fires, and
`sys.gettotalrefcount()` moves by the same amount over N requests with and without the agent -- a
reference leaked per request (by the raw C-API code of src/hooks/capi.rs, or anywhere else in the
hooks) shows as N. The agent runs twice: with the C-API functions it looks up at run time, and with
their fallbacks forced on (`_native._capi_fallbacks(True)`).

Interpreters: Debian 12's python3.11-dbg on this machine (`make test` installs it) and
python3.14-dbg from the sid root. N is FERROTEL_PYVER_REQUESTS (default 20,000): the WSGI and
ASGI loops run N requests, the API bridge, logging and sqlite3 loops (inside plain WSGI requests)
N/4, the Flask loop N/10, the HTTP client loop N/50 rounds of one call per client (a debug
interpreter is slow, and CI has two cores for everything). The agent runs without (3.11-dbg) and
with (3.14-dbg) the forced fallbacks too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.operator import clean_env, operator_pythonpath

from pyver_helpers import HERE, loops_report

N = int(os.environ.get("FERROTEL_PYVER_REQUESTS", "20000"))
SERVER_LOOPS = "wsgi,flask,asgi,api,logging,sqlite"
MODES = ("none", "agent", "fallbacks")
REPO = HERE.parents[1]


def host_dbg_python() -> str | None:
    for name in ("python3.11d", "python3.11-dbg"):
        found = shutil.which(name)
        if found:
            return found
    return None


def venv_site_packages() -> str:
    venv = REPO / ".venv"
    found = sorted(venv.glob("lib/python3.11/site-packages"))
    return str(found[0]) if found else ""


def check(reports: dict) -> None:
    base = reports["none"]["loops"]
    for mode in [m for m in ("agent", "fallbacks") if m in reports]:
        report = reports[mode]
        assert report["agent"], mode
        # the hooks did run: every server loop's requests made spans
        assert report["spans_started"] >= sum(l["n"] for k, l in report["loops"].items() if k != "clients"), report
        for name, loop in report["loops"].items():
            n = loop["n"]
            moved, baseline = loop["delta"], base[name]["delta"]
            assert moved is not None, "not a debug interpreter"
            # A leak of one reference per request shows as n; caches filling or emptying after
            # the warm-up move both runs by a few hundred at most (measured: 3.14-dbg, N=20,000).
            assert abs(moved - baseline) < n // 2, (
                f"{mode}: loop {name}: gettotalrefcount moved by {moved} over {n} requests with the agent, "
                f"{baseline} without"
            )
    if "fallbacks" in reports:
        assert set(reports["fallbacks"]["capi"].values()) == {"fallback"}
        assert set(reports["agent"]["capi"].values()) == {"resolved"}


def loops_env(mode: str) -> dict:
    return {"LOOPS_CAPI_FALLBACKS": "1"} if mode == "fallbacks" else {}


def run_host(python: str, install: Path, mode: str, loops: str, n: int, warmup: int) -> dict:
    site = venv_site_packages()
    pythonpath = operator_pythonpath(install, site) if mode != "none" else site
    env = clean_env(PYTHONPATH=pythonpath, PYTHONNOUSERSITE="1", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
                    OTEL_SERVICE_NAME="dbg", **loops_env(mode))
    result = subprocess.run([python, str(HERE / "loops.py"), loops, str(n), str(warmup)], env=env, capture_output=True,
                            text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-5000:]
    return loops_report(result)


def test_python311_dbg_refcounts(operator_install):
    python = host_dbg_python()
    if python is None:
        pytest.skip("python3.11-dbg is not installed (Debian 12's package; `make test` installs it)")
    if not venv_site_packages():
        pytest.skip("no .venv with the test packages")
    loops = SERVER_LOOPS + ",clients"
    reports = {mode: run_host(python, operator_install, mode, loops, N, warmup=N // 20) for mode in ("none", "agent")}
    check(reports)


def test_python314_dbg_refcounts(sid_root):
    version = "3.14"
    sid_root.require(version, "flask", "opentelemetry-api")
    python = "/usr/bin/python3.14d"
    if not sid_root.host_path(python).exists():
        pytest.skip("python3.14-dbg is not in the sid root")
    site = f"/opt/venv-{version}/lib/python{version}/site-packages"
    reports = {}
    for mode in MODES:
        env = sid_root.env({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_SERVICE_NAME": "dbg",
                            **loops_env(mode)}, agent=mode != "none")
        env["PYTHONPATH"] = ":".join(p for p in (env.get("PYTHONPATH"), site) if p)
        argv = [python, f"{sid_root.dir}/loops.py", SERVER_LOOPS + ",clients", str(N), str(N // 20)]
        result = sid_root.run(argv, env, timeout=1800)
        assert result.returncode == 0, result.stderr[-5000:]
        reports[mode] = loops_report(result)
    check(reports)
