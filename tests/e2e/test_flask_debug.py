"""Flask in debug mode (`flask run --debug`) or with ``PROPAGATE_EXCEPTIONS=True``: an exception in a
matched route propagates out of ``wsgi_app`` instead of becoming Flask's 500 response. Flask never
calls ``start_response`` then, and pops its request context (``environ["werkzeug.request"] = None``)
before the exception leaves ``wsgi_app``; the span must still carry the route, the status the
client receives (the server's or Werkzeug debugger's 500) and the exception.

Spans go to the console exporter (one JSON object per span on stderr)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.operator import install_like_operator, operator_env
from support.processes import free_port, run_python
from support.wsgi_driver import console_spans

APP = textwrap.dedent(
    '''
    import os
    from flask import Flask

    app = Flask("debugapp")
    if os.environ.get("APP_PROPAGATE") == "1":
        app.config["PROPAGATE_EXCEPTIONS"] = True


    @app.route("/boom/<int:n>")
    def boom(n):
        raise ValueError("boom %d" % n)


    @app.route("/ok/<name>")
    def ok(name):
        return "ok " + name
    '''
)


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("flask-debug-install"))


@pytest.fixture
def app_dir(tmp_path) -> Path:
    (tmp_path / "debugapp.py").write_text(APP)
    return tmp_path


def console_env(install, app_dir, **extra) -> dict:
    env = operator_env(
        install,
        "http://127.0.0.1:9",  # unused: console exporter only
        app_pythonpath=str(app_dir),
        extra={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **extra},
    )
    return env


def span_for(spans, path) -> dict:
    matches = [s for s in spans if s["attributes"].get("url.path") == path]
    assert len(matches) == 1, f"expected one span for {path}: {json.dumps(spans, indent=1)}"
    return matches[0]


def assert_error_span(span, route):
    assert span["name"] == f"GET {route}"
    assert span["attributes"]["http.route"] == route
    assert span["attributes"]["http.response.status_code"] == 500
    assert span["attributes"]["error.type"] == "ValueError"
    assert span["status"]["code"] == "ERROR"
    events = [e for e in span["events"] if e["name"] == "exception"]
    assert len(events) == 1 and events[0]["attributes"]["exception.type"] == "ValueError", span["events"]
    assert "boom" in events[0]["attributes"]["exception.message"]


DRIVE = textwrap.dedent(
    """
    import json, sys
    from werkzeug.test import Client
    from debugapp import app

    client = Client(app)
    out = {}
    try:
        resp = client.get("/boom/7")
        out["boom"] = resp.status_code
        resp.close()
    except ValueError as exc:
        out["boom"] = "raised " + str(exc)
    resp = client.get("/ok/x")
    out["ok"] = resp.status_code
    resp.close()
    print("REPORT " + json.dumps(out))
    """
)


@pytest.mark.parametrize("propagate", [True, False], ids=["propagate", "default"])
def test_in_process_route_status_and_exception(install, app_dir, propagate):
    env = console_env(install, app_dir, APP_PROPAGATE="1" if propagate else "0")
    result = run_python(DRIVE, env)
    assert result.returncode == 0, result.stderr
    report = json.loads([l for l in result.stdout.splitlines() if l.startswith("REPORT ")][0][7:])
    # With PROPAGATE_EXCEPTIONS the exception reaches the caller (the test client re-raises it).
    assert report == {"boom": "raised boom 7" if propagate else 500, "ok": 200}
    spans = console_spans(result.stderr)
    assert_error_span(span_for(spans, "/boom/7"), "/boom/<int:n>")
    ok = span_for(spans, "/ok/x")
    assert ok["name"] == "GET /ok/<name>" and ok["attributes"]["http.response.status_code"] == 200


def test_flask_run_debug(install, app_dir, tmp_path):
    """`flask run --debug` (Werkzeug's server with its debugger; the reloader off so that one process
    serves): the client gets the debugger's 500 page, and the span says so."""
    port = free_port()
    env = console_env(install, app_dir, FLASK_APP="debugapp", OTEL_BSP_SCHEDULE_DELAY="100")
    log = tmp_path / "flask.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "run", "--debug", "--no-reload", "--port", str(port), "--host", "127.0.0.1"],
            cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok/ready", timeout=5) as resp:
                    assert resp.status == 200
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("flask run did not come up:\n" + log.read_text())
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/boom/3", timeout=10)
        assert err.value.code == 500
        assert "Traceback" in err.value.read().decode(errors="replace"), "the Werkzeug debugger's page"
        deadline = time.monotonic() + 15
        while True:
            spans = [s for s in console_spans(log.read_text()) if s["attributes"].get("url.path") == "/boom/3"]
            if spans or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    spans = console_spans(log.read_text())
    assert_error_span(span_for(spans, "/boom/3"), "/boom/<int:n>")
