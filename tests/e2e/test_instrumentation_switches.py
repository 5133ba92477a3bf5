"""OTEL_PYTHON_DISABLED_INSTRUMENTATIONS and the excluded-URL variables (issue 18), set as a user
sets them, each under a real server with the agent injected the Operator's way (PYTHONPATH to the
tree's bootstrap, OTEL_* in the environment), asserting what the receiver gets.

- Every name of the registry that runs without a database server, under gunicorn with
  `tests/app/app_switches.py` (Flask; urllib, http.client, urllib3, requests, httpx, sqlite3,
  logging, a thread in one request): the named instrumentation is gone, the others unchanged.
- The ASGI frameworks under uvicorn (FastAPI, Starlette, a plain ASGI app, Django's ASGI app),
  Django under gunicorn, and `ferrotel.wsgi.Middleware` (`wsgi`). A framework served through
  uvicorn's wrapper is switched off by its own name, as with the pure-Python agent (which has no
  server wrapper); `asgi` switches off only the server wrapper.
- `OTEL_PYTHON_EXCLUDED_URLS` and `OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS` on SERVER spans
  (regular expressions searched in the full URL, as upstream: `ExcludeList`).
The database drivers' names are checked without servers in `test_database_names_patch_nothing`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.asgi_servers import DJANGO_DIR, FASTAPI_DIR, ServerLauncher, UvicornApp
from support.http_client import http_get
from support.operator import clean_env, install_like_operator, operator_env, operator_pythonpath
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER
from support.processes import APP_DIR, GunicornApp

QUIET = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
CLIENT_PATHS = ("urllib", "http_client", "urllib3", "requests", "httpx")


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("switches"))


@pytest.fixture
def servers(tmp_path):
    launcher = ServerLauncher(tmp_path)
    yield launcher
    launcher.kill_all()


def serve(servers, cls, install, receiver, targets, app_dir, app, **env):
    """Start `app` under `cls` with the agent and `env`, GET each target, stop (the agent flushes
    at exit) and return (the responses, every span the receiver got, the server's log)."""
    receiver.clear()
    srv = servers.start(cls, operator_env(install, receiver.http_endpoint, extra={**QUIET, **env}), app_dir=app_dir, app=app)
    responses = [http_get(srv.port, t) for t in targets]
    assert srv.stop() in (0, -15), srv.log_text()  # uvicorn re-raises SIGTERM
    return responses, receiver.spans(), srv.log_text()


def by_path(spans):
    """{target path: kind} of the client spans (`/by/<client>`)."""
    out = {}
    for s in spans:
        if s["kind"] == SPAN_KIND_CLIENT and "/by/" in s["attributes"].get("url.full", ""):
            out[s["attributes"]["url.full"].rsplit("/by/", 1)[1]] = s
    return out


def db_spans(spans):
    return [s for s in spans if s["attributes"].get("db.system.name") == "sqlite"]


def flask_run(servers, install, receiver, **env):
    (resp,), spans, log = serve(servers, GunicornApp, install, receiver, ["/work"], APP_DIR, "app_switches:app", **env)
    assert resp.status == 200, (resp.body, log)
    assert "ferrotel:" not in log, log
    return json.loads(resp.body), spans


@pytest.fixture(scope="module")
def baseline(install, tmp_path_factory):
    from support.otlp_receiver import Receiver

    launcher = ServerLauncher(tmp_path_factory.mktemp("baseline"))
    try:
        with Receiver() as rx:
            yield flask_run(launcher, install, rx)
    finally:
        launcher.kill_all()


def test_baseline_every_library_is_traced(baseline):
    seen, spans = baseline
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER]
    assert len(server) == 1 and server[0]["scope_name"] == "ferrotel.flask"
    clients = by_path(spans)
    assert sorted(clients) == sorted(CLIENT_PATHS)
    assert all(c["parent_span_id"] == server[0]["span_id"] for c in clients.values())
    queries = db_spans(spans)
    assert len(queries) == 2 and all(q["parent_span_id"] == server[0]["span_id"] for q in queries), "the thread's query too"
    assert seen["log"]["otelTraceID"] == server[0]["trace_id"]


# name in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS -> the client paths it takes away
CLIENT_CASES = {"urllib": {"urllib", "http_client"}, "urllib3": {"urllib3"}, "requests": {"requests"}, "httpx": {"httpx"}}


