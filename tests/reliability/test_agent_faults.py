"""Agent faults never reach a request.

``FERROTEL_TEST_FAULT`` (test-only) makes the agent panic inside its own code: ``panic`` in the
request hook, ``start_response`` in the start_response wrapper, ``body`` in the response-body
wrapper. Whatever fails, the request must run as without the agent (same status, headers, body),
the agent says so once (one ``ferrotel:`` line per kind of fault), and after 100 faults in a
process it turns itself off (one more line) and its hooks pass straight through.

- `test_faults_in_process`: the Flask app through the in-process WSGI driver, 150 requests
  (plain, JSON, streamed, raising, 404), compared with the same requests without the agent.
- `test_faults_under_gunicorn`: the awkward plain WSGI apps (tests/reliability/apps/wsgi_apps.py)
  under gunicorn, raw responses compared with a gunicorn without the agent.
- `test_unexpected_objects`: the middleware called with objects a careless server or app may pass
  (a non-dict environ, bytes where strings belong, a body that is not iterable, a ``close()`` that
  raises, ...): the outcome, value or exception, is the same as calling the app directly.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from support.operator import clean_env, operator_env
from support.otlp_receiver import Receiver
from support.processes import run_python
from support.raw_http import raw_request, request_bytes
from support.servers import ServerLauncher
from support.wsgi_driver import agent_lines, run_driver

APPS_DIR = Path(__file__).resolve().parent / "apps"
KINDS = ["panic", "start_response", "body"]
OFF_MARKER = "turns itself off"
REQUESTS = 150

FAULTS_MAIN = r"""
from flask import Response

@app.route("/stream")
def stream():
    def gen():
        yield "chunk-a;"
        yield "chunk-b"
    return Response(gen())

@app.route("/boom")
def boom():
    raise ValueError("app failure")

targets = ["/", "/users/3", "/stream", "/boom", "/nope"]
out = []
for i in range(__N__):
    out.append(request(targets[i % len(targets)]))
    sys.stderr.write(f"REQ {i}\n")
    sys.stderr.flush()
