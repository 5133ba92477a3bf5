"""Throughput and latency under a real server: gunicorn (1 sync worker) serving tests/app/app.py,
driven by wrk. Standard library only.

`Server` starts gunicorn with a configuration's interpreter and environment and waits until it
answers (the probe request is counted: it is a span); `wrk` runs one `wrk --latency` and parses
it; `Server.stop` sends SIGTERM (a graceful shutdown: the worker's atexit handlers flush the
spans). The orchestrator keeps one server per configuration up and alternates wrk slices
between them, so that machine noise hits all alike.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_DIR = REPO / "tests" / "app"

_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _duration_us(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(m.group(1)) * _UNIT_US[m.group(2)]


def parse_wrk(out: str) -> dict:
    """The numbers of one `wrk --latency` run."""
    result = {"raw": out}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)", out, re.M)
    if not m:
        raise ValueError(f"unexpected wrk output:\n{out}")
    result["requests"] = int(m.group(1))
    result["duration_s"] = _duration_us(m.group(2) + m.group(3)) / 1e6
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", out, re.M)
    result["rps"] = float(m.group(1)) if m else result["requests"] / result["duration_s"]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", out, re.M)
        if m:
            result[f"p{pct}_us"] = _duration_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    result["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return result


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _wait_ready(proc: subprocess.Popen, port: int, route: str, timeout: float = 60.0) -> int:
    """Poll until the app answers 200; returns the number of requests that reached the app."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        # The port accepts: the worker may still be booting, but a request now waits for it.
        status = _get(port, route, timeout=30)
        if status != 200:
            raise RuntimeError(f"GET {route} answered {status}")
        return 1
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout}s")


def _stop(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: the worker exits normally and flushes
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Server:
    """One gunicorn (1 sync worker) serving tests/app/app.py under a configuration."""

    def __init__(self, python: Path, env: dict, log_path: Path, route: str = "/"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{route}"
        cmd = [str(python), "-m", "gunicorn", "--workers", "1", "--worker-class", "sync",
               "--bind", f"127.0.0.1:{self.port}", "--chdir", str(APP_DIR), "--log-level", "warning",
               "--graceful-timeout", "30", "app:app"]
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self.probes = _wait_ready(self.proc, self.port, route)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int:
        """Graceful stop (the worker's atexit handlers flush its spans); returns the exit code."""
        _stop(self.proc)
        self._log.close()
        return self.proc.returncode


def wrk(wrk_path: str, url: str, seconds: float, connections: int) -> dict:
    cmd = [wrk_path, "-t1", f"-c{connections}", "--latency", "--timeout", "10s", f"-d{seconds:g}s", url]
    return parse_wrk(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
