"""Run things as an unprivileged user, the way pods usually run: the init container's copy and the
application (gunicorn) as ``nobody``.

The test venv's interpreter lives under a directory only root can enter, so the app runs on an
interpreter ``nobody`` can execute (the system's python3) with its dependencies (flask, gunicorn)
vendored into a directory on the app's own PYTHONPATH, as many application images do.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from support.processes import APP_DIR, GunicornApp, _gunicorn_extra_args, free_port

CANDIDATE_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


def nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def as_user(uid: int, gid: int) -> dict:
    """subprocess keyword arguments that run the child as uid:gid with no supplementary groups
    (done in the child by _posixsubprocess: safe while the test process has threads)."""
    return {"user": uid, "group": gid, "extra_groups": []}


def world_readable_tmpdir(prefix: str) -> Path:
    """A fresh directory under /tmp that any user can enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def make_readable(path: Path) -> None:
    subprocess.run(["chmod", "-R", "go+rX", str(path)], check=True)


@lru_cache(maxsize=None)
def python_for(uid: int, gid: int) -> tuple[str | None, str]:
    """(interpreter, "") for a CPython >= 3.9 that uid can run, or (None, why not)."""
    tried = []
    for candidate in CANDIDATE_PYTHONS + (os.path.realpath(shutil.which("python3") or ""),):
        if not candidate or not os.path.isfile(candidate):
            continue
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print(sys.implementation.name, sys.version_info >= (3, 9))"],
                capture_output=True,
                text=True,
                timeout=30,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                **as_user(uid, gid),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            tried.append(f"{candidate}: {exc}")
            continue
        if result.stdout.split() == ["cpython", "True"]:
            return candidate, ""
        tried.append(f"{candidate}: {result.stdout.strip() or result.stderr.strip()}")
    return None, "no CPython >= 3.9 runnable by uid %d (%s)" % (uid, "; ".join(tried) or "none found")


def vendor(dest: Path, *names: str) -> Path:
    """Copy the installed distributions `names` and their requirements into `dest` (a PYTHONPATH dir)."""
    dest.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional or platform-conditional requirement that is not installed
        for file in dist.files or ():
            parts = Path(str(file)).parts
            if not parts or parts[0] == ".." or "__pycache__" in parts:
                continue
            source = Path(str(file.locate()))
            if source.is_file():
                target = dest / Path(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        for requirement in dist.requires or ():
            if "extra ==" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
            if match:
                todo.append(match.group(0))
    return dest


def copy_test_app(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(APP_DIR / "app.py", dest / "app.py")
    return dest


class NonRootGunicorn(GunicornApp):
    """``python -m gunicorn --chdir <app_dir> -w 1 app:app`` as uid:gid (its own process group)."""

    def __init__(self, python: str, uid: int, gid: int, env: dict, log_path: Path, app_dir: Path):
        super().__init__(env, log_path, app_dir=app_dir)
        self.python, self.uid, self.gid = python, uid, gid

    def start(self, timeout: float = 30) -> "NonRootGunicorn":
        self.port = free_port()
        cmd = [
            self.python, "-m", "gunicorn",
            "--chdir", str(self.app_dir),
            "-w", "1",
            "-b", f"127.0.0.1:{self.port}",
            "--access-logfile", "-",
            *_gunicorn_extra_args(),
            self.app,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                env=self.env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user(self.uid, self.gid),
            )
        self._wait_listening(timeout)
        return self


def process_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")
