"""End-to-end: database and cache spans from real servers (PostgreSQL, MariaDB, Redis started by
the session's fixtures), the test apps injected the Operator's way, exported to the OTLP receiver.

The Flask app (tests/app_db/app.py) runs under gunicorn; each route runs one driver's statements.
The FastAPI app (tests/app_db/asgi_app.py) runs under gunicorn's uvicorn workers for the async
drivers. The assertions: one span per statement, parented to its request's span; the stable
database attributes; no secret literal or parameter anywhere in what was exported; errors;
batches; the metric counting every statement.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.asgi_servers import GunicornUvicornApp, ServerLauncher
from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR
from support.processes import GunicornLauncher, free_port

APP_DIR = Path(__file__).resolve().parent.parent / "app_db"
SECRETS = [b"s3cr3t-literal-7781", b"s3cr3t-param-9932", b"12345678"]
ROUTES = ["/sqlite", "/psycopg", "/psycopg2", "/pymysql", "/mysqlclient", "/sqlalchemy/sqlite", "/sqlalchemy/psycopg", "/redis", "/threads"]


def db_env(postgres_server, mariadb_server, redis_server) -> dict:
    return {
        "FERROTEL_TEST_PG_DSN": postgres_server.dsn,
        "FERROTEL_TEST_MYSQL_PORT": str(mariadb_server.port),
        "FERROTEL_TEST_MYSQL_USER": mariadb_server.user,
        "FERROTEL_TEST_MYSQL_PASSWORD": mariadb_server.password,
        "FERROTEL_TEST_MYSQL_DATABASE": mariadb_server.database,
        "FERROTEL_TEST_REDIS_URL": redis_server.url,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }


def is_db(span) -> bool:
    return span["kind"] == SPAN_KIND_CLIENT and "db.system.name" in span["attributes"]


@dataclass
class Run:
    responses: dict
    spans: list
    metrics: list
    payloads: list
    log: str = ""
    by_id: dict = field(default_factory=dict)

    def server(self, path: str) -> dict:
        found = [s for s in self.spans if s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("url.path") == path]
        assert len(found) == 1, (path, len(found))
        return found[0]

    def children(self, path: str) -> list:
        parent = self.server(path)
        return [s for s in self.spans if s["parent_span_id"] == parent["span_id"] and s["trace_id"] == parent["trace_id"]]

    def failure_sections(self):
        return [("gunicorn log", self.log)]


@pytest.fixture(scope="module")
def flask_run(dist_dir, module_receiver, postgres_server, mariadb_server, redis_server, tmp_path_factory) -> Run:
    workdir = tmp_path_factory.mktemp("db-flask")
    receiver = module_receiver
    receiver.clear()
    launcher = GunicornLauncher(workdir)
    try:
        install = install_like_operator(dist_dir, workdir)
        env = operator_env(install, receiver.endpoint("http/protobuf"), extra=db_env(postgres_server, mariadb_server, redis_server))
        app = launcher.start(env, app_dir=APP_DIR, app="app:app")
        responses = {path: http_get(app.port, path) for path in ROUTES}
        receiver.wait_for_spans(len(ROUTES), timeout=20, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
        assert app.stop() == 0, app.log_text()
        return Run(responses, receiver.spans(), receiver.metrics(), receiver.raw_payloads(), app.log_text())
    finally:
        launcher.kill_all()


def ran(run: Run, path: str) -> list:
    r = run.responses[path]
    if r.status == 501:
        why = json.loads(r.body).get("why", "")
        pytest.skip(f"{path}: the driver is not installed in the test environment: {why}")
    assert r.status == 200, (path, r.status, r.body[:500])
    return json.loads(r.body)["ran"]


# --------------------------------------------------------------------------- one span per statement

DBAPI = {
    "/sqlite": ("sqlite", "ferrotel.sqlite3", ":memory:"),
    "/psycopg": ("postgresql", "ferrotel.psycopg", "ferrotel"),
    "/psycopg2": ("postgresql", "ferrotel.psycopg2", "ferrotel"),
    "/pymysql": ("mariadb", "ferrotel.pymysql", "ferrotel"),
    "/mysqlclient": ("mariadb", "ferrotel.mysqlclient", "ferrotel"),
}


@pytest.mark.parametrize("path", list(DBAPI))
def test_every_statement_is_one_child_span(flask_run, path):
    statements = ran(flask_run, path)
    system, scope, namespace = DBAPI[path]
    children = flask_run.children(path)
    assert children, flask_run.spans
    assert all(is_db(s) for s in children), [s["name"] for s in children]
    assert len(children) == len(statements), ([s["name"] for s in children], statements)
    for s in children:
        a = s["attributes"]
        assert s["scope_name"] == scope
        assert a["db.system.name"] == system
        assert a["db.namespace"] == namespace
        if system != "sqlite":
            assert a["server.address"] == "127.0.0.1" and isinstance(a["server.port"], int)
        assert s["name"] == a.get("db.query.summary", s["name"])


@pytest.mark.parametrize("path", list(DBAPI))
def test_statement_attributes(flask_run, path):
    ran(flask_run, path)
    by_summary = {s["attributes"].get("db.query.summary"): s for s in flask_run.children(path)}
    table = {"/sqlite": "items", "/psycopg": "items_pg3", "/psycopg2": "items_pg2", "/pymysql": "items_pymysql", "/mysqlclient": "items_mysqlclient"}[path]
    select = by_summary[f"SELECT {table}"]
    a = select["attributes"]
    assert a["db.operation.name"] == "SELECT"
    assert a["db.collection.name"] == table
    assert select["name"] == f"SELECT {table}"
    # The literal query's text is sanitised; the parameterised one is kept as written.
    texts = [s["attributes"]["db.query.text"] for s in flask_run.children(path) if "SELECT id" in s["attributes"].get("db.query.text", "")]
    assert any("name = ?" in t and "id = ?" in t for t in texts), texts
    placeholder = "?" if path == "/sqlite" else "%s"
    assert f"SELECT id FROM {table} WHERE name = {placeholder}" in texts, texts


@pytest.mark.parametrize("path", list(DBAPI))
def test_executemany_is_one_batch_span(flask_run, path):
    ran(flask_run, path)
    batches = [s for s in flask_run.children(path) if "db.operation.batch.size" in s["attributes"]]
    assert len(batches) == 1, [s["name"] for s in flask_run.children(path)]
    a = batches[0]["attributes"]
    assert a["db.operation.batch.size"] == 3
    assert a["db.operation.name"] == "BATCH INSERT"


@pytest.mark.parametrize("path", list(DBAPI))
def test_failed_statement(flask_run, path):
    ran(flask_run, path)
    failed = [s for s in flask_run.children(path) if s["status_code"] == STATUS_ERROR]
    assert len(failed) == 1, [(s["name"], s["status_code"]) for s in flask_run.children(path)]
    a = failed[0]["attributes"]
    code = {"sqlite": "1", "postgresql": "42P01", "mariadb": "1146"}[DBAPI[path][0]]
    assert a["db.response.status_code"] == code
    assert a["error.type"] == code
    assert [e["name"] for e in failed[0]["events"]] == ["exception"]
    # The app caught its own exception unchanged (the route went on and answered 200).
    assert "error" in ran(flask_run, path)


def test_connection_level_shortcuts(flask_run):
    for path in ("/sqlite", "/psycopg"):
        assert "shortcut" in ran(flask_run, path)
        counts = [s for s in flask_run.children(path) if s["attributes"].get("db.query.summary", "").startswith("SELECT") and "count" in s["attributes"].get("db.query.text", "")]
        assert len(counts) == 1, path


def test_psycopg2_extra_cursor_classes_are_traced(flask_run):
    assert "dictcursor" in ran(flask_run, "/psycopg2")
    assert any(s["attributes"].get("db.query.text") == "SELECT ? AS one" for s in flask_run.children("/psycopg2"))


# --------------------------------------------------------------------------- SQLAlchemy over hooked drivers


@pytest.mark.parametrize("kind,scope", [("sqlite", "ferrotel.sqlite3"), ("psycopg", "ferrotel.psycopg")])
def test_sqlalchemy_gives_one_span_per_statement(flask_run, kind, scope):
    path = f"/sqlalchemy/{kind}"
    ran(flask_run, path)
    children = flask_run.children(path)
    assert children and all(is_db(s) for s in children)
    assert {s["scope_name"] for s in children} == {scope}, "the driver's hook makes the span, SQLAlchemy adds none"
    ours = [s for s in children if "sa_items" in s["attributes"].get("db.query.text", "")]
    assert Counter(s["attributes"]["db.operation.name"] for s in ours) == Counter({"DROP": 1, "CREATE": 1, "INSERT": 1, "SELECT": 1})


# --------------------------------------------------------------------------- redis


def test_redis_commands_and_pipeline(flask_run, redis_server):
    ran(flask_run, "/redis")
    children = flask_run.children("/redis")
    # redis-py sends INCR as INCRBY.
    assert [s["name"] for s in children] == ["SET", "GET", "MULTI", "INCRBY"], [s["name"] for s in children]
    set_span, get_span, pipe, failed = children
    a = set_span["attributes"]
    assert a["db.system.name"] == "redis" and a["db.namespace"] == "0" and a["db.operation.name"] == "SET"
    assert a["db.query.text"] == "SET ? ?"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == redis_server.port
    assert pipe["attributes"]["db.operation.batch.size"] == 3
    assert pipe["attributes"]["db.query.text"] == "SET ? ?\nINCRBY ? ?\nGET ?"
    # redis-py drops the "ERR" prefix of this reply: the exception's type is all there is.
    assert failed["status_code"] == STATUS_ERROR and failed["attributes"]["error.type"] == "redis.exceptions.ResponseError"


# --------------------------------------------------------------------------- context follows work to threads


def test_thread_and_executor_statements_are_children(flask_run):
    ran(flask_run, "/threads")
    children = flask_run.children("/threads")
    assert len(children) == 3, [s["name"] for s in children]
    assert all(s["scope_name"] == "ferrotel.sqlite3" for s in children)


# --------------------------------------------------------------------------- nothing sensitive leaves


def test_no_secret_literal_or_parameter_is_exported(flask_run):
    assert flask_run.payloads
    for secret in SECRETS:
        assert not any(secret in body for body in flask_run.payloads), secret


# --------------------------------------------------------------------------- the metric


def test_operation_duration_counts_every_statement(flask_run):
    durations = [m for m in flask_run.metrics if m["name"] == "db.client.operation.duration"]
    assert durations, [m["name"] for m in flask_run.metrics]
    last = durations[-1]
    assert last["unit"] == "s" and last["type"] == "histogram"
    assert last["data_points"][0]["explicit_bounds"] == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
    db_spans = [s for s in flask_run.spans if is_db(s)]
    assert sum(dp["count"] for dp in last["data_points"]) == len(db_spans)
    systems = {dp["attributes"]["db.system.name"] for dp in last["data_points"]}
    assert {"sqlite", "postgresql", "mariadb", "redis"} <= systems
    http = [m for m in flask_run.metrics if m["name"] == "http.server.request.duration"][-1]
    assert sum(dp["count"] for dp in http["data_points"]) == len(ROUTES), "database spans are not HTTP requests"


def test_prometheus_counts_statements_across_three_workers(dist_dir, tmp_path, receiver):
    launcher = GunicornLauncher(tmp_path)
    port = free_port()
    try:
        install = install_like_operator(dist_dir, tmp_path)
        env = operator_env(install, receiver.endpoint("http/protobuf"), extra={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)})
        app = launcher.start(env, app_dir=APP_DIR, app="app:app", workers=3)
        app.wait_for_workers(3)
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: http_get(app.port, "/threads"), range(30)))
        assert all(r.status == 200 for r in responses)
        deadline, count = time.monotonic() + 20, None
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                fams = {f.name: f for f in text_string_to_metric_families(text)}
                fam = fams.get("db_client_operation_duration_seconds")
                count = sum(s.value for s in fam.samples if s.name.endswith("_count")) if fam else None
                if count == 90:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert count == 90, count
        pids = {json.loads(http_get(app.port, "/pid").body)["pid"] for _ in range(12)}
        assert app.stop() == 0
    finally:
        launcher.kill_all()
    assert pids, "served"


# --------------------------------------------------------------------------- async drivers under uvicorn workers


@pytest.fixture(scope="module")
def asgi_run(dist_dir, module_receiver, postgres_server, mariadb_server, redis_server, tmp_path_factory) -> Run:
    workdir = tmp_path_factory.mktemp("db-asgi")
    receiver = module_receiver
    receiver.clear()
    launcher = ServerLauncher(workdir)
    try:
        install = install_like_operator(dist_dir, workdir)
        env = operator_env(install, receiver.endpoint("http/protobuf"), extra=db_env(postgres_server, mariadb_server, redis_server))
        app = launcher.start(GunicornUvicornApp, env, app_dir=APP_DIR, app="asgi_app:app", workers=2)
        # The first statement of each worker creates its pool (asyncpg's own set-up queries run
        # in that request): warm both workers up first.
        for _ in range(6):
            http_get(app.port, "/asyncpg-warmup")
        paths = [f"/asyncpg/{n}" for n in range(8)] + [f"/psycopg-async/{n}" for n in range(4)] + [f"/redis-async/{n}" for n in range(4)] + ["/asyncpg-error", "/sync-drivers", "/task/1", "/task/2"]
        with ThreadPoolExecutor(8) as pool:
            responses = dict(zip(paths, pool.map(lambda p: http_get(app.port, p), paths)))
        receiver.wait_for_spans(len(paths) + 6, timeout=20, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
        assert app.stop() == 0, app.log_text()
        return Run(responses, receiver.spans(), receiver.metrics(), receiver.raw_payloads(), app.log_text())
    finally:
        launcher.kill_all()


def test_asyncpg_concurrent_requests_each_get_their_own_queries(asgi_run):
    for n in range(8):
        path = f"/asyncpg/{n}"
        assert asgi_run.responses[path].status == 200
        children = asgi_run.children(path)
        assert {s["scope_name"] for s in children} == {"ferrotel.asyncpg"}
        # The request's two statements (the pool's own reset on release may add one more).
        ours = [s for s in children if "$1" in s["attributes"].get("db.query.text", "")]
        assert [s["attributes"]["db.query.text"] for s in ours] == ["SELECT $1::int + ?", "SELECT pg_sleep(?), $1::int"], (path, [s["name"] for s in children])
        assert {s["attributes"]["db.system.name"] for s in children} == {"postgresql"}
        assert all(s["attributes"]["db.namespace"] == "ferrotel" for s in children)


def test_asyncio_tasks_are_children_of_the_request(asgi_run):
    for path in ("/task/1", "/task/2"):
        ours = [s for s in asgi_run.children(path) if s["attributes"].get("db.query.text") == "SELECT $1::int * ?"]
        assert len(ours) == 2, path


def test_async_drivers_export_no_parameter(asgi_run):
    # The markers n were sent as parameters only; the statements' texts hold placeholders.
    texts = [s["attributes"].get("db.query.text", "") for s in asgi_run.spans if is_db(s)]
    assert texts and not any(any(ch.isdigit() for ch in t.replace("$1", "")) for t in texts if "$1" in t), texts


def test_asyncpg_error(asgi_run):
    failed = [s for s in asgi_run.children("/asyncpg-error") if s["status_code"] == STATUS_ERROR]
    assert len(failed) == 1
    assert failed[0]["attributes"]["db.response.status_code"] == "42P01"
    assert failed[0]["name"] == "SELECT ferrotel_no_such_table"


def test_psycopg_async(asgi_run):
    for n in range(4):
        children = asgi_run.children(f"/psycopg-async/{n}")
        assert [s["scope_name"] for s in children] == ["ferrotel.psycopg"] * 2, [s["name"] for s in children]
        assert children[0]["attributes"]["db.query.text"] == "SELECT %s::int"


def test_sync_drivers_in_fastapi_thread_pool(asgi_run):
    r = asgi_run.responses["/sync-drivers"]
    assert r.status == 200, r.body[:500]
    expected = set(json.loads(r.body)["ran"])
    scopes = Counter(s["scope_name"] for s in asgi_run.children("/sync-drivers"))
    assert expected <= set(scopes), scopes
    ours = [s for s in asgi_run.children("/sync-drivers") if s["scope_name"] == "ferrotel.sqlite3" and s["attributes"]["db.query.text"] == "SELECT ?"]
    assert len(ours) == 2, "sqlite3 directly and under SQLAlchemy, one span each"


def test_redis_asyncio(asgi_run):
    for n in range(4):
        children = asgi_run.children(f"/redis-async/{n}")
        assert [s["name"] for s in children] == ["SET", "MULTI"], [s["name"] for s in children]
        assert children[1]["attributes"]["db.operation.batch.size"] == 2
