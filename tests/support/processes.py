"""Run the test app under gunicorn (and plain python snippets) as real subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
APP_DIR = TESTS_DIR / "app"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@lru_cache(maxsize=None)
def _gunicorn_extra_args(gunicorn: str = str(VENV_BIN / "gunicorn")) -> tuple[str, ...]:
    # recent gunicorn releases open a control socket under $HOME by default; concurrent test apps must not share it.
    help_text = subprocess.run([gunicorn, "--help"], capture_output=True, text=True).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


def child_pids(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (Linux /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry))
    return children


def run_python(code: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``python -c code`` with the test venv's interpreter; `timeout` only guards against hangs."""
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


class ServerApp:
    """A server process started from `command()` in its own process group, with its stdout and
    stderr (the server's log, the agent's diagnostics) in `log_path`; `app_dir` is where the app is
    imported from. Stopped like a pod: SIGTERM, then wait; `kill()` SIGKILLs the group."""

    name = "server"

    def __init__(self, env: dict, log_path: Path, app_dir: Path = APP_DIR, app: str = "app:app", workers: int = 1, extra_args=()):
        self.env = env
        self.log_path = Path(log_path)
        self.app_dir = Path(app_dir)
        self.app = app
        self.workers = workers
        self.extra_args = tuple(extra_args)  # e.g. ("-k", "gthread", "--threads", "8"), ("--preload",)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 30) -> "ServerApp":
        self.port = free_port()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env,
                cwd=str(self.app_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        # A bare TCP connect (no HTTP request) so readiness probing creates no spans.
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before listening\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"{self.name} not listening on {self.port} after {timeout}s\n{self.log_text()}")
                time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return child_pids(self.pid)

    def wait_for_workers(self, n: int = 1, timeout: float = 20) -> list[int]:
        """The worker pids once at least `n` are forked (a master listens before its workers)."""
        deadline = time.monotonic() + timeout
        while len(pids := self.worker_pids()) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: only {len(pids)} of {n} workers after {timeout}s\n{self.log_text()}")
            time.sleep(0.05)
        return pids

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM the master (graceful, like kubelet) and wait for it to exit; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM\n{self.log_text()}") from None

    def kill(self) -> None:
        """SIGKILL the whole process group (finalizer; safe to call repeatedly)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no {self.name} log: {exc}>"

    def failure_sections(self) -> list[tuple[str, str]]:
        return [(f"{self.name} log ({self.log_path})", self.log_text())]


class GunicornApp(ServerApp):
    """``gunicorn --chdir tests/app -w 1 -b 127.0.0.1:<port> app:app``."""

    name = "gunicorn"
    bin_dir = VENV_BIN  # the environment whose gunicorn runs the app

    def command(self) -> list[str]:
        gunicorn = str(self.bin_dir / "gunicorn")
        return [
            gunicorn,
            "--chdir", str(self.app_dir),
            "-w", str(self.workers),
            "-b", f"127.0.0.1:{self.port}",
            "--access-logfile", "-",
            *_gunicorn_extra_args(gunicorn),
            *self.extra_args,
            self.app,
        ]  # fmt: skip


class ServerLauncher:
    """Starts servers with logs under `log_dir`; `kill_all()` kills every one it started."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.apps: list[ServerApp] = []

    def log_path(self, kind: str) -> Path:
        return self.log_dir / f"{kind}-{len(self.apps)}.log"

    def launch(self, app: ServerApp) -> ServerApp:
        self.apps.append(app)
        return app.start()

    def kill_all(self) -> None:
        for app in self.apps:
            app.kill()

    def failure_sections(self) -> list[tuple[str, str]]:
        return [section for app in self.apps for section in app.failure_sections()]


class GunicornLauncher(ServerLauncher):
    """Starts GunicornApps (the `gunicorn` fixture)."""

    def start(self, env: dict, **kwargs) -> GunicornApp:
        return self.launch(GunicornApp(env, self.log_path("gunicorn"), **kwargs))
