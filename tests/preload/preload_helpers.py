"""Helpers for the LD_PRELOAD library tests: a clean environment, paired runs with and without the
preload, and small C programs compiled on demand (tests skip, with the reason, when a compiler is
missing)."""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.operator import clean_env

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"
LIB_NAME = "libferrotel_preload.so"
BOOTSTRAP_SUBDIR = "opentelemetry/instrumentation/auto_instrumentation"


def base_env(**overrides: str) -> dict:
    """A deterministic environment without OTEL_*, PYTHONPATH, LD_PRELOAD or our own knobs."""
    env = {k: v for k, v in clean_env().items() if k != "LD_PRELOAD" and not k.startswith("FERROTEL_PRELOAD_")}
    env.update(overrides)
    return env


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes


def run(argv: list, env: dict, cwd=None, timeout: float = 60) -> Result:
    """Run a process (stdin closed) and capture everything; `timeout` only guards against hangs."""
    proc = subprocess.run(
        [str(a) for a in argv], env=env, cwd=cwd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_pair(argv: list, env: dict, lib: Path, cwd=None) -> tuple[Result, Result]:
    """The same command without and with LD_PRELOAD=<lib> (the only difference between the two runs)."""
    return run(argv, env, cwd), run(argv, {**env, "LD_PRELOAD": str(lib)}, cwd)


class Programs:
    """Compiles tests/preload/programs/*.c into a session directory, once per variant."""

    def __init__(self, build_dir: Path):
        self.build_dir = build_dir
        self._built: dict[str, Path] = {}
        self._failed: dict[str, str] = {}

    def _compile(self, key: str, compiler: str, flags: list, source: str, name: str) -> Path:
        if key in self._built:
            return self._built[key]
        if key in self._failed:
            pytest.skip(self._failed[key])
        cc = shutil.which(compiler)
        if cc is None:
            self._failed[key] = f"{compiler} not installed (Debian package: {_PACKAGE.get(compiler, compiler)})"
            pytest.skip(self._failed[key])
        out_dir = self.build_dir / key
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / name
        proc = subprocess.run(
            [cc, *flags, "-o", str(out), str(PROGRAMS_DIR / source)], capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            self._failed[key] = f"cannot build {key} with {compiler} {' '.join(flags)}: {proc.stderr.strip()[-500:]}"
            pytest.skip(self._failed[key])
        self._built[key] = out
        return out

    # The report program (see programs/report.c), for each C library and linking mode.
    def report_glibc(self, name: str = "report") -> Path:
        return self._compile(f"glibc-dynamic-{name}", "gcc", ["-O1"], "report.c", name)

    def report_glibc_static(self, name: str = "report") -> Path:
        return self._compile(f"glibc-static-{name}", "gcc", ["-O1", "-static"], "report.c", name)

    def report_musl(self, name: str = "report") -> Path:
        return self._compile(f"musl-dynamic-{name}", "musl-gcc", ["-O1"], "report.c", name)

    def report_musl_static(self, name: str = "report") -> Path:
        return self._compile(f"musl-static-{name}", "musl-gcc", ["-O1", "-static"], "report.c", name)

    def nolibc(self, name: str = "nolibc") -> Path:
        if platform.machine() != "x86_64":
            pytest.skip(f"the libc-free test program is written for x86_64, not {platform.machine()}")
        return self._compile(
            f"nolibc-{name}", "gcc", ["-O1", "-nostdlib", "-fPIE", "-pie", "-Wl,-z,now"], "nolibc_x86_64.c", name
        )


_PACKAGE = {"gcc": "gcc", "musl-gcc": "musl-tools"}
