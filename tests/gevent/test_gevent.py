"""gevent end to end (issue 16): a Flask frontend under ``gunicorn -k gevent`` and under a plain
``gevent.monkey.patch_all()`` + ``gevent.pywsgi`` process, calling a backend (itself a gevent
worker) that sleeps, 8 requests at once so the greenlets interleave in one thread. Every process
is injected the Operator's way. Each request's client spans and its query are children of its own
server span (never another request's), and each backend span continues the call that made it;
work the view hands to ``gevent.spawn``, a gevent pool or a patched thread stays in the trace."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("gevent")

from support.operator import operator_env  # noqa: E402
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER  # noqa: E402
from support.processes import ServerApp, ServerLauncher  # noqa: E402

HERE = Path(__file__).resolve().parent
REQUESTS = 8


class PatchAllApp(ServerApp):
    """``python gevent_app.py PORT``: patch_all(), then gevent.pywsgi."""

    name = "pywsgi"

    def command(self):
        return [sys.executable, str(HERE / "gevent_app.py"), str(self.port)]


@pytest.fixture
def launcher(tmp_path):
    launch = ServerLauncher(tmp_path)
    yield launch
    launch.kill_all()


def _env(operator_install, receiver, service, **extra):
    return operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_SERVICE_NAME": service, "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **extra},
    )


def _get(url, traceparent):
    req = urllib.request.Request(url, headers={"traceparent": traceparent})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _start(how, operator_install, receiver, gunicorn, launcher):
    backend = gunicorn.start(_env(operator_install, receiver, "backend"), app_dir=HERE, app="gevent_app:app", extra_args=("-k", "gevent"))
    env = _env(operator_install, receiver, "frontend", BACKEND_URL="http://127.0.0.1:%d" % backend.port)
    if how == "gunicorn":
        frontend = gunicorn.start(env, app_dir=HERE, app="gevent_app:app", extra_args=("-k", "gevent"))
    else:
        frontend = launcher.launch(PatchAllApp(env, launcher.log_path("frontend"), app_dir=HERE))
    return backend, frontend


def _concurrent(frontend, path):
    parents = {os.urandom(16).hex(): os.urandom(8).hex() for _ in range(REQUESTS)}

    def one(i, trace_id):
        return _get("http://127.0.0.1:%d/%s/%d" % (frontend.port, path, i), "00-%s-%s-01" % (trace_id, parents[trace_id]))

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = list(pool.map(one, range(REQUESTS), list(parents)))
    assert [status for status, _ in answers] == [200] * REQUESTS, answers
    return parents, [json.loads(body) for _, body in answers]


def _check_trace(trace, remote_parent, calls, queries, route, backend_port):
    names = sorted((s["name"], s["kind"]) for s in trace)
    (server,) = [s for s in trace if s["kind"] == SPAN_KIND_SERVER and s["resource"]["service.name"] == "frontend"]
    assert server["parent_span_id"] == remote_parent
    assert server["name"] == "GET " + route
    clients = [s for s in trace if s["kind"] == SPAN_KIND_CLIENT and "url.full" in s["attributes"]]
    db = [s for s in trace if s["kind"] == SPAN_KIND_CLIENT and "db.system.name" in s["attributes"]]
    backends = [s for s in trace if s["kind"] == SPAN_KIND_SERVER and s["resource"]["service.name"] == "backend"]
    assert len(clients) == calls and len(backends) == calls and len(db) == queries, names
    assert len(trace) == 1 + 2 * calls + queries, names
    for span in clients + db:
        assert span["parent_span_id"] == server["span_id"], "a span under another request's span: %s" % (names,)
    for client in clients:
        assert client["attributes"]["server.port"] == backend_port
    assert sorted(b["parent_span_id"] for b in backends) == sorted(c["span_id"] for c in clients)
    for b in backends:
        assert b["name"] == "GET /users/<int:uid>"


@pytest.mark.parametrize("how", ["gunicorn", "patch_all"])
def test_each_greenlet_keeps_its_request(how, operator_install, receiver, gunicorn, launcher):
    backend, frontend = _start(how, operator_install, receiver, gunicorn, launcher)
    parents, bodies = _concurrent(frontend, "orders")
    assert [b["calls"] for b in bodies] == [[200]] * REQUESTS
    spans = receiver.wait_for_spans(REQUESTS * 4, timeout=30, predicate=lambda s: s["trace_id"] in parents)
    for trace_id, remote_parent in parents.items():
        trace = [s for s in spans if s["trace_id"] == trace_id]
        _check_trace(trace, remote_parent, 1, 1, "/orders/<int:oid>", backend.port)
    logs = "".join(app.log_text() for app in launcher.apps + gunicorn.apps)
    assert "ferrotel: " not in logs, logs


@pytest.mark.parametrize("how", ["gunicorn", "patch_all"])
def test_spawned_greenlets_and_threads_keep_the_parent(how, operator_install, receiver, gunicorn, launcher):
    backend, frontend = _start(how, operator_install, receiver, gunicorn, launcher)
    parents, bodies = _concurrent(frontend, "fanout")
    assert [b["calls"] for b in bodies] == [[200, 200, 200]] * REQUESTS
    spans = receiver.wait_for_spans(REQUESTS * 7, timeout=30, predicate=lambda s: s["trace_id"] in parents)
    for trace_id, remote_parent in parents.items():
        trace = [s for s in spans if s["trace_id"] == trace_id]
        _check_trace(trace, remote_parent, 3, 0, "/fanout/<int:oid>", backend.port)
    logs = "".join(app.log_text() for app in launcher.apps + gunicorn.apps)
    assert "ferrotel: " not in logs, logs


def test_switched_off_by_name(operator_install, receiver, gunicorn, launcher):
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=gevent``: the app answers as before; greenlets it
    spawns start with an empty context again (their calls are roots of their own), while the
    request's own greenlet still parents its calls."""
    backend = gunicorn.start(_env(operator_install, receiver, "backend"), app_dir=HERE, app="gevent_app:app", extra_args=("-k", "gevent"))
    env = _env(operator_install, receiver, "frontend", BACKEND_URL="http://127.0.0.1:%d" % backend.port, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="gevent")
    frontend = gunicorn.start(env, app_dir=HERE, app="gevent_app:app", extra_args=("-k", "gevent"))
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    status, body = _get("http://127.0.0.1:%d/fanout/1" % frontend.port, "00-%s-%s-01" % (trace_id, parent))
    assert status == 200 and json.loads(body)["calls"] == [200, 200, 200]
    spans = receiver.wait_for_spans(7, timeout=30)
    (server,) = [s for s in spans if s["trace_id"] == trace_id and s["kind"] == SPAN_KIND_SERVER and s["resource"]["service.name"] == "frontend"]
    clients = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT and s["resource"]["service.name"] == "frontend"]
    assert len(clients) == 3
    in_trace = [c for c in clients if c["trace_id"] == trace_id]
    # The patched thread is the threading hook's: it still carries the span.
    assert len(in_trace) == 1 and in_trace[0]["parent_span_id"] == server["span_id"]
    assert all(c["parent_span_id"] in ("", None) for c in clients if c["trace_id"] != trace_id)
