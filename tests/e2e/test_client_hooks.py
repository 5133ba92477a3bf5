"""The outgoing-call hooks as the application sees them: native method hooks in place of the
libraries' methods (no Python frame of the agent's), which must look and behave like the methods
they replace.

One agent-injected interpreter per case (the Operator's PYTHONPATH, console exporter): a local HTTP
server thread records the propagation headers each request carried; the script checks what the
application can observe and prints one JSON line, and the spans come from the console exporter.
Checked: ``__wrapped__``/``__name__``/``__doc__``; class-level calls (``HTTPConnection.putrequest(conn,
...)``, as urllib3 1.26 makes) and keyword arguments; methods another tool wrapped first (native
hooks then, which pass any arguments through); the application's exception object and its
traceback unchanged; urllib3's and httpx's request objects not modified; urllib3 connection
classes whose ``endheaders`` is their own (headers through a copy of the request's headers); httpx
redirects (each request carries its own span's context) and HTTP/2-enabled clients; and the
``http.client`` hooks under every CPython 3.9–3.13 on this machine (the native call path differs
before 3.11, where the interpreter does not export ``PyObject_Vectorcall``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support.operator import install_like_operator, operator_pythonpath, clean_env

PRELUDE = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = {}
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        seen[self.path] = self.headers.get_all("traceparent") or []
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]
base = "http://127.0.0.1:%d" % port
result = {}

from ferrotel import _native
parent = _native.start_span("parent", kind=1)
token = _native.set_current(parent)
"""

EPILOGUE = r"""
_native.reset_current(token)
parent.end()
_native.flush()
print(json.dumps({"result": result, "seen": seen}))
"""


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("client-hooks"))


def agent_env(install: Path, **extra: str) -> dict:
    return clean_env(
        PYTHONPATH=operator_pythonpath(install),
        OTEL_SERVICE_NAME="client-hooks",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        PYTHONNOUSERSITE="1",
        **extra,
    )


