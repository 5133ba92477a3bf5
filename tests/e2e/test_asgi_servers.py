"""End-to-end: a plain ASGI 3 application (no framework, tests/app_fastapi/plain_asgi.py) under
uvicorn and under hypercorn, injected the Operator's way. The servers' hooks trace any ASGI app:
one SERVER span per HTTP request, lifespan untraced, exceptions recorded."""

from __future__ import annotations

import pytest

from support.asgi_servers import FASTAPI_DIR, HypercornApp, ServerLauncher, UvicornApp
from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET

SERVERS = {"uvicorn": UvicornApp, "hypercorn": HypercornApp}
TARGETS = ["/one", "/two?x=1", "/fail", "/raise"]


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_plain_asgi_app(server, dist_dir, receiver, tmp_path):
    launcher = ServerLauncher(tmp_path)
    try:
        install = install_like_operator(dist_dir, tmp_path)
        app = launcher.start(SERVERS[server], operator_env(install, receiver.endpoint("http/protobuf")), app_dir=FASTAPI_DIR, app="plain_asgi:app")
        responses = {t: http_get(app.port, t) for t in TARGETS}
        receiver.wait_for_spans(len(TARGETS), timeout=15, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
        app.stop()
        spans = receiver.spans()
    finally:
        launcher.kill_all()
    assert (responses["/one"].status, responses["/one"].body) == (200, b"plain /one")
    assert responses["/fail"].status == 500 and responses["/raise"].status == 500
    # One span per request and nothing else: no lifespan span, no send/receive spans.
    assert sorted(s["attributes"]["url.path"] for s in spans) == sorted(t.split("?")[0] for t in TARGETS)
    by_path = {s["attributes"]["url.path"]: s for s in spans}
    one = by_path["/one"]
    assert one["name"] == "GET" and "http.route" not in one["attributes"]  # no router, no route
    assert one["attributes"]["http.response.status_code"] == 200 and one["status_code"] == STATUS_UNSET
    assert one["scope_name"] == "ferrotel.asgi"
    assert by_path["/two"]["attributes"]["url.query"] == "x=1"
    assert by_path["/fail"]["status_code"] == STATUS_ERROR and not by_path["/fail"]["events"]
    raised = by_path["/raise"]
    assert raised["status_code"] == STATUS_ERROR
    assert raised["attributes"]["error.type"] == "RuntimeError"
    assert raised["attributes"]["http.response.status_code"] == 500  # the server's own 500
    assert [e["attributes"]["exception.message"] for e in raised["events"] if e["name"] == "exception"] == ["plain failure"]