@pytest.mark.parametrize("name", sorted(CLIENT_CASES))
def test_a_disabled_client_makes_no_spans(servers, install, receiver, name):
    _, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=name)
    assert sorted(by_path(spans)) == sorted(set(CLIENT_PATHS) - CLIENT_CASES[name])
    assert [s["scope_name"] for s in spans if s["kind"] == SPAN_KIND_SERVER] == ["ferrotel.flask"]
    assert len(db_spans(spans)) == 2


def test_flask_disabled_no_server_span(servers, install, receiver):
    seen, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="flask")
    assert [s for s in spans if s["kind"] == SPAN_KIND_SERVER] == []
    # the rest still works: calls without a server span start traces of their own
    clients = by_path(spans)
    assert sorted(clients) == sorted(CLIENT_PATHS) and all(not c["parent_span_id"] for c in clients.values())
    assert seen["log"]["otelTraceID"] == "0"


def test_sqlite3_disabled(servers, install, receiver):
    _, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="sqlite3")
    assert db_spans(spans) == []
    assert sorted(by_path(spans)) == sorted(CLIENT_PATHS)


def test_logging_disabled(servers, install, receiver):
    seen, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="logging")
    assert seen["log"] == {"otelTraceID": None, "otelSpanID": None}, "no correlation fields on records"
    assert len([s for s in spans if s["kind"] == SPAN_KIND_SERVER]) == 1


def test_threading_disabled(servers, install, receiver):
    _, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="threading")
    server = [s for s in spans if s["kind"] == SPAN_KIND_SERVER][0]
    parents = sorted(q["parent_span_id"] == server["span_id"] for q in db_spans(spans))
    assert parents == [False, True], "the thread's query no longer joins the request"