def run(install: Path, body: str, python: str | None = None, **extra: str):
    import sys

    code = PRELUDE + body + EPILOGUE
    proc = subprocess.run(
        [python or sys.executable, "-c", code], env=agent_env(install, **extra), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert not [line for line in lines if line.startswith("ferrotel:")], proc.stderr
    spans = [json.loads(line) for line in lines if line.startswith("{")]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["result"], out["seen"], [s for s in spans if s.get("kind") == "CLIENT"]


def by_url(spans, path):
    return [s for s in spans if s["attributes"].get("url.full", "").endswith(path)]


def traceparent_of(span):
    return f"00-{span['trace_id']}-{span['span_id']}-01"


def test_hooked_methods_look_like_the_originals(install):
    body = r"""
import http.client, urllib3, httpx, httpcore, inspect
for owner, name in ((http.client.HTTPConnection, "endheaders"), (http.client.HTTPConnection, "getresponse"),
                    (urllib3.connectionpool.HTTPConnectionPool, "_make_request"),
                    (httpx.HTTPTransport, "handle_request"), (httpx.AsyncHTTPTransport, "handle_async_request"),
                    (httpcore._sync.http11.h11.Connection, "send")):
    hooked = getattr(owner, name)
    original = hooked.__wrapped__
    result[owner.__name__ + "." + name] = [
        hooked is not original, hooked.__name__ == original.__name__, hooked.__doc__ == original.__doc__,
        str(inspect.signature(hooked)) == str(inspect.signature(original)),
    ]
conn = http.client.HTTPConnection("127.0.0.1", port)
result["bound"] = conn.endheaders.__self__ is conn and urllib3.HTTPConnectionPool("x")._make_request.__self__ is not None
import h11
result["h11 untouched"] = h11.Connection.send is httpcore._sync.http11.h11.Connection.send.__wrapped__
"""
    result, _, _ = run(install, body)
    assert result.pop("bound") is True
    assert result.pop("h11 untouched") is True
    for name, checks in result.items():
        assert checks == [True, True, True, True], name


def test_class_level_calls_and_keyword_arguments(install):
    body = r"""
import http.client
conn = http.client.HTTPConnection("127.0.0.1", port)
# As urllib3 1.26's connection does: the method taken from the class, the instance passed first.
http.client.HTTPConnection.putrequest(conn, "GET", "/by-class", skip_accept_encoding=True)
http.client.HTTPConnection.endheaders(conn)
http.client.HTTPConnection.getresponse(conn).read()
conn.putrequest(method="GET", url="/by-keyword", skip_host=False)
conn.putheader("Accept", "*/*")
conn.endheaders(message_body=None)
conn.getresponse().read()
conn.close()
"""
    _, seen, spans = run(install, body)
    for path in ("/by-class", "/by-keyword"):
        [span] = by_url(spans, path)
        assert seen[path] == [traceparent_of(span)], path
        assert span["attributes"]["http.response.status_code"] == 200


def test_methods_wrapped_by_someone_else_get_the_native_hooks(install):
    body = r"""
import functools, importlib.util, http.client
from ferrotel.hooks.http_clients import http_client as hook

# A second copy of http.client whose endheaders someone (another tool) wrapped with (*args, **kwargs)
# before ferrotel saw it: the Python wrappers, which mirror the methods' signatures, do not fit.
spec = importlib.util.spec_from_file_location("http_client_copy", http.client.__file__)  # not through ferrotel's finder
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
original = module.HTTPConnection.endheaders

@functools.wraps(original)
def endheaders(self, *args, **kwargs):
    return original(self, *args, **kwargs)

module.HTTPConnection.endheaders = endheaders
hook.instrument(module)
result["native"] = [type(module.HTTPConnection.__dict__[n]).__name__ for n in ("endheaders", "getresponse")]
conn = module.HTTPConnection("127.0.0.1", port)
conn.request("GET", "/fallback", headers={"x-app": "1"})
conn.getresponse().read()
conn.request("GET", "/fallback-again")
conn.getresponse().read()
try:
    module.HTTPConnection("127.0.0.1", 9).request("GET", "/refused")
except ConnectionRefusedError:
    result["refused"] = True
"""
    result, seen, spans = run(install, body)
    assert result == {"native": ["MethodHook", "MethodHook"], "refused": True}
    for path in ("/fallback", "/fallback-again"):
        [span] = by_url(spans, path)
        assert seen[path] == [traceparent_of(span)], path
        assert span["attributes"]["http.response.status_code"] == 200
    [refused] = by_url(spans, ":9/refused")
    assert refused["attributes"]["error.type"] == "ConnectionRefusedError"


def test_the_application_gets_its_own_exception_and_traceback(install):
    body = r"""
import http.client, traceback, urllib3, httpx

class Boom(Exception):
    pass

def raise_from(owner, name, path, call):
    original = getattr(owner, name)
    raised = []
    def failing(*args, **kwargs):
        exc = Boom("from the library")
        raised.append(exc)
        raise exc
    setattr(owner, name, failing)
    try:
        call()
    except Boom as exc:
        frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        result[path] = [exc is raised[0], frames[-1] == "failing", str(exc)]
    finally:
        setattr(owner, name, original)

# Underneath each hook: what the hook calls raises; the app catches the very same object.
conn = http.client.HTTPConnection("127.0.0.1", port)
raise_from(http.client.HTTPConnection, "send", "/hc-send", lambda: conn.request("GET", "/hc-send"))
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("GET", "/hc-response")
raise_from(http.client.HTTPResponse, "begin", "/hc-response", lambda: conn.getresponse())
raise_from(http.client.HTTPResponse, "begin", "/u3", lambda: urllib3.request("GET", base + "/u3", retries=False))
import httpcore
raise_from(httpcore.ConnectionPool, "handle_request", "/httpx", lambda: httpx.get(base + "/httpx"))
"""
    result, _, spans = run(install, body)
    for path in ("/hc-send", "/hc-response", "/u3", "/httpx"):
        assert result[path] == [True, True, "from the library"], path
        [span] = by_url(spans, path)
        assert span["status"]["code"] == "ERROR", path
        assert span["attributes"]["error.type"] == "Boom", path


def test_request_objects_are_not_modified(install):
    body = r"""
import urllib3, requests, httpx
headers = {"x-app": "1"}
pool = urllib3.PoolManager(headers=headers)
pool.request("GET", base + "/u3-pool")
urllib3.request("GET", base + "/u3", headers=headers)
requests.get(base + "/requests", headers=headers)
result["dict"] = headers == {"x-app": "1"}
r = httpx.get(base + "/httpx", headers=headers)
result["httpx request"] = "traceparent" not in r.request.headers and r.request.headers["x-app"] == "1"
r = httpx.get(base + "/redirect", follow_redirects=True)
result["httpx redirect"] = ["traceparent" in h for h in [r.history[0].request.headers, r.request.headers]]
"""
    result, seen, spans = run(install, body)
    assert result == {"dict": True, "httpx request": True, "httpx redirect": [False, False]}
    for path in ("/u3-pool", "/u3", "/requests", "/httpx", "/redirect", "/landed"):
        [span] = by_url(spans, path)
        # Each request carries its own span's context, once (the redirect's second request too).
        assert seen[path] == [traceparent_of(span)], path


def test_urllib3_connection_with_its_own_endheaders(install):
    body = r"""
import urllib3

class Connection(urllib3.connection.HTTPConnection):
    def endheaders(self, *args, **kwargs):  # not http.client's: headers go through a copy of the request's
        return super().endheaders(*args, **kwargs)

pool = urllib3.HTTPConnectionPool("127.0.0.1", port)
pool.ConnectionCls = Connection
headers = {"x-app": "1"}
pool.request("GET", "/own-endheaders", headers=headers)
pool.request("GET", "/own-endheaders-again", headers=headers)
result["dict"] = headers == {"x-app": "1"}
"""
    result, seen, spans = run(install, body)
    assert result == {"dict": True}
    for path in ("/own-endheaders", "/own-endheaders-again"):
        [span] = by_url(spans, path)
        assert seen[path] == [traceparent_of(span)], path


def test_httpx_http2_enabled_client_and_async(install):
    body = r"""
import asyncio, httpx
try:
    import h2  # noqa: F401
    with httpx.Client(http2=True) as client:  # plain http: HTTP/1.1 on the wire, headers through the request
        client.get(base + "/http2-enabled")
except ImportError:
    pass

async def main():
    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(client.get(base + "/async/%d" % i) for i in range(4)))
    try:
        async with httpx.AsyncClient() as client:
            await client.get("http://127.0.0.1:9/refused")
    except httpx.ConnectError:
        result["refused"] = True
asyncio.run(main())
"""
    result, seen, spans = run(install, body)
    assert result == {"refused": True}
    paths = [f"/async/{i}" for i in range(4)] + (["/http2-enabled"] if "/http2-enabled" in seen else [])
    for path in paths:
        [span] = by_url(spans, path)
        assert seen[path] == [traceparent_of(span)], path
    [refused] = by_url(spans, ":9/refused")
    assert refused["attributes"]["error.type"] == "httpx.ConnectError"


SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def find_python(version: str) -> Path | None:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(root.glob(f"{version}.*/bin/python{version}")) if root.is_dir() else []
    return candidates[-1] if candidates else None


@pytest.mark.parametrize("version", SUPPORTED)
def test_http_client_hooks_under_every_python(install, version):
    python = find_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed (pyenv)")
    body = r"""
import http.client, urllib.request
urllib.request.urlopen(base + "/urllib").read()
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("GET", "/kw", headers={"x-app": "1"}, encode_chunked=False)
conn.getresponse().read()
try:
    http.client.HTTPConnection("127.0.0.1", 9).request("GET", "/refused")
except ConnectionRefusedError:
    result["refused"] = True
"""
    result, seen, spans = run(install, body, python=str(python))
    assert result == {"refused": True}
    for path in ("/urllib", "/kw"):
        [span] = by_url(spans, path)
        assert seen[path] == [traceparent_of(span)], path
        assert span["attributes"]["http.response.status_code"] == 200
    [refused] = by_url(spans, ":9/refused")
    assert refused["attributes"]["error.type"] == "ConnectionRefusedError"
