"""The three benchmark configurations and the environments they run in.

- ``.venvs/base``: the bare application environment (Flask, Werkzeug, gunicorn). Runs **no agent**
  and **ferrotel** (the built tree ``dist/autoinstrumentation`` injected through ``PYTHONPATH``
  exactly as the OpenTelemetry Operator does).
- ``.venvs/upstream``: the same pinned packages plus the pure-Python agent (opentelemetry-distro,
  the OTLP exporters, the Flask instrumentation). Runs **pure-Python**, injected the same way: its
  own ``opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py`` first on ``PYTHONPATH``
  (the upstream image is that directory tree; ``opentelemetry-instrument`` does the same).

Both venvs are created from the interpreter that runs the orchestrator (the project's ``.venv``,
CPython 3.11) and pin Flask/Werkzeug/gunicorn to the versions installed there, so the only
difference between configurations is the agent. Standard library only.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / ".venvs"
DIST = Path(os.environ.get("FERROTEL_DIST", REPO / "dist" / "autoinstrumentation")).resolve()
TESTS = REPO / "tests"

# The pure-Python agent, as the issue names it. Versions float to the newest release on purpose
# (that is what a user installs); the installed versions are recorded in the report.
UPSTREAM_PACKAGES = [
    "opentelemetry-distro",
    "opentelemetry-exporter-otlp",
    "opentelemetry-instrumentation-flask",
    # Database hooks (bench/db.py); the distro loads them, but a Flask request touches neither.
    "opentelemetry-instrumentation-sqlite3",
    "opentelemetry-instrumentation-redis",
]
PINNED_FROM_PROJECT = ["flask", "werkzeug", "gunicorn", "redis"]

NO_AGENT, FERROTEL, UPSTREAM = "no agent", "ferrotel", "pure-Python"
CONFIG_NAMES = [NO_AGENT, FERROTEL, UPSTREAM]


@dataclass
class Config:
    name: str
    python: Path  # interpreter of the venv this configuration runs in
    pythonpath: str  # "" for no agent
    agent_module: str  # module that proves the agent is loaded ("" for no agent)
    extra_env: dict = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.python.parent

    def env(self, receiver_endpoint: str, service_name: str, base: dict | None = None) -> dict:
        """Process environment: same OTLP settings for every configuration."""
        env = dict(base if base is not None else os.environ)
        for key in list(env):  # nothing inherited may steer an agent or the interpreter
            if key.startswith(("OTEL_", "PYTHON", "VIRTUAL_ENV")):
                del env[key]
        env.update(
            OTEL_SERVICE_NAME=service_name,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
        )
        delay = os.environ.get("BENCH_BSP_SCHEDULE_DELAY")
        if delay:
            env["OTEL_BSP_SCHEDULE_DELAY"] = delay
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        env.update(self.extra_env)
        return env


def _run(cmd, **kw):
    print("bench: $", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def ensure_tool(binary: str, package: str) -> str | None:
    """`binary` from the Debian package `package` (apt-get update once, then install), only when
    missing. None if it cannot be had."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        print(f"bench: {binary} missing and not root: install the Debian package `{package}`", file=sys.stderr)
        return None
    try:
        if not _apt_updated:
            _run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL)
            _apt_updated.append(True)
        _run(["apt-get", "install", "-y", "-qq", package], stdout=subprocess.DEVNULL,
             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"bench: could not install {package} ({exc})", file=sys.stderr)
        return None
    return shutil.which(binary)


_apt_updated: list = []


def ensure_wrk() -> str | None:
    return ensure_tool("wrk", "wrk")


def ensure_gnu_time() -> str | None:
    """GNU time: peak RSS of a child measured from a small parent (see startup.py)."""
    path = "/usr/bin/time"
    if os.access(path, os.X_OK):
        return path
    ensure_tool("time", "time")  # `time` is also a shell keyword; the package installs /usr/bin/time
    return path if os.access(path, os.X_OK) else None


def _pins() -> list[str]:
    pins = []
    for name in PINNED_FROM_PROJECT:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _ensure_venv(path: Path, requirements: list[str]) -> Path:
    python = path / "bin" / "python"
    marker = path / ".bench-ready"
    wanted = "\n".join([sys.version] + requirements)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if path.exists():
        shutil.rmtree(path)
    base = getattr(sys, "_base_executable", None) or sys.executable
    _run([base, "-m", "venv", path])
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements])
    marker.write_text(wanted)
    return python


