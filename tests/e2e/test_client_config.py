"""Outgoing HTTP calls in one agent-injected Python process (no gunicorn): start-up imports no HTTP
client, calls with no active span, headers the app set, status errors, redaction, and the upstream
switches OTEL_PYTHON_DISABLED_INSTRUMENTATIONS and OTEL_PYTHON_*_EXCLUDED_URLS.

Each case runs ``SCRIPT`` in a fresh interpreter with the Operator's PYTHONPATH: a local HTTP server
(a thread) records the propagation headers of every request it gets, the script makes the calls it
is told to, and the spans go to the suite's OTLP receiver.
"""

from __future__ import annotations

import json

import pytest

from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, STATUS_ERROR, STATUS_UNSET
from support.processes import run_python

HTTP_CLIENTS = ("http.client", "urllib.request", "urllib3", "requests", "httpx", "httpcore", "aiohttp")

SCRIPT = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = {}
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        seen[self.path] = {k.lower(): v for k, v in self.headers.items() if k.lower() in ("traceparent", "baggage", "x-app")}
        status = int(self.path.split("/status/")[1].split("?")[0]) if "/status/" in self.path else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]

def call(client, path, headers=None):
    url = base + path
    if client == "urllib":
        import urllib.error, urllib.request
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})).read()
        except urllib.error.HTTPError:
            pass
    elif client == "http_client":
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
        conn.request("GET", path, headers=headers or {})
        conn.getresponse().read()
        conn.close()
    elif client == "requests":
        import requests
        requests.get(url, headers=headers)
    elif client == "urllib3":
        import urllib3
        urllib3.request("GET", url, headers=headers)
    elif client == "httpx":
        import httpx
        httpx.get(url, headers=headers)

from ferrotel import _native
plan = json.loads(sys.argv[1])
shared = {"x-app": "1"}
for client, path, mode in plan:
    headers = dict(shared) if mode != "app-traceparent" else {"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}
    if mode == "no-parent":
        call(client, path, headers)
        continue
    span = _native.start_span("parent", kind=1)
    token = _native.set_current(span)
    try:
        call(client, path, headers)
    finally:
        _native.reset_current(token)
        span.end()
    if mode != "app-traceparent":
        assert headers == shared, ("the app's headers were changed", headers)
_native.flush()
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("client-config"))


def run_plan(install, receiver, plan, **extra):
    receiver.clear()
    env = operator_env(install, receiver.http_endpoint, extra={"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **extra})
    proc = run_python(SCRIPT.replace("sys.argv[1]", repr(json.dumps(plan))), env)
    assert proc.returncode == 0, proc.stderr
    assert "ferrotel:" not in proc.stderr, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    return seen, receiver.spans()


def client_spans(spans, path):
    return [s for s in spans if s["kind"] == SPAN_KIND_CLIENT and s["attributes"].get("url.full", "").split("/", 3)[-1] == path.lstrip("/")]


def test_startup_imports_no_http_client(install, receiver):
    env = operator_env(install, receiver.http_endpoint)
    code = "import sys; loaded = [m for m in %r if m in sys.modules]; import ferrotel._bootstrap as b; print(loaded, b._started)" % (HTTP_CLIENTS,)
    proc = run_python(code, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] True", proc.stdout + proc.stderr


ALL = ["urllib", "http_client", "requests", "urllib3", "httpx"]


def test_calls_without_an_active_span_are_root_client_spans(install, module_receiver):
    plan = [(c, f"/root/{c}", "no-parent") for c in ALL]
    seen, spans = run_plan(install, module_receiver, plan)
    for client in ALL:
        [span] = client_spans(spans, f"/root/{client}")
        assert span["parent_span_id"] == "", "upstream: no active span, a new trace"
        assert seen[f"/root/{client}"]["traceparent"] == f"00-{span['trace_id']}-{span['span_id']}-01"


def test_headers_the_app_set_are_kept(install, module_receiver):
    plan = [(c, f"/own/{c}", "app-traceparent") for c in ALL]
    seen, spans = run_plan(install, module_receiver, plan)
    for client in ALL:
        assert seen[f"/own/{client}"]["traceparent"] == "00-11111111111111111111111111111111-2222222222222222-01"
        assert len(client_spans(spans, f"/own/{client}")) == 1


@pytest.mark.parametrize("client", ALL)
def test_client_status_from_400_is_an_error_and_query_secrets_are_redacted(install, module_receiver, client):
    seen, spans = run_plan(install, module_receiver, [(client, "/status/404?token=s3cret&page=2", "")])
    [span] = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT]
    assert span["status_code"] == STATUS_ERROR
    assert span["attributes"]["error.type"] == "404"
    assert span["attributes"]["http.response.status_code"] == 404
    assert span["attributes"]["url.full"].endswith("/status/404?token=REDACTED&page=2")
    assert "s3cret" not in json.dumps(spans)


@pytest.mark.parametrize(
    "disabled, traced",
    [
        ("urllib", {"requests", "urllib3", "httpx"}),
        ("requests", {"urllib", "http_client", "urllib3", "httpx"}),
        ("urllib3", {"urllib", "http_client", "requests", "httpx"}),
        ("httpx", {"urllib", "http_client", "requests", "urllib3"}),
        ("urllib3,requests", {"urllib", "http_client", "httpx"}),
        ("*", set()),
    ],
)
def test_disabled_instrumentations(install, module_receiver, disabled, traced):
    plan = [(c, f"/d/{c}", "") for c in ALL]
    seen, spans = run_plan(install, module_receiver, plan, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    for client in ALL:
        found = client_spans(spans, f"/d/{client}")
        if client in traced:
            assert len(found) == 1, client
            assert seen[f"/d/{client}"]["traceparent"].split("-")[2] == found[0]["span_id"]
        else:
            assert found == [], client
            # An instrumentation switched off writes no headers either (as upstream).
            assert "traceparent" not in seen[f"/d/{client}"], client


def test_excluded_urls(install, module_receiver):
    plan = [(c, f"/skip/{c}", "") for c in ALL] + [(c, f"/keep/{c}", "") for c in ALL]
    seen, spans = run_plan(
        install,
        module_receiver,
        plan,
        OTEL_PYTHON_EXCLUDED_URLS="/skip/",
        OTEL_PYTHON_REQUESTS_EXCLUDED_URLS="/skip/,keep/requests$",
    )
    for client in ALL:
        assert client_spans(spans, f"/skip/{client}") == [], client
        assert "traceparent" not in seen[f"/skip/{client}"]
        kept = client_spans(spans, f"/keep/{client}")
        if client == "requests":
            assert kept == [] and "traceparent" not in seen["/keep/requests"]
        else:
            assert len(kept) == 1 and kept[0]["status_code"] == STATUS_UNSET, client
