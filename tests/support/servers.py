"""More WSGI servers for the reliability suite: waitress and uwsgi, with GunicornApp's interface.

Each runs a WSGI app (``module:callable`` in `app_dir`) in its own process group, logs to
`log_path`, and is stopped like a pod: SIGTERM, then wait. `kill()` SIGKILLs the group.

- waitress: one process, a thread pool (``waitress-serve --threads N``).
- uwsgi: ``--master --processes N --http-socket``; without ``--lazy-apps`` the app (and so the
  agent) is loaded in the master and the workers are forked from C; with it, each worker loads
  the app after the fork. SIGTERM is made a graceful shutdown (``--hook-master-start
  "unix_signal:15 gracefully_kill_them_all"``, uwsgi's documented way; its default is a reload).
  `start()` returns only once every worker can take part in that shutdown (see `UwsgiApp.start`).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from support import processes
from support.processes import APP_DIR, VENV_BIN, GunicornApp, ServerApp


def tool(name: str) -> str | None:
    """Path of a console script of the test venv (or on PATH), or None when it is not installed."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


class WaitressApp(ServerApp):
    name = "waitress"

    def __init__(self, env, log_path, app_dir=APP_DIR, app="app:app", threads: int = 8, extra_args=()):
        super().__init__(env, log_path, app_dir, app, extra_args=extra_args)
        self.threads = threads

    def command(self) -> list[str]:
        return [
            tool("waitress-serve") or "waitress-serve",
            f"--listen=127.0.0.1:{self.port}",
            f"--threads={self.threads}",
            *self.extra_args,
            self.app,
        ]


class UwsgiApp(ServerApp):
    name = "uwsgi"

    def __init__(self, env, log_path, app_dir=APP_DIR, app="app:app", workers: int = 4, lazy_apps=False, extra_args=()):
        super().__init__(env, log_path, app_dir, app, workers, extra_args)
        self.lazy_apps = lazy_apps

    def command(self) -> list[str]:
        module, _, callable_ = self.app.partition(":")
        return [
            tool("uwsgi") or "uwsgi",
            "--http-socket", f"127.0.0.1:{self.port}",
            "--master",
            "--processes", str(self.workers),
            "--chdir", str(self.app_dir),
            "--module", module,
            "--callable", callable_ or "application",
            "--need-app",
            # SIGTERM = graceful shutdown (uwsgi's own default is a reload; --die-on-term makes it an
            # immediate kill_them_all in which uwsgi skips Python's atexit in some workers).
            "--hook-master-start", "unix_signal:15 gracefully_kill_them_all",
            *(["--lazy-apps"] if self.lazy_apps else []),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 30) -> "UwsgiApp":
        """Listening is not enough: wait until every worker handles SIGHUP and the master has its
        SIGTERM hook, or a SIGTERM now can hang uwsgi.

        A uwsgi worker ignores SIGHUP from the fork until `uwsgi_worker_run` installs its handlers
        (``gracefully_kill``), and with ``--lazy-apps`` that is only after it has loaded the app (a
        second or two for Flask on a busy 2-core machine). The master's graceful shutdown
        (``gracefully_kill_them_all``) sends each worker one SIGHUP and then, inside the signal
        handler, waits for every worker to exit: a worker still loading its app drops that
        SIGHUP, goes on serving, and the master waits (still after 2 minutes with uwsgi 2.0.31;
        uwsgi's own race, with or without the agent). The socket is bound before any worker
        exists, so a connect succeeds long before that."""
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while True:
            ready = [pid for pid in self.worker_pids() if _handles(pid, signal.SIGHUP)]
            if len(ready) >= self.workers and _MASTER_START_HOOK.search(self.log_text()):
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"uwsgi: {len(ready)} of {self.workers} workers ready (SIGHUP handler installed) "
                    f"after {timeout}s, exit code {self.proc.returncode}\n{self.log_text()}"
                )
            time.sleep(0.05)


# uwsgi logs this just before the master-start hook installs the graceful SIGTERM handler.
_MASTER_START_HOOK = re.compile(r'running "unix_signal:15 gracefully_kill_them_all" \(master-start\)')


def _handles(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler installed for `signum` (SigCgt in /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


class ServerLauncher(processes.ServerLauncher):
    """Starts gunicorn / waitress / uwsgi apps with logs under `log_dir`; `kill_all()` at teardown."""

    def gunicorn(self, env: dict, **kwargs) -> GunicornApp:
        return self.launch(GunicornApp(env, self.log_path("gunicorn"), **kwargs))

    def waitress(self, env: dict, **kwargs) -> WaitressApp:
        return self.launch(WaitressApp(env, self.log_path("waitress"), **kwargs))

    def uwsgi(self, env: dict, **kwargs) -> UwsgiApp:
        return self.launch(UwsgiApp(env, self.log_path("uwsgi"), **kwargs))


def uwsgi_unavailable() -> str | None:
    """Why uwsgi cannot run here (None when it can): not installed, or it does not start."""
    path = tool("uwsgi")
    if path is None:
        return "uwsgi is not installed (pip install uwsgi needs a C compiler and the Python headers)"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"uwsgi does not run: {exc}"
    if out.returncode != 0:
        return f"uwsgi does not run: exit {out.returncode} {out.stderr.strip()[:200]}"
    return None


def waitress_unavailable() -> str | None:
    if tool("waitress-serve") is None:
        return "waitress is not installed (pip install waitress)"
    return None


__all__ = [
    "ServerLauncher",
    "UwsgiApp",
    "WaitressApp",
    "tool",
    "uwsgi_unavailable",
    "waitress_unavailable",
]
