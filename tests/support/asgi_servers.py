"""ASGI servers for the end-to-end suites: uvicorn, gunicorn with uvicorn workers, hypercorn.

Each runs as a real subprocess in its own process group, logs to a file, and is killed with its
group by `ServerLauncher.kill_all()` (fixture teardown). They share `ServerApp`'s readiness
probe (a bare TCP connect, so probing creates no spans), graceful stop and kill; only the command
differs.
"""

from __future__ import annotations

from pathlib import Path

from support import processes
from support.processes import VENV_BIN, ServerApp, _gunicorn_extra_args

TESTS_DIR = Path(__file__).resolve().parents[1]
FASTAPI_DIR = TESTS_DIR / "app_fastapi"
DJANGO_DIR = TESTS_DIR / "app_django"


_Server = ServerApp


class UvicornApp(_Server):
    """``uvicorn --app-dir <app_dir> --host 127.0.0.1 --port <port> <app>`` (one process).

    ``--app-dir`` puts the app's directory on sys.path when uvicorn starts -- after the agent's
    start-up, as in a container whose code is imported relative to its working directory.
    """

    name = "uvicorn"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "uvicorn"), "--app-dir", str(self.app_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", self.app,
        ]  # fmt: skip


class GunicornUvicornApp(_Server):
    """``gunicorn -k uvicorn_worker.UvicornWorker -w <workers> --chdir <app_dir> <app>`` (pre-fork)."""

    name = "gunicorn (uvicorn workers)"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "gunicorn"), "--chdir", str(self.app_dir),
            "-k", "uvicorn_worker.UvicornWorker", "-w", str(self.workers),
            "-b", f"127.0.0.1:{self.port}", *_gunicorn_extra_args(), self.app,
        ]  # fmt: skip


class HypercornApp(_Server):
    """``hypercorn --bind 127.0.0.1:<port> <app>`` run from `app_dir`."""

    name = "hypercorn"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "hypercorn"), "--bind", f"127.0.0.1:{self.port}", self.app]


class ServerLauncher(processes.ServerLauncher):
    """Starts any of these servers: `start(UvicornApp, env, ...)`."""

    def start(self, cls: type[ServerApp], env: dict, **kwargs) -> ServerApp:
        return self.launch(cls(env, self.log_path(cls.__name__.lower()), **kwargs))
