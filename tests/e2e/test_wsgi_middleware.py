"""End-to-end: ``ferrotel.wsgi.Middleware`` around a plain WSGI app (tests/app/plain_wsgi.py) under gunicorn.

Only the agent tree is on PYTHONPATH (no sitecustomize, no Flask): the middleware starts the agent
itself. One gunicorn run (module-scoped `wsgi_run`) sends every request, waits for the spans, then
SIGTERMs; the tests assert on what arrived.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

import pytest

from support.http_client import USER_AGENT, http_get
from support.operator import clean_env
from support.otlp_receiver import SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET, Receiver
from support.processes import APP_DIR, GunicornLauncher

SERVICE = "plain-wsgi-app"
SCENARIO = {  # key -> request target; every target has a distinct url.path
    "root": "/",
    "body_error": "/body-error",
    "app_raises": "/raise",
    "closing": "/closing?tag=c1",
    "unavailable": "/unavailable",
    "utf8": "/caf%C3%A9",
}
PATHS = {  # key -> the url.path its span must carry
    "root": "/",
    "body_error": "/body-error",
    "app_raises": "/raise",
    "closing": "/closing",
    "unavailable": "/unavailable",
    "utf8": "/café",
}


@dataclass
class WsgiRun:
    port: int
    responses: dict  # key -> HttpResponse, or the exception the client got
    spans: list
    close_log: list  # lines written by ClosingBody.close()
    exit_code: int
    log: str

    def span(self, key: str) -> dict:
        matches = [s for s in self.spans if s["attributes"].get("url.path") == PATHS[key]]
        assert len(matches) == 1, f"expected exactly one span for {PATHS[key]!r}, got {len(matches)}"
        return matches[0]

    def failure_sections(self):
        return [("gunicorn log [plain wsgi]", self.log)]


def get_or_error(port, target):
    try:
        return http_get(port, target)
    except (http.client.HTTPException, OSError) as exc:  # a body that fails mid-stream breaks the response
        return exc


def wait_for_lines(path, n, timeout=10.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.fixture(scope="module")
def wsgi_run(dist_dir, module_receiver: Receiver, tmp_path_factory) -> WsgiRun:
    workdir = tmp_path_factory.mktemp("plain-wsgi")
    close_log = workdir / "close.log"
    env = clean_env(
        PYTHONPATH=str(dist_dir),
        PYTHONDONTWRITEBYTECODE="1",  # leave the shipped tree as built
        OTEL_SERVICE_NAME=SERVICE,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=module_receiver.http_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
        CLOSE_LOG=str(close_log),
    )
    module_receiver.clear()
    launcher = GunicornLauncher(workdir)
    try:
        app = launcher.start(env, app_dir=APP_DIR, app="plain_wsgi:application")
        responses = {key: get_or_error(app.port, target) for key, target in SCENARIO.items()}
        wait_for_lines(close_log, 1)
        try:
            module_receiver.wait_for_spans(len(SCENARIO), timeout=15)
        except AssertionError:
            pass  # the tests report what is missing
        exit_code = app.stop()  # flushes; a duplicate span would arrive by now
        return WsgiRun(
            port=app.port,
            responses=responses,
            spans=module_receiver.spans(),
            close_log=close_log.read_text().splitlines() if close_log.exists() else [],
            exit_code=exit_code,
            log=app.log_text(),
        )
    finally:
        launcher.kill_all()


def test_app_responses(wsgi_run):
    r = wsgi_run.responses
    assert (r["root"].status, r["root"].body) == (200, b"hello")
    assert r["app_raises"].status == 500  # gunicorn's error page: the exception reached the server
    assert (r["closing"].status, r["closing"].body) == (200, b"a\nb\n")
    assert (r["unavailable"].status, r["unavailable"].body) == (503, b"down")
    assert (r["utf8"].status, r["utf8"].body) == (200, "/café".encode())
    assert wsgi_run.exit_code == 0
    assert wsgi_run.log.count("Booting worker with pid") == 1, "the worker crashed or was restarted"


def test_one_span_per_request(wsgi_run):
    assert sorted(s["attributes"].get("url.path") for s in wsgi_run.spans) == sorted(PATHS.values())
    assert len({s["span_id"] for s in wsgi_run.spans}) == len(wsgi_run.spans)


def test_span_name_scope_and_attributes(wsgi_run):
    span = wsgi_run.span("root")
    assert span["name"] == "GET"  # no route in plain WSGI
    assert span["kind"] == SPAN_KIND_SERVER
    assert span["scope_name"] == "ferrotel.wsgi"
    assert span["scope_version"]
    expected = {
        "http.request.method": "GET",
        "url.path": "/",
        "url.scheme": "http",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": wsgi_run.port,
        "client.address": "127.0.0.1",
        "user_agent.original": USER_AGENT,
        "network.protocol.version": "1.1",
    }
    assert {k: span["attributes"].get(k) for k in expected} == expected
    assert "http.route" not in span["attributes"]
    assert span["status_code"] == STATUS_UNSET
    assert span["parent_span_id"] == ""
    assert span["resource"]["service.name"] == SERVICE
    assert {s["scope_name"] for s in wsgi_run.spans} == {"ferrotel.wsgi"}


def test_exception_in_body_iterator(wsgi_run):
    span = wsgi_run.span("body_error")  # exactly one, although the server also closes the body
    assert span["status_code"] == STATUS_ERROR
    assert span["attributes"].get("error.type") == "RuntimeError"
    [event] = [e for e in span["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == "RuntimeError"
    assert event["attributes"]["exception.message"] == "body boom"
    stacktrace = event["attributes"]["exception.stacktrace"]
    # the formatted traceback, with the app's frame that raised
    assert "Traceback (most recent call last)" in stacktrace and "failing_body" in stacktrace, stacktrace


def test_exception_raised_by_the_app(wsgi_run):
    span = wsgi_run.span("app_raises")
    assert span["status_code"] == STATUS_ERROR
    assert span["attributes"].get("error.type") == "plain_wsgi.AppError"
    # The app never started a response: the server answered 500, and the span says what the
    # client received (as the ASGI layer does).
    response = wsgi_run.responses["app_raises"]
    assert getattr(response, "status", None) == 500, response
    assert span["attributes"]["http.response.status_code"] == 500
    [event] = [e for e in span["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == "plain_wsgi.AppError"
    assert event["attributes"]["exception.message"] == "raised before any response"


def test_body_close_called_exactly_once(wsgi_run):
    assert wsgi_run.close_log == ["close tag=c1"]
    span = wsgi_run.span("closing")
    assert span["status_code"] == STATUS_UNSET
    assert span["attributes"]["url.query"] == "tag=c1"


def test_503_is_an_error(wsgi_run):
    span = wsgi_run.span("unavailable")
    assert span["status_code"] == STATUS_ERROR
    assert span["attributes"]["http.response.status_code"] == 503
    assert span["attributes"].get("error.type") == "503"
    assert [e for e in span["events"] if e["name"] == "exception"] == []


def test_non_ascii_path_is_decoded(wsgi_run):
    span = wsgi_run.span("utf8")
    assert span["attributes"]["url.path"] == "/café"
    assert span["name"] == "GET"