def test_names_are_case_insensitive_and_star_disables_all(servers, install, receiver):
    _, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=" Flask , HTTPX,")
    assert not [s for s in spans if s["kind"] == SPAN_KIND_SERVER] and "httpx" not in by_path(spans)
    seen, spans = flask_run(servers, install, receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*")
    assert spans == [] and seen["log"] == {"otelTraceID": None, "otelSpanID": None}


# ---- servers other than Flask -----------------------------------------------------------------


def server_spans(spans):
    return [s for s in spans if s["kind"] == SPAN_KIND_SERVER]


@pytest.mark.parametrize(
    "app, target, disabled, expected_scope",
    [
        ("app:app", "/api/items/1", "", "ferrotel.asgi"),
        ("app:app", "/api/items/1", "fastapi", None),
        ("app:app", "/api/items/1", "asgi", "ferrotel.fastapi"),
        ("app:app", "/api/items/1", "starlette", "ferrotel.asgi"),
        ("starlette_app:app", "/hello/x", "", "ferrotel.asgi"),
        ("starlette_app:app", "/hello/x", "starlette", None),
        ("starlette_app:app", "/hello/x", "asgi", "ferrotel.starlette"),
        ("starlette_app:app", "/hello/x", "fastapi", "ferrotel.asgi"),
        ("plain_asgi:app", "/p", "", "ferrotel.asgi"),
        ("plain_asgi:app", "/p", "asgi", None),
    ],
)
def test_asgi_frameworks_under_uvicorn(servers, install, receiver, app, target, disabled, expected_scope):
    (resp,), spans, log = serve(servers, UvicornApp, install, receiver, [target], FASTAPI_DIR, app, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    assert resp.status == 200, (resp.body, log)
    scopes = [s["scope_name"] for s in server_spans(spans)]
    assert scopes == ([expected_scope] if expected_scope else []), log


DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "mysite.settings"}


@pytest.mark.parametrize("cls, app", [(GunicornApp, "mysite.wsgi:application"), (UvicornApp, "mysite.asgi:application")], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("disabled", ["", "django"])
def test_django(servers, install, receiver, cls, app, disabled):
    (resp,), spans, log = serve(servers, cls, install, receiver, ["/api/items/7"], DJANGO_DIR, app, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled, **DJANGO_ENV)
    assert resp.status == 200, (resp.body, log)
    assert len(server_spans(spans)) == (0 if disabled else 1), log


@pytest.mark.parametrize("disabled", ["", "wsgi"])
def test_wsgi_middleware(servers, install, receiver, disabled, dist_dir):
    # plain_wsgi.py starts the agent itself through ferrotel.wsgi.Middleware
    (resp,), spans, log = serve(servers, GunicornApp, install, receiver, ["/"], APP_DIR, "plain_wsgi:application", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    assert resp.status == 200, (resp.body, log)
    assert [s["scope_name"] for s in server_spans(spans)] == ([] if disabled else ["ferrotel.wsgi"])


# ---- excluded URLs on SERVER spans -------------------------------------------------------------


def test_excluded_urls_flask(servers, install, receiver):
    env = {"OTEL_PYTHON_FLASK_EXCLUDED_URLS": r"q=skip,/nothing$", "OTEL_PYTHON_EXCLUDED_URLS": "work"}
    responses, spans, _ = serve(servers, GunicornApp, install, receiver, ["/work?q=skip", "/work?q=keep"], APP_DIR, "app_switches:app", **env)
    assert [r.status for r in responses] == [200, 200]
    # the Flask list wins over the generic one, and is searched in the full URL (query included)
    assert [s["attributes"].get("url.query") for s in server_spans(spans)] == ["q=keep"]
    # an excluded request is untraced: its calls start traces of their own
    clients = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT and "/by/" in s["attributes"].get("url.full", "")]
    assert sorted(bool(c["parent_span_id"]) for c in clients) == [False] * len(CLIENT_PATHS) + [True] * len(CLIENT_PATHS)


@pytest.mark.parametrize(
    "app, env, targets, kept",
    [
        ("app:app", {"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "/items/2$"}, ["/api/items/1", "/api/items/2"], ["/api/items/1"]),
        ("app:app", {"OTEL_PYTHON_EXCLUDED_URLS": r"^http://127\.0\.0\.1:\d+/api/items/1"}, ["/api/items/1", "/api/items/2"], ["/api/items/2"]),
        ("starlette_app:app", {"OTEL_PYTHON_STARLETTE_EXCLUDED_URLS": "health"}, ["/hello/a", "/internal/health"], ["/hello/a"]),
        ("plain_asgi:app", {"OTEL_PYTHON_ASGI_EXCLUDED_URLS": "/b"}, ["/a", "/b"], ["/a"]),
    ],
)
def test_excluded_urls_asgi(servers, install, receiver, app, env, targets, kept):
    responses, spans, log = serve(servers, UvicornApp, install, receiver, targets, FASTAPI_DIR, app, **env)
    assert all(r.status == 200 for r in responses), log
    assert sorted(s["attributes"]["url.path"] for s in server_spans(spans)) == kept


def test_excluded_urls_django(servers, install, receiver):
    env = {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "items/8", **DJANGO_ENV}
    responses, spans, log = serve(servers, GunicornApp, install, receiver, ["/api/items/7", "/api/items/8"], DJANGO_DIR, "mysite.wsgi:application", **env)
    assert all(r.status == 200 for r in responses), log
    assert [s["attributes"]["url.path"] for s in server_spans(spans)] == ["/api/items/7"]


# ---- the database drivers' names, without servers ---------------------------------------------

DB_CHECK = r"""
import importlib, json, sys
name, module, probe = sys.argv[1:4]
try:
    m = importlib.import_module(module)
except ImportError:
    print(json.dumps(None)); raise SystemExit
obj = m
for part in probe.split("."):
    obj = getattr(obj, part)
from ferrotel import _native
print(json.dumps(
    hasattr(obj, "__wrapped__")
    or getattr(obj, "_ferrotel", False) is True
    or "_ferrotel_db" in getattr(obj, "__dict__", {})
    or isinstance(obj, _native.MethodHook)
))
"""

# upstream name, module the app imports, what the hook patches (a wrapper with __wrapped__ or
# marked `_ferrotel`, a native method hook, or a class given ferrotel's `_ferrotel_db` default)
DB_NAMES = [
    ("psycopg", "psycopg", "Cursor"),
    ("psycopg2", "psycopg2", "connect"),
    ("pymysql", "pymysql", "cursors.Cursor"),
    ("mysqlclient", "MySQLdb.connections", "Connection.__init__"),
    ("asyncpg", "asyncpg", "connection.Connection.execute"),
    ("sqlalchemy", "sqlalchemy.engine.default", "DefaultDialect.do_execute"),
    ("redis", "redis.client", "Redis"),
]


@pytest.mark.parametrize("name, module, probe", DB_NAMES, ids=[n[0] for n in DB_NAMES])
def test_database_names_patch_nothing(install, name, module, probe):
    def hooked(disabled):
        env = clean_env(PYTHONPATH=operator_pythonpath(install), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
        out = subprocess.run([sys.executable, "-c", DB_CHECK, name, module, probe], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    on = hooked("")
    if on is None:
        pytest.skip(f"{module} is not installed in the test environment")
    assert on is True, f"the {name} hook did not mark {module}.{probe}: fix the probe"
    assert hooked(name) is False


# ---- FastAPI's own "not traced here" marker (README, Frameworks and servers) ------------------


def test_fastapi_sees_the_not_traced_here_marker(servers, install, receiver):
    (resp,), spans, log = serve(servers, UvicornApp, install, receiver, ["/telemetry-marker"], FASTAPI_DIR, "app:app")
    assert resp.status == 200, log
    # set by the server-level wrapper before FastAPI looks: FastAPI skips its own telemetry
    assert json.loads(resp.body) == {"present": True, "is_none": True}
    assert [s["scope_name"] for s in server_spans(spans)] == ["ferrotel.asgi"]


def test_without_the_agent_fastapi_sees_no_marker(servers, receiver, tmp_path):
    env = clean_env()
    srv = servers.start(UvicornApp, env, app_dir=FASTAPI_DIR, app="app:app")
    resp = http_get(srv.port, "/telemetry-marker")
    srv.stop()
    assert json.loads(resp.body) == {"present": False, "is_none": False}, "the marker comes from ferrotel"


# ---- the OpenTelemetry API bridge, and every registry name covered ----------------------------

API_PROBE = r"""
import json
from opentelemetry import trace
span = trace.get_tracer("probe").start_span("s")
print(json.dumps(type(span).__module__))
span.end()
"""


@pytest.mark.parametrize("disabled, bridged", [("", True), ("opentelemetry_api", False), ("*", False)])
def test_the_api_bridge_switch(install, disabled, bridged):
    from support.app_venvs import app_venv, run_in

    bin_dir = app_venv("api-newest")
    env = operator_env(install, "http://127.0.0.1:9", extra={**QUIET, "OTEL_TRACES_EXPORTER": "none", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})
    out = run_in(bin_dir, API_PROBE, env)
    assert out.returncode == 0, out.stderr
    module = json.loads(out.stdout.strip().splitlines()[-1])
    assert (module == "ferrotel.hooks.otel.otel_api") is bridged, module


# every name this file switches off, each under a server or in the app's own environment
SWITCHED_HERE = {"flask", "sqlite3", "logging", "threading", "django", "wsgi", "fastapi", "starlette", "asgi", "opentelemetry_api", "aiohttp_client"}
SWITCHED_HERE |= set(CLIENT_CASES) | {n for n, _, _ in DB_NAMES}
# names whose switch is tested in their family's own suite, under their own servers
SWITCHED_ELSEWHERE = {
    "aiohttp_server": "rpc/test_aiohttp.py",
    "grpc_client": "rpc/test_grpc.py",
    "grpc_server": "rpc/test_grpc.py",
    "gevent": "gevent/test_gevent.py",
    "botocore": "aws/test_botocore.py",
    "celery": "messaging/test_celery.py",
}


def test_every_registry_name_is_switched_off_by_a_test_here():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "python" / "ferrotel" / "_registry.py"
    spec = importlib.util.spec_from_file_location("ferrotel_registry_for_switches", path)
    registry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registry)
    names = {i.name for i in registry.INSTRUMENTATIONS} | {"wsgi"}
    elsewhere = set()
    for name, path in SWITCHED_ELSEWHERE.items():
        text = (Path(__file__).resolve().parents[1] / path).read_text()
        assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in text and name in text, f"{path} no longer switches {name} off"
        elsewhere.add(name)
    assert names == SWITCHED_HERE | elsewhere, "add a test of the new name's switch (here, or in its family's suite listed above)"


AIOHTTP_CLIENT = r"""
import asyncio, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()

import aiohttp

async def main():
    async with aiohttp.ClientSession() as session:
        async with session.get("http://127.0.0.1:%d/by/aiohttp" % server.server_address[1]) as resp:
            await resp.read()

asyncio.run(main())
from ferrotel import _native
_native.flush()
"""


@pytest.mark.parametrize("disabled", ["", "aiohttp_client"])
def test_aiohttp_client_switch(install, receiver, disabled):
    from support.processes import run_python

    receiver.clear()
    env = operator_env(install, receiver.http_endpoint, extra={**QUIET, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})
    proc = run_python(AIOHTTP_CLIENT, env)
    assert proc.returncode == 0, proc.stderr
    spans = by_path(receiver.spans())
    assert sorted(spans) == ([] if disabled else ["aiohttp"]), proc.stderr
