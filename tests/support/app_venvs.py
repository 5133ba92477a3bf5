"""App environments other than the test venv (built by `make test-venvs` under .venvs/app-*), and
gunicorn run from one of them.

An app environment is what the agent is injected into: the app's own packages (Flask, gunicorn and,
depending on the environment, opentelemetry-api / -sdk). The agent brings none of them.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from support.processes import APP_DIR, GunicornApp, GunicornLauncher, free_port

REPO_DIR = Path(__file__).resolve().parents[2]
VENVS_DIR = REPO_DIR / ".venvs"


def app_venv(name: str) -> Path:
    """The bin/ directory of `.venvs/app-<name>`; skips the test when it was never built."""
    venv = VENVS_DIR / f"app-{name}"
    if not (venv / ".ready").is_file():
        pytest.skip(f"app environment {venv} is not built: run `make test-venvs` (make test does)")
    return venv / "bin"


def run_in(bin_dir: Path, code: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -c code`` with the app environment's interpreter; `timeout` only guards against hangs."""
    return subprocess.run(
        [str(bin_dir / "python"), "-c", code], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@lru_cache(maxsize=None)
def _extra_args(bin_dir: str) -> tuple:
    # As support.processes: recent gunicorn releases open a control socket under $HOME by default.
    help_text = subprocess.run([bin_dir + "/gunicorn", "--help"], capture_output=True, text=True).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


class VenvGunicornApp(GunicornApp):
    """GunicornApp running the gunicorn of an app environment."""

    def __init__(self, bin_dir: Path, env: dict, log_path: Path, app_dir: Path = APP_DIR, app: str = "app:app", workers: int = 1):
        super().__init__(env, log_path, app_dir=app_dir, app=app, workers=workers)
        self.bin_dir = Path(bin_dir)

    def start(self, timeout: float = 30) -> "VenvGunicornApp":
        self.port = free_port()
        cmd = [
            str(self.bin_dir / "gunicorn"),
            "--chdir", str(self.app_dir),
            "-w", str(self.workers),
            "-b", f"127.0.0.1:{self.port}",
            "--access-logfile", "-",
            *_extra_args(str(self.bin_dir)),
            self.app,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_listening(timeout)
        return self


def start_gunicorn(launcher: GunicornLauncher, bin_dir: Path, env: dict, **kwargs) -> VenvGunicornApp:
    """Start gunicorn from `bin_dir` under the `gunicorn` fixture's launcher (killed at teardown)."""
    app = VenvGunicornApp(bin_dir, env, launcher.log_dir / f"gunicorn-{len(launcher.apps)}.log", **kwargs)
    launcher.apps.append(app)
    return app.start()
