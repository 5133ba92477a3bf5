"""aiohttp end to end (issue 16): a real aiohttp.web frontend, under aiohttp's own runner and
under gunicorn's aiohttp worker, calling a real aiohttp.web backend with aiohttp's client, 8
requests at once, every process injected the Operator's way. Each request's calls are children
of its own server span (never another request's), the backend continues each call's trace, route
templates name the spans, and error statuses follow the HTTP conventions per side."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.operator import operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET
from support.processes import ServerApp, ServerLauncher

HERE = Path(__file__).resolve().parent
REQUESTS = 8


class AiohttpApp(ServerApp):
    """``python aiohttp_app.py <role> <port>``: aiohttp's own runner."""

    name = "aiohttp"

    def __init__(self, env, log_path, role):
        super().__init__(env, log_path, app_dir=HERE)
        self.role = role

    def command(self):
        return [sys.executable, str(HERE / "aiohttp_app.py"), self.role, str(self.port)]


@pytest.fixture
def launcher(tmp_path):
    launch = ServerLauncher(tmp_path)
    yield launch
    launch.kill_all()


def _env(operator_install, receiver, service, **extra):
    return operator_env(operator_install, receiver.http_endpoint, extra={"OTEL_SERVICE_NAME": service, "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **extra})


def _get(url, traceparent=None):
    req = urllib.request.Request(url, headers={"traceparent": traceparent} if traceparent else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _start_frontend(how, operator_install, receiver, launcher, gunicorn, backend_port):
    env = _env(operator_install, receiver, "frontend", BACKEND_URL="http://127.0.0.1:%d" % backend_port)
    if how == "runner":
        return launcher.launch(AiohttpApp(env, launcher.log_path("frontend"), "frontend"))
    return gunicorn.start(env, app_dir=HERE, app="aiohttp_app:frontend", extra_args=("-k", "aiohttp.GunicornWebWorker"))


@pytest.mark.parametrize("how", ["runner", "gunicorn"])
def test_concurrent_requests_keep_their_own_children(how, operator_install, receiver, launcher, gunicorn):
    backend = launcher.launch(AiohttpApp(_env(operator_install, receiver, "backend"), launcher.log_path("backend"), "backend"))
    frontend = _start_frontend(how, operator_install, receiver, launcher, gunicorn, backend.port)
    parents = {}
    for i in range(REQUESTS):
        trace_id = os.urandom(16).hex()
        span_id = os.urandom(8).hex()
        parents[trace_id] = span_id

    def one(i, trace_id):
        return _get("http://127.0.0.1:%d/orders/%d" % (frontend.port, i), "00-%s-%s-01" % (trace_id, parents[trace_id]))

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(one, range(REQUESTS), list(parents)))
    assert [status for status, _ in answers] == [200] * REQUESTS
    assert [json.loads(body)["calls"] for _, body in answers] == [[200, 200]] * REQUESTS

    spans = receiver.wait_for_spans(REQUESTS * 5, timeout=30, predicate=lambda s: s["trace_id"] in parents)
    for trace_id, remote_parent in parents.items():
        trace = [s for s in spans if s["trace_id"] == trace_id]
        assert len(trace) == 5, [(s["name"], s["kind"]) for s in trace]
        (server,) = [s for s in trace if s["kind"] == SPAN_KIND_SERVER and s["resource"]["service.name"] == "frontend"]
        clients = [s for s in trace if s["kind"] == SPAN_KIND_CLIENT]
        backends = [s for s in trace if s["kind"] == SPAN_KIND_SERVER and s["resource"]["service.name"] == "backend"]
        assert server["parent_span_id"] == remote_parent
        assert server["name"] == "GET /orders/{order_id}"
        a = server["attributes"]
        assert a["http.route"] == "/orders/{order_id}"
        assert a["http.request.method"] == "GET" and a["http.response.status_code"] == 200
        assert a["url.path"].startswith("/orders/") and a["url.scheme"] == "http"
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == frontend.port
        assert a["network.protocol.version"] == "1.1"
        assert server["scope_name"] == "ferrotel.aiohttp.server"
        assert len(clients) == 2 and len(backends) == 2
        for client in clients:
            assert client["parent_span_id"] == server["span_id"], "a call under another request's span"
            assert client["name"] == "GET"
            assert client["attributes"]["http.response.status_code"] == 200
            assert client["attributes"]["server.port"] == backend.port
            assert client["attributes"]["url.full"].startswith("http://127.0.0.1:%d/users/" % backend.port)
            assert client["attributes"]["network.protocol.version"] == "1.1"
            assert client["scope_name"] == "ferrotel.aiohttp.client"
        assert sorted(b["parent_span_id"] for b in backends) == sorted(c["span_id"] for c in clients)
        for b in backends:
            assert b["name"] == "GET /users/{user_id}"
            assert b["start_ns"] >= min(c["start_ns"] for c in clients)
        # Nothing of another request's trace leaked in.
        assert {s["span_id"] for s in trace if s["parent_span_id"] != remote_parent} <= {s["span_id"] for s in trace}
    logs = "".join(app.log_text() for app in launcher.apps + gunicorn.apps)
    assert "ferrotel: " not in logs, logs


def test_errors_per_side(operator_install, receiver, launcher):
    backend = launcher.launch(AiohttpApp(_env(operator_install, receiver, "backend"), launcher.log_path("backend"), "backend"))
    frontend = launcher.launch(AiohttpApp(_env(operator_install, receiver, "frontend", BACKEND_URL="http://127.0.0.1:%d" % backend.port), launcher.log_path("frontend"), "frontend"))
    assert _get("http://127.0.0.1:%d/fail" % frontend.port)[0] == 502
    assert _get("http://127.0.0.1:%d/nowhere" % frontend.port)[0] == 404
    spans = receiver.wait_for_spans(4, timeout=20)
    (failed,) = [s for s in spans if s["name"] == "GET /fail"]
    (client,) = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT]
    (boom,) = [s for s in spans if s["name"] == "GET /boom"]
    assert client["trace_id"] == failed["trace_id"] == boom["trace_id"]
    assert boom["parent_span_id"] == client["span_id"] and client["parent_span_id"] == failed["span_id"]
    # The backend's handler raised: 500, ERROR, the exception recorded.
    assert boom["attributes"]["http.response.status_code"] == 500 and boom["status_code"] == STATUS_ERROR
    assert boom["attributes"]["error.type"] == "ValueError"
    assert [e["name"] for e in boom["events"]] == ["exception"]
    # The client got a 500: an error for a client span.
    assert client["attributes"]["http.response.status_code"] == 500 and client["status_code"] == STATUS_ERROR
    assert client["attributes"]["error.type"] == "500"
    # The frontend raised HTTPBadGateway: its status, no exception event.
    assert failed["attributes"]["http.response.status_code"] == 502 and failed["status_code"] == STATUS_ERROR
    assert failed["attributes"]["error.type"] == "502" and not failed["events"]
    # No route matched: 404, not an error on a server span, named by the method alone.
    (missing,) = [s for s in spans if s["attributes"].get("url.path") == "/nowhere"]
    assert missing["name"] == "GET" and "http.route" not in missing["attributes"]
    assert missing["attributes"]["http.response.status_code"] == 404 and missing["status_code"] == STATUS_UNSET


def test_disabled_and_excluded(operator_install, receiver, launcher):
    """`aiohttp_server` switched off in the backend, the frontend's `/fail` excluded by URL: the
    requests answer as usual, and only the frontend's other spans arrive."""
    backend = launcher.launch(AiohttpApp(_env(operator_install, receiver, "backend", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="aiohttp_server"), launcher.log_path("backend"), "backend"))
    frontend = launcher.launch(
        AiohttpApp(
            _env(operator_install, receiver, "frontend", BACKEND_URL="http://127.0.0.1:%d" % backend.port, OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS="/fail$"),
            launcher.log_path("frontend"),
            "frontend",
        )
    )
    # /fail first: its spans are queued before /orders/1's, so they would have arrived with them.
    assert _get("http://127.0.0.1:%d/fail" % frontend.port)[0] == 502
    assert _get("http://127.0.0.1:%d/orders/1" % frontend.port)[0] == 200
    (order,) = receiver.wait_for_spans(1, timeout=20, predicate=lambda s: s["name"] == "GET /orders/{order_id}")
    receiver.wait_for_spans(2, timeout=20, predicate=lambda s: s["parent_span_id"] == order["span_id"])
    spans = receiver.spans()
    assert sorted((s["resource"]["service.name"], s["kind"], s["name"]) for s in spans) == [
        ("frontend", SPAN_KIND_SERVER, "GET /orders/{order_id}"),
        ("frontend", SPAN_KIND_CLIENT, "GET"),
        ("frontend", SPAN_KIND_CLIENT, "GET"),
        ("frontend", SPAN_KIND_CLIENT, "GET"),  # /fail's call to /boom: a root span, its request excluded
    ]
    (boom,) = [s for s in spans if s["attributes"].get("url.full", "").endswith("/boom")]
    assert boom["parent_span_id"] == "" and boom["trace_id"] != order["trace_id"]


def test_repeated_header_lines_are_one_list(operator_install, receiver, launcher):
    """A header sent on several lines is one comma-separated value (RFC 9110), as WSGI servers
    hand it over: two `tracestate` lines make one list; a duplicated `traceparent` is invalid, so
    the request starts a new trace (W3C Trace Context; its test harness checks both)."""
    import http.client

    backend = launcher.launch(AiohttpApp(_env(operator_install, receiver, "backend"), launcher.log_path("backend"), "backend"))
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    traceparent = "00-%s-%s-01" % (trace_id, span_id)
    for path, lines in (
        ("/users/1", [("traceparent", traceparent), ("tracestate", "rojo=00f067aa0ba902b7"), ("tracestate", "congo=t61rcWkgMzE")]),
        ("/users/2", [("traceparent", traceparent), ("traceparent", "00-%s-%s-01" % (os.urandom(16).hex(), span_id))]),
    ):
        conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=30)
        conn.putrequest("GET", path)
        for name, value in lines:
            conn.putheader(name, value)
        conn.endheaders()
        assert conn.getresponse().status == 200
        conn.close()
    spans = receiver.wait_for_spans(2, timeout=20)
    (listed,) = [s for s in spans if s["attributes"].get("url.path") == "/users/1"]
    (duplicated,) = [s for s in spans if s["attributes"].get("url.path") == "/users/2"]
    assert (listed["trace_id"], listed["parent_span_id"]) == (trace_id, span_id)
    assert listed["trace_state"] == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    assert duplicated["trace_id"] != trace_id and not duplicated["parent_span_id"]
