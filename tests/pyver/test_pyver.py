"""The agent on CPython 3.14 and 3.15 (Debian unstable's builds, in the sid root; see conftest).

Per version: the abi3 module loads and finds every C-API function it looks up at run time; the
in-process loops (WSGI, Flask, ASGI, the OpenTelemetry API bridge with the newest
opentelemetry-api, logging, sqlite3, threading, each HTTP client) make the spans and log records they make on
3.9-3.13; Flask and Django under gunicorn and FastAPI under uvicorn serve traced requests; on 3.15
with PEP 810's PYTHON_LAZY_IMPORTS=all every hook still fires for modules imported lazily; a
free-threaded build stands down with one line.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from support.processes import free_port

from pyver_helpers import VERSIONS, loops_report

SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
ALL_LOOPS = "wsgi,flask,asgi,api,logging,sqlite,threads,clients"
CLIENT_PACKAGES = {"/urllib3": "urllib3", "/requests": "requests", "/httpx": "httpx"}


def agent_env(sid_root, receiver, **extra):
    return sid_root.env({
        "OTEL_SERVICE_NAME": "pyver", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true", **extra,
    })


@pytest.mark.parametrize("version", VERSIONS)
def test_the_module_loads_and_resolves_its_runtime_functions(sid_root, version):
    code = ("import json, sys; from ferrotel import _native; from ferrotel._bootstrap import _free_threaded; "
            "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'capi': dict(_native._capi()), "
            "'free_threaded': _free_threaded(), 'started': sys.modules['ferrotel._bootstrap']._started}))")
    result = sid_root.run([sid_root.python(version, venv=False), "-c", code], sid_root.env({"OTEL_TRACES_EXPORTER": "none"}))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["version"] == version
    assert report["started"] is True and report["free_threaded"] is False
    assert set(report["capi"].values()) == {"resolved"}, report["capi"]
    assert "ferrotel:" not in result.stderr, result.stderr


def check_loop_spans(receiver, report, version):
    """What the in-process loops (N=10, one error each) must have exported."""
    spans = receiver.wait_for_spans(1, timeout=20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(receiver.spans()) < 40:
        time.sleep(0.2)
    spans = receiver.spans()
    server = [s for s in spans if s["kind"] == SERVER]
    names = {s["name"] for s in server}
    # Flask (route templates, errors, the caller's trace continued)
    assert {"GET /users/<int:uid>", "GET /error"} <= names, receiver.summary()
    flask_error = [s for s in server if s["name"] == "GET /error"]
    assert flask_error and all(s["status_code"] == ERROR for s in flask_error)
    assert any(s["trace_id"] == CALLER_TRACE for s in server if s["name"] == "GET /users/<int:uid>")
    # the plain WSGI and ASGI apps
    by_path = {}
    for s in server:
        by_path.setdefault(s["attributes"].get("url.path"), []).append(s)
    assert "/hello" in by_path and any(p and p.startswith("/items/") for p in by_path), receiver.summary()
    # inside requests: the OpenTelemetry API bridge ("work" a child of the request's span),
    # sqlite3 statements, log records carrying the request's trace
    by_id = {s["span_id"]: s for s in spans}

    def under(path):
        return lambda s: by_id.get(s["parent_span_id"], {}).get("attributes", {}).get("url.path") == path

    work = [s for s in spans if s["name"] == "work"]
    assert work and all(map(under("/api"), work)), receiver.summary()
    db = [s for s in spans if s["attributes"].get("db.system.name") == "sqlite"]
    # (threading: the statement a thread started by the request ran is the request's child too)
    in_requests = [s for s in db if s["name"] != "CREATE TABLE t"]  # the loop's set-up, outside requests
    parents = [by_id.get(s["parent_span_id"], {}).get("attributes", {}).get("url.path") for s in in_requests]
    assert set(parents) == {"/db", "/threads"}, (parents, receiver.summary())
    log_traces = {s["trace_id"] for s in by_path.get("/log", [])}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("hello from loops" in json.dumps(r.get("body")) for r in receiver.log_records()):
        time.sleep(0.2)
    records = [r for r in receiver.log_records() if "hello from loops" in json.dumps(r.get("body"))]
    assert records and all(r.get("trace_id") in log_traces for r in records), receiver.log_records()[:3]
    # HTTP clients: each call a CLIENT span whose id went out in traceparent
    echo = report["loops"]["clients"]["echo"]
    assert echo
    clients = {s["span_id"]: s for s in spans if s["kind"] == CLIENT}
    for seen in echo:
        assert seen["traceparent"], seen
        span_id = seen["traceparent"].split("-")[2]
        assert span_id in clients, (seen, receiver.summary())
    return {e["path"] for e in echo}


@pytest.mark.parametrize("version", VERSIONS)
def test_in_process_loops_make_their_spans(sid_root, receiver, version):
    sid_root.require(version, "flask", "opentelemetry-api")
    result = sid_root.run([sid_root.python(version), f"{sid_root.dir}/loops.py", ALL_LOOPS, "10"], agent_env(sid_root, receiver))
    report = loops_report(result)
    assert report["agent"] and report["python"] == version
    paths = check_loop_spans(receiver, report, version)
    expected = {"/urllib", "/http.client"} | {p for p, pkg in CLIENT_PACKAGES.items() if pkg not in sid_root.missing(version)}
    assert paths == expected


LAZY = r'''
import sys
import json
import logging
import sqlite3
import urllib.request
import http.client
from flask import Flask

lazy = {name: name not in sys.modules for name in ("sqlite3", "urllib.request", "http.client", "flask")}
app = Flask("lazy")
log = logging.getLogger("lazy")


@app.route("/db")
def db():
    conn = sqlite3.connect(":memory:")
    conn.execute("SELECT 1").fetchall()
    conn.close()
    log.warning("hello from loops")
    return "db"


resp = app.test_client().get("/db")
resp.close()
port = int(sys.argv[1])
with urllib.request.urlopen("http://127.0.0.1:%d/urllib" % port) as r:
    r.read()
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("GET", "/http.client")
conn.getresponse().read()
print("LAZY " + json.dumps(lazy))
'''


def test_lazy_imports_on_3_15_still_fire_every_hook(sid_root, receiver, tmp_path):
    """PEP 810: with PYTHON_LAZY_IMPORTS=all a module-level import binds a proxy and loads the
    module at first use; the import hook must still patch it then (Flask, sqlite3, logging,
    urllib/http.client)."""
    version = "3.15"
    sid_root.require(version, "flask")
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("traceparent"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = sid_root.host_path(f"{sid_root.dir}/lazy.py")
        script.write_text(LAZY)
        env = agent_env(sid_root, receiver, PYTHON_LAZY_IMPORTS="all")
        result = sid_root.run([sid_root.python(version), f"{sid_root.dir}/lazy.py", str(server.server_address[1])], env)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    lazy = json.loads(result.stdout.split("LAZY ", 1)[1])
    assert all(lazy.values()), f"PYTHON_LAZY_IMPORTS=all did not defer the imports: {lazy}"
    spans = receiver.wait_for_spans(4, timeout=20)
    names = {s["name"] for s in spans}
    assert "GET /db" in names, receiver.summary()
    assert any(s["attributes"].get("db.system.name") == "sqlite" for s in spans), receiver.summary()
    client_ids = {s["span_id"] for s in spans if s["kind"] == CLIENT}
    assert len(seen) == 2 and all(tp and tp.split("-")[2] in client_ids for tp in seen), (seen, receiver.summary())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not receiver.log_records():
        time.sleep(0.2)
    assert any("hello from loops" in json.dumps(r.get("body")) for r in receiver.log_records())


def get(url: str, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_listening(port: int, proc, log: Path, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server did not listen on {port}:\n{log.read_text()[-4000:]}")


def stop(proc) -> None:
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, OSError):
        pass
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


SERVERS = {
    # name: (packages, argv after the venv's bin/, app dir, extra env, requests [(path, expected span name)])
    "flask-gunicorn": (("flask", "gunicorn"), ["gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "app:app"], "app", {},
                       [("/users/42", "GET /users/<int:uid>"), ("/error", "GET /error")]),
    "django-gunicorn": (("django", "gunicorn"), ["gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "mysite.wsgi:application"], "app_django",
                        {"DJANGO_SETTINGS_MODULE": "mysite.settings"},
                        [("/api/items/7", "GET /api/items/<int:item_id>"), ("/error", "GET /error")]),
    "fastapi-uvicorn": (("fastapi", "uvicorn"), ["uvicorn", "--port", "{port}", "--host", "127.0.0.1", "app:app"], "app_fastapi", {},
                        [("/api/items/7", "GET /api/items/{item_id}"), ("/error", "GET /error")]),
}


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize("version", VERSIONS)
def test_servers(sid_root, receiver, tmp_path, version, server):
    packages, argv, app_dir, extra, requests = SERVERS[server]
    sid_root.require(version, *packages)
    port = free_port()
    argv = [f"/opt/venv-{version}/bin/{argv[0]}"] + [a.format(port=port) for a in argv[1:]]
    log = tmp_path / "server.log"
    proc = sid_root.popen(argv, agent_env(sid_root, receiver, **extra), log, cwd=f"{sid_root.dir}/{app_dir}")
    try:
        wait_listening(port, proc, log)
        statuses = [get(f"http://127.0.0.1:{port}{path}", {"traceparent": f"00-{CALLER_TRACE}-b7ad6b7169203331-01"}) for path, _ in requests]
        assert statuses[0] == 200 and statuses[1] == 500, (statuses, log.read_text()[-3000:])
        spans = receiver.wait_for_spans(len(requests), timeout=20, predicate=lambda s: s["kind"] == SERVER)
    finally:
        stop(proc)
    by_name = {s["name"]: s for s in spans}
    for path, name in requests:
        assert name in by_name, receiver.summary()
        assert by_name[name]["trace_id"] == CALLER_TRACE
    assert by_name["GET /error"]["status_code"] == ERROR
    assert by_name[requests[0][1]]["resource"]["process.runtime.version"].startswith(version + ".")


FREE_THREADED = r'''
import sys, types
fake = types.ModuleType("_sysconfig")
fake.config_vars = lambda: {"Py_GIL_DISABLED": 1}
sys.modules["_sysconfig"] = fake          # what a free-threaded build's own flag says
sys.path[:0] = sys.argv[1].split(":")
import sitecustomize                       # the injected bootstrap, as site would run it
import ferrotel
print("RESULT", "ferrotel._native" in sys.modules, ferrotel.start(), ferrotel.__version__)
'''


@pytest.mark.parametrize("version", VERSIONS)
def test_a_free_threaded_build_stands_down_with_one_line(sid_root, version):
    """Debian ships no free-threaded CPython, so the build's flag is what is simulated: the
    bootstrap reads Py_GIL_DISABLED before anything imports the native module, says so in one
    line, and the package still imports (start() returns False)."""
    env = sid_root.env(agent=False)
    tree = sid_root.tree
    path = f"{tree}/opentelemetry/instrumentation/auto_instrumentation:{tree}"
    result = sid_root.run([sid_root.python(version, venv=False), "-S", "-c", FREE_THREADED, path], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RESULT", "False", "False", "None"], result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ferrotel: free-threaded CPython %s" % version) and "Py_GIL_DISABLED" in lines[0], lines


DATABASES = r'''
import sys
import psycopg
import redis

with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("SELECT %s::int AS n", (42,)).fetchall()
r = redis.Redis.from_url(sys.argv[2])
r.set("pyver", "1")
r.get("pyver")
print("DB-DONE")
'''


@pytest.mark.parametrize("version", VERSIONS)
def test_network_database_drivers(sid_root, receiver, postgres_server, redis_server, version):
    """psycopg 3 (its binary wheel for the version) and redis-py against the real PostgreSQL and
    Redis of tests/support (the chroot shares the host's loopback)."""
    sid_root.require(version, "psycopg", "redis")
    script = sid_root.host_path(f"{sid_root.dir}/databases.py")
    script.write_text(DATABASES)
    result = sid_root.run([sid_root.python(version), f"{sid_root.dir}/databases.py", postgres_server.dsn, redis_server.url],
                          agent_env(sid_root, receiver))
    assert result.returncode == 0 and "DB-DONE" in result.stdout, result.stderr
    spans = receiver.wait_for_spans(3, timeout=20, predicate=lambda s: s["kind"] == CLIENT)
    systems = {s["attributes"].get("db.system.name") for s in spans}
    assert {"postgresql", "redis"} <= systems, receiver.summary()
    [select] = [s for s in spans if s["attributes"].get("db.operation.name") == "SELECT"]
    assert select["attributes"]["db.system.name"] == "postgresql"