def upstream_sitecustomize_dir(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import opentelemetry.instrumentation.auto_instrumentation as m, os; "
                            "print(os.path.dirname(m.__file__))"],
        check=True, capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout.strip()
    path = Path(out)
    if not (path / "sitecustomize.py").exists():
        raise RuntimeError(f"no sitecustomize.py in {path}")
    return path


def build() -> dict[str, Config]:
    """Create (or reuse) the venvs; return the configurations by name."""
    if not (DIST / "ferrotel").is_dir():
        raise SystemExit(f"bench: {DIST} not built: run `make dist` (make bench does)")
    pins = _pins()
    base_py = _ensure_venv(VENVS / "base", pins)
    up_py = _ensure_venv(VENVS / "upstream", pins + UPSTREAM_PACKAGES)
    ferrotel_path = f"{DIST}/opentelemetry/instrumentation/auto_instrumentation{os.pathsep}{DIST}"
    up_dir = upstream_sitecustomize_dir(up_py)
    return {
        NO_AGENT: Config(NO_AGENT, base_py, "", ""),
        FERROTEL: Config(FERROTEL, base_py, ferrotel_path, "ferrotel._native"),
        # Flask only: the distro would also load any other installed instrumentation; there is none
        # besides flask (and the WSGI one it uses) in this venv.
        UPSTREAM: Config(UPSTREAM, up_py, str(up_dir), "opentelemetry.instrumentation.flask"),
    }


def versions(configs: dict[str, Config]) -> dict:
    """Installed versions of the interesting packages in each venv (for the report header)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "names = ['flask', 'werkzeug', 'gunicorn', 'opentelemetry-distro', 'opentelemetry-sdk',\n"
        "         'opentelemetry-exporter-otlp-proto-http', 'opentelemetry-instrumentation-flask']\n"
        "out = {'python': sys.version.split()[0]}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    import json

    result = {}
    for venv, cfg in (("base", configs[NO_AGENT]), ("upstream", configs[UPSTREAM])):
        out = subprocess.run([str(cfg.python), "-c", code], check=True, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).stdout
        result[venv] = json.loads(out)
    return result


if __name__ == "__main__":
    ensure_wrk()
    ensure_gnu_time()
    for cfg in build().values():
        print(cfg)


def library_configs(name: str, pins: list[str], upstream_packages: list[str]) -> dict[str, Config]:
    """The three configurations of a one-library bench (gRPC, botocore, Celery...): its own venvs
    `.venvs/bench-NAME-{base,upstream}` with the library pinned to the project's version, and the
    pure-Python agent with `upstream_packages` in the second."""
    base = _ensure_venv(VENVS / f"bench-{name}-base", pins)
    up = _ensure_venv(VENVS / f"bench-{name}-upstream", pins + upstream_packages)
    ferrotel_path = f"{DIST}/opentelemetry/instrumentation/auto_instrumentation{os.pathsep}{DIST}"
    return {
        NO_AGENT: Config(NO_AGENT, base, "", ""),
        FERROTEL: Config(FERROTEL, base, ferrotel_path, "ferrotel._native"),
        UPSTREAM: Config(UPSTREAM, up, str(upstream_sitecustomize_dir(up)), ""),
    }


def callgrind_instructions(cfg: Config, env: dict, args: list[str]) -> int | None:
    """Instructions of the whole process (every thread: the application's, the library's and the
    agent's export thread) for `cfg.python` with `args`, under callgrind."""
    import glob
    import re
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}", str(cfg.python), *args]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if run.returncode != 0:
            print(f"bench: callgrind {cfg.name} {' '.join(args[-1:])}: {run.stderr[-800:]}", file=sys.stderr)
            return None
        total = 0
        for f in glob.glob(f"{out}*"):
            text = Path(f).read_text(errors="replace")
            m = re.search(r"^summary:\s*(\d+)", text, re.M) or re.search(r"^totals:\s*(\d+)", text, re.M)
            if m:
                total += int(m.group(1))
        return total or None


def per_call_instructions(plan, instructions, lengths: tuple[int, int]) -> dict | None:
    """For each `(label, cfg, variant)` of `plan`, instructions per call: the difference of two loop
    lengths, so start-up cancels out (`instructions(cfg, n, variant)` counts a loop of n calls).
    None without valgrind or when a run fails."""
    if not shutil.which("valgrind"):
        return None
    out = {}
    for label, cfg, variant in plan:
        counts = [instructions(cfg, n, variant) for n in lengths]
        if None in counts:
            return None
        out[label] = (counts[1] - counts[0]) / (lengths[1] - lengths[0])
    return out
