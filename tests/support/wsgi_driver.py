"""Drive a small Flask app in-process (no server) inside an agent-injected interpreter.

`run_driver(env, main)` runs ``python -c <PRELUDE + main>``: PRELUDE builds a Flask app (imported
after the agent's bootstrap, like any app) and defines ``request(target, headers=None, method="GET")``,
which calls the app through ``werkzeug.test.Client`` and *closes* the response (as a WSGI server
does, which is what ends the span) and returns ``{"status", "body"}``. ``main`` drives it and calls
``report(value)`` to hand a JSON value back. The process then exits normally, so the agent's
atexit shutdown flushes its spans before `run_driver` returns.

App routes: ``/`` ("hello"), ``/users/<int:uid>`` (JSON), ``/span`` (the agent's current span as the
app sees it: trace_id, span_id, sampled, recording; null when the agent is not loaded or no span).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from dataclasses import dataclass, field

from support.processes import run_python

REPORT_MARKER = "DRIVER-REPORT "

PRELUDE = r'''
import json, os, sys
from flask import Flask, jsonify
from werkzeug.test import Client

app = Flask("driver")


@app.route("/")
def index():
    return "hello"


@app.route("/users/<int:uid>")
def user(uid):
    return jsonify({"uid": uid})


@app.route("/span")
def current_span():
    native = sys.modules.get("ferrotel._native")  # never import the agent ourselves
    span = native.current_span() if native is not None else None
    if span is None:
        return jsonify(None)
    return jsonify({"trace_id": span.trace_id, "span_id": span.span_id, "sampled": span.sampled,
                    "recording": span.is_recording})


_client = Client(app)


def request(target, headers=None, method="GET"):
    resp = _client.open(target, method=method, headers=headers or {})
    try:
        return {"status": resp.status_code, "body": resp.get_data(as_text=True)}
    finally:
        resp.close()  # what a WSGI server does after sending the body: ends the span


def report(value):
    sys.stdout.write("__REPORT_MARKER__" + json.dumps(value) + "\n")
    sys.stdout.flush()
'''.replace("__REPORT_MARKER__", REPORT_MARKER)


def requests_main(requests) -> str:
    """A ``main`` that sends `requests` (a list of targets or ``(target, headers)`` pairs) in order and
    reports ``{"responses": [...], "ferrotel_loaded": bool, "pid": int}``."""
    normalised = [(r, {}) if isinstance(r, str) else (r[0], dict(r[1])) for r in requests]
    return (
        f"_requests = json.loads({json.dumps(normalised)!r})\n"
        "_responses = [request(target, headers) for target, headers in _requests]\n"
        "report({'responses': _responses, 'ferrotel_loaded': 'ferrotel' in sys.modules, 'pid': os.getpid()})\n"
    )


@dataclass
class DriverRun:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float  # wall-clock seconds, process start to exit
    reports: list = field(default_factory=list)  # report() values in order

    @property
    def report(self):
        """The single report() value (asserts there was exactly one)."""
        assert len(self.reports) == 1, f"expected one report, got {self.reports}\n{self.describe()}"
        return self.reports[0]

    @property
    def agent_lines(self) -> list[str]:
        """The agent's own diagnostics: stderr lines starting with ``ferrotel:``."""
        return agent_lines(self.stderr)

    @property
    def console_spans(self) -> list[dict]:
        """Spans printed by the console exporter (stderr lines starting with ``{``)."""
        return console_spans(self.stderr)

    def describe(self) -> str:
        return f"exit={self.returncode} elapsed={self.elapsed:.2f}s\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def failure_sections(self):
        return [("driver process", self.describe())]


def run_driver(env: dict, main: str, timeout: float = 60) -> DriverRun:
    """Run PRELUDE + `main` in a fresh interpreter with `env`; `timeout` only guards against hangs."""
    code = PRELUDE + "\n" + textwrap.dedent(main)
    started = time.monotonic()
    try:
        result: subprocess.CompletedProcess = run_python(code, env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"driver did not exit within {timeout}s\nstderr: {exc.stderr!r}") from None
    elapsed = time.monotonic() - started
    reports = [
        json.loads(line[len(REPORT_MARKER):]) for line in result.stdout.splitlines() if line.startswith(REPORT_MARKER)
    ]
    return DriverRun(result.returncode, result.stdout, result.stderr, elapsed, reports)


def run_requests(env: dict, requests, timeout: float = 60) -> DriverRun:
    """`run_driver` with `requests_main(requests)`."""
    return run_driver(env, requests_main(requests), timeout=timeout)


def agent_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ferrotel:")]


def console_spans(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
