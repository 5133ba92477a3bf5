"""Helpers of tests/pyver: CPython 3.14 and 3.15 (and 3.14's debug build) from a Debian unstable root file system.

`sid_root.sh` builds the root once (mmdebstrap) and caches it; commands run inside it through
`inroot.sh` (chroot in a private mount namespace; the network namespace is the host's, so the OTLP
receiver and the apps' ports on 127.0.0.1 are shared). The agent tree and the test apps are copied
into the root for the session. Without root, mmdebstrap or the network to Debian, every test here
skips with the reason sid_root.sh printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
VERSIONS = ["3.14", "3.15"]
ROOT = Path(os.environ.get("FERROTEL_SID_ROOT", "/var/cache/ferrotel/sid-root"))


class SidRoot:
    def __init__(self, root: Path, session_dir: str):
        self.root = root
        self.dir = session_dir  # inside the root: /opt/ferrotel-test/<pid>
        self.tree = f"{session_dir}/otel-auto-instrumentation-python"

    def host_path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def python(self, version: str, venv: bool = True) -> str:
        return f"/opt/venv-{version}/bin/python" if venv else f"/usr/bin/python{version}"

    def missing(self, version: str) -> set[str]:
        path = self.root / f"opt/venv-{version}/missing.txt"
        return {line.split("[")[0].strip() for line in path.read_text().splitlines() if line.strip()} if path.exists() else set()

    def require(self, version: str, *packages: str) -> None:
        gone = sorted(set(packages) & self.missing(version))
        if gone:
            pytest.skip(f"no wheel of {', '.join(gone)} installable for CPython {version} (tests/pyver/sid_root.sh)")

    def env(self, extra: dict | None = None, agent: bool = True) -> dict:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root", "PYTHONNOUSERSITE": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        if agent:
            env["PYTHONPATH"] = f"{self.tree}/opentelemetry/instrumentation/auto_instrumentation:{self.tree}"
        env.update(extra or {})
        return env

    def argv(self, argv: list[str]) -> list[str]:
        return ["sh", str(HERE / "inroot.sh"), str(self.root), *argv]

    def run(self, argv: list[str], env: dict, cwd: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        env = dict(env, INROOT_CWD=cwd or "/")
        return subprocess.run(self.argv(argv), env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def popen(self, argv: list[str], env: dict, log: Path, cwd: str | None = None) -> subprocess.Popen:
        env = dict(env, INROOT_CWD=cwd or "/")
        return subprocess.Popen(self.argv(argv), env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def loops_report(result: subprocess.CompletedProcess) -> dict:
    for line in result.stdout.splitlines():
        if line.startswith("LOOPS-REPORT "):
            return json.loads(line[len("LOOPS-REPORT "):])
    raise AssertionError(f"no report (exit {result.returncode})\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}")
