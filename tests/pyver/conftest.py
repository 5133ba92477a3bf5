"""Fixtures of tests/pyver (see pyver_helpers.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyver_helpers import HERE, ROOT, TESTS, SidRoot  # noqa: E402


@pytest.fixture(scope="session")
def sid_root(dist_dir) -> SidRoot:
    result = subprocess.run(["sh", str(HERE / "sid_root.sh"), str(ROOT)], capture_output=True, text=True, timeout=1800)
    out = result.stdout + result.stderr
    if "sid-root: unavailable:" in out:
        pytest.skip(out.split("sid-root: unavailable:")[1].strip().splitlines()[0])
    assert result.returncode == 0 and (ROOT / ".ferrotel-stamp").exists(), out
    session = f"/opt/ferrotel-test/{os.getpid()}"
    host = ROOT / session.lstrip("/")
    shutil.rmtree(host, ignore_errors=True)
    host.mkdir(parents=True)
    shutil.copytree(dist_dir, host / "otel-auto-instrumentation-python", symlinks=True)
    for app in ("app", "app_fastapi", "app_django"):
        shutil.copytree(TESTS / app, host / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(HERE / "loops.py", host / "loops.py")
    yield SidRoot(ROOT, session)
    shutil.rmtree(host, ignore_errors=True)
