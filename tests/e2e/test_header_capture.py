"""Header capture as upstream configures it (issue 18), set as a user sets it, under real servers
with the agent injected the Operator's way, asserting what the receiver gets:

- `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST` / `_CLIENT_RESPONSE` on the CLIENT
  spans of every HTTP client hook (urllib, http.client, urllib3, requests, httpx);
- header names given as regular expressions (matched whole, case-insensitively; `.*` for all)
  for the server lists too, under gunicorn (Flask, WSGI) and uvicorn (plain ASGI);
- `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`: values of matching names
  (searched, case-insensitively) arrive as `[REDACTED]`; the secret itself never does.
Attributes are `http.{request,response}.header.<lower-cased name>`, arrays of strings.
"""

from __future__ import annotations

import json

import pytest

from support.asgi_servers import FASTAPI_DIR, ServerLauncher, UvicornApp
from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER
from support.processes import APP_DIR, GunicornApp

QUIET = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
CLIENTS = ("urllib", "http_client", "urllib3", "requests", "httpx")


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("capture"))


@pytest.fixture
def servers(tmp_path):
    launcher = ServerLauncher(tmp_path)
    yield launcher
    launcher.kill_all()


def serve(servers, cls, install, receiver, target, app_dir, app, headers=None, **env):
    receiver.clear()
    srv = servers.start(cls, operator_env(install, receiver.http_endpoint, extra={**QUIET, **env}), app_dir=app_dir, app=app)
    resp = http_get(srv.port, target, headers=headers)
    assert srv.stop() in (0, -15), srv.log_text()
    assert resp.status == 200, srv.log_text()
    assert "ferrotel:" not in srv.log_text(), srv.log_text()
    return receiver.spans()


def client_spans(spans):
    out = {}
    for s in spans:
        url = s["attributes"].get("url.full", "")
        if s["kind"] == SPAN_KIND_CLIENT and "/by/" in url:
            out[url.rsplit("/by/", 1)[1]] = s["attributes"]
    return out


def headers_of(attrs):
    return {k: v for k, v in attrs.items() if k.startswith("http.request.header.") or k.startswith("http.response.header.")}


def test_client_request_and_response_headers(servers, install, receiver):
    spans = serve(
        servers, GunicornApp, install, receiver, "/work", APP_DIR, "app_switches:app",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST="X-Req-Id,x-secret-token",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE="X-Resp-.*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="SECRET",
    )  # fmt: skip
    clients = client_spans(spans)
    assert sorted(clients) == sorted(CLIENTS)
    for name, attrs in clients.items():
        assert headers_of(attrs) == {
            "http.request.header.x-req-id": ["r1"],
            "http.request.header.x-secret-token": ["[REDACTED]"],
            "http.response.header.x-resp-id": ["s1"],
        }, name
    assert "hunter2" not in json.dumps(spans)
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER][0]
    assert headers_of(server["attributes"]) == {}, "the client lists are not the server's"


def test_no_client_capture_by_default(servers, install, receiver):
    spans = serve(servers, GunicornApp, install, receiver, "/work", APP_DIR, "app_switches:app")
    assert all(headers_of(a) == {} for a in client_spans(spans).values())


SENT = {"X-Alpha": "1", "X-Beta": "2", "Other": "3"}


@pytest.mark.parametrize(
    "cls, app_dir, app, target",
    [(GunicornApp, APP_DIR, "app:app", "/"), (UvicornApp, FASTAPI_DIR, "plain_asgi:app", "/p")],
    ids=["wsgi-flask", "asgi-plain"],
)
def test_server_header_names_are_regular_expressions(servers, install, receiver, cls, app_dir, app, target):
    spans = serve(
        servers, cls, install, receiver, target, app_dir, app, headers=SENT,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-.*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE=".*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="beta",
    )  # fmt: skip
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER][0]["attributes"]
    request = {k: v for k, v in headers_of(server).items() if k.startswith("http.request.")}
    assert request == {"http.request.header.x-alpha": ["1"], "http.request.header.x-beta": ["[REDACTED]"]}
    response = {k for k in headers_of(server) if k.startswith("http.response.")}
    assert "http.response.header.content-type" in response, "`.*` captures every response header"


def test_plain_server_names_still_match_exactly(servers, install, receiver):
    spans = serve(
        servers, GunicornApp, install, receiver, "/", APP_DIR, "app:app", headers=SENT,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="X-Alpha",
    )  # fmt: skip
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER][0]["attributes"]
    assert headers_of(server) == {"http.request.header.x-alpha": ["1"]}