report({"responses": out, "span_after": request("/span")})
""".replace("__N__", str(REQUESTS))


@pytest.fixture(scope="module")
def baseline_in_process():
    run = run_driver(clean_env(), FAULTS_MAIN)
    assert run.returncode == 0, run.describe()
    return run.report


@pytest.mark.parametrize("kind", KINDS)
def test_faults_in_process(rel_install, baseline_in_process, kind):
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra={"FERROTEL_TEST_FAULT": kind, "OTEL_METRICS_EXPORTER": "none"})
        run = run_driver(env, FAULTS_MAIN)
    assert run.returncode == 0, run.describe()
    rep = run.report
    # 1. every request got exactly what it gets without the agent
    diffs = [
        (i, got, want) for i, (got, want) in enumerate(zip(rep["responses"], baseline_in_process["responses"])) if got != want
    ]
    assert not diffs, f"FERROTEL_TEST_FAULT={kind}: {len(diffs)} responses differ, e.g. {diffs[:3]}"
    # 2. one line for the fault, one when the agent turns itself off -- and nothing else
    lines = agent_lines(run.stderr)
    off = [line for line in lines if OFF_MARKER in line]
    faults = [line for line in lines if OFF_MARKER not in line]
    assert len(faults) == 1, f"FERROTEL_TEST_FAULT={kind}: expected one line for the fault, got {faults}"
    assert len(off) == 1, f"FERROTEL_TEST_FAULT={kind}: after {REQUESTS} faulty requests, expected one '{OFF_MARKER}' line: {lines}"
    # 3. the off line comes once the faults accumulated, and requests went on after it
    stderr = run.stderr.splitlines()
    off_at = stderr.index(off[0])
    requests_before = sum(1 for line in stderr[:off_at] if line.startswith("REQ "))
    requests_after = sum(1 for line in stderr[off_at:] if line.startswith("REQ "))
    assert requests_before >= 1 and requests_after >= 1, (requests_before, requests_after)
    # 4. turned off: the hooks pass straight through (no span is current in a request any more)
    assert rep["span_after"] == {"status": 200, "body": "null\n"}, rep["span_after"]


# ---------------------------------------------------------------------------------------------
# Under gunicorn: the awkward WSGI apps with a faulty agent, raw responses compared
# ---------------------------------------------------------------------------------------------

GUNICORN_PATHS = [
    "/list",
    "/generator",
    "/generator-raises",
    "/raise-before",
    "/raise-after",
    "/exc-info",
    "/write",
    "/no-close",
    "/closing",
    "/file",
    "/empty",
    "/echo/x?y=1",
]


@pytest.fixture(scope="module")
def gunicorn_baseline(tmp_path_factory):
    launcher = ServerLauncher(tmp_path_factory.mktemp("faults-baseline"))
    try:
        app = launcher.gunicorn(clean_env(), app_dir=APPS_DIR, app="wsgi_apps:application")
        out = {p: raw_request(app.port, request_bytes(b"GET", p.encode())).comparable() for p in GUNICORN_PATHS}
        app.stop()
        return out
    finally:
        launcher.kill_all()


@pytest.mark.parametrize("kind", KINDS)
def test_faults_under_gunicorn(rel_install, gunicorn_baseline, servers, kind):
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra={"FERROTEL_TEST_FAULT": kind, "OTEL_METRICS_EXPORTER": "none"})
        app = servers.gunicorn(env, app_dir=APPS_DIR, app="wsgi_apps:application")
        got = {p: raw_request(app.port, request_bytes(b"GET", p.encode())).comparable() for p in GUNICORN_PATHS}
        app.stop()
    diffs = {p: (got[p], gunicorn_baseline[p]) for p in GUNICORN_PATHS if got[p] != gunicorn_baseline[p]}
    assert not diffs, f"FERROTEL_TEST_FAULT={kind}: responses differ from the app without the agent: {diffs}"
    lines = [line for line in app.log_text().splitlines() if line.startswith("ferrotel:")]
    assert len(lines) == 1, f"FERROTEL_TEST_FAULT={kind}: expected one ferrotel line, got {lines}"


# ---------------------------------------------------------------------------------------------
# Unexpected Python objects handed to the middleware
# ---------------------------------------------------------------------------------------------

UNEXPECTED = textwrap.dedent(
    r'''
    import collections, json, sys
    from ferrotel.wsgi import Middleware

    class Body:
        def __init__(self, chunks, close_raises=False, iter_raises=False):
            self.chunks, self.close_raises, self.iter_raises = chunks, close_raises, iter_raises
        def __iter__(self):
            if self.iter_raises:
                raise RuntimeError("iter boom")
            return iter(self.chunks)
        def close(self):
            if self.close_raises:
                raise RuntimeError("close boom")

    def make_app(kind):
        def app(environ, start_response):
            if kind == "bytes_status":
                start_response(b"200 OK", [("Content-Type", "text/plain")])
                return [b"bytes status"]
            if kind == "tuple_headers":
                start_response("201 Created", (["Content-Type", "text/plain"], ("X-A", "1")))
                return [b"tuple headers"]
            if kind == "generator_headers":
                start_response("200 OK", (h for h in [("Content-Type", "text/plain")]))
                return [b"generator headers"]
            if kind == "int_status":
                start_response(200, [])
                return [b"int status"]
            if kind == "garbage_status":
                start_response("abc", [])
                return [b"garbage status"]
            if kind == "none_body":
                start_response("200 OK", [])
                return None
            if kind == "str_body":
                start_response("200 OK", [])
                return ["not bytes"]
            if kind == "close_raises":
                start_response("200 OK", [])
                return Body([b"x"], close_raises=True)
            if kind == "iter_raises":
                start_response("200 OK", [])
                return Body([b"x"], iter_raises=True)
            if kind == "garbage_exc_info":
                start_response("200 OK", [])
                start_response("500 Oops", [], "not an exc_info")
                return [b"garbage exc_info"]
            if kind == "no_start_response":
                return [b"never started"]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [repr(sorted(environ.keys()) if hasattr(environ, "keys") else environ).encode()]
        return app

    def environ_for(kind):
        base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "SERVER_NAME": "h", "SERVER_PORT": "80",
                "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}
        if kind == "userdict_environ":
            return collections.UserDict(base)
        if kind == "bytes_values":
            return dict(base, REQUEST_METHOD=b"GET", PATH_INFO=b"/x", HTTP_HOST=b"h:1", HTTP_TRACEPARENT=b"00-")
        if kind == "wrong_types":
            return dict(base, REQUEST_METHOD=None, PATH_INFO=123, HTTP_HOST=["h"], SERVER_PORT=object(),
                        QUERY_STRING=3.5, HTTP_USER_AGENT=b"\xff", HTTP_TRACEPARENT=7, HTTP_BAGGAGE={"k": "v"})
        if kind == "surrogates":
            return dict(base, PATH_INFO="/\udcff\ud800", QUERY_STRING="q=\udcfe", HTTP_USER_AGENT="\ud83d")
        if kind == "not_a_mapping":
            return ["not", "a", "mapping"]
        return base

    def outcome(app, environ):
        seen = []
        def start_response(status, headers, exc_info=None):
            if exc_info is not None and not isinstance(exc_info, tuple):
                raise TypeError("exc_info must be a tuple")
            seen.append((repr(status), repr(list(headers))))
            return lambda data: seen.append(("write", repr(data)))
        try:
            body = app(environ, start_response)
            chunks = [repr(c) for c in body]
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return ["ok", seen, chunks]
        except Exception as exc:  # noqa: BLE001
            return ["raised", seen, type(exc).__name__, str(exc)]

    APP_KINDS = ["bytes_status", "tuple_headers", "generator_headers", "int_status", "garbage_status", "none_body",
                 "str_body", "close_raises", "iter_raises", "garbage_exc_info", "no_start_response"]
    ENV_KINDS = ["userdict_environ", "bytes_values", "wrong_types", "surrogates", "not_a_mapping"]
    results = {}
    for kind in APP_KINDS + ENV_KINDS:
        raw = make_app(kind)
        wrapped = Middleware(raw)
        env_kind = kind if kind in ENV_KINDS else "plain"
        results[kind] = {"raw": outcome(raw, environ_for(env_kind)), "wrapped": outcome(wrapped, environ_for(env_kind))}
    print("RESULTS " + json.dumps(results))
    '''
)


def test_unexpected_objects(rel_install):
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra={"OTEL_METRICS_EXPORTER": "none"})
        proc = run_python(UNEXPECTED, env)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")]
    assert line, proc.stdout + proc.stderr
    results = json.loads(line[0][len("RESULTS ") :])
    diffs = {k: v for k, v in results.items() if v["raw"] != v["wrapped"]}
    assert not diffs, "the middleware changed what the app/server exchange:\n" + "\n".join(
        f"  {k}: without {v['raw']}\n  {' ' * len(k)}  with    {v['wrapped']}" for k, v in diffs.items()
    )
    lines = agent_lines(proc.stderr)
    kinds = {line.split(" in ")[-1].split(";")[0] for line in lines}
    assert len(lines) == len(kinds), f"the agent repeated itself: {lines}"
    assert "Traceback" not in proc.stderr, proc.stderr
