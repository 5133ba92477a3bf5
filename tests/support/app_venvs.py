"""App environments other than the test venv (built by `make test-venvs` under .venvs/app-*), and
gunicorn run from one of them.

An app environment is what the agent is injected into: the app's own packages (Flask, gunicorn and,
depending on the environment, opentelemetry-api / -sdk). The agent brings none of them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.processes import APP_DIR, GunicornApp, GunicornLauncher

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


class VenvGunicornApp(GunicornApp):
    """GunicornApp running the gunicorn of an app environment."""

    def __init__(self, bin_dir: Path, env: dict, log_path: Path, app_dir: Path = APP_DIR, app: str = "app:app", workers: int = 1):
        super().__init__(env, log_path, app_dir=app_dir, app=app, workers=workers)
        self.bin_dir = Path(bin_dir)


def start_gunicorn(launcher: GunicornLauncher, bin_dir: Path, env: dict, **kwargs) -> VenvGunicornApp:
    """Start gunicorn from `bin_dir` under the `gunicorn` fixture's launcher (killed at teardown)."""
    return launcher.launch(VenvGunicornApp(bin_dir, env, launcher.log_path("gunicorn"), **kwargs))
