"""End-to-end: the unmodified FastAPI app (tests/app_fastapi) under uvicorn, instrumented the
OpenTelemetry Operator's way, exporting over OTLP to the suite's receiver.

One module-scoped run: start uvicorn, send every request of SCENARIO (plus concurrent context
checks and two fan-out requests), wait for the spans, SIGTERM; the tests assert on what arrived.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from support.asgi_servers import FASTAPI_DIR, ServerLauncher, UvicornApp
from support.http_client import USER_AGENT, http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET

MS = 1_000_000
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# key -> (target, headers); every target has its own url.path.
SCENARIO = {
    "root": ("/", {}),
    "item": ("/api/items/42?q=x", {}),
    "sync": ("/api/sync/7", {}),
    "http_404": ("/api/missing/3", {}),
    "http_503": ("/api/unavailable", {}),
    "error": ("/error", {}),
    "not_found": ("/nope", {}),
    "stream": ("/stream", {}),
    "sub": ("/sub/things/abc", {}),
    "star": ("/star/hello/bob", {}),
    "deep": ("/star/deep/x/5", {}),
    "traceparent": ("/api/items/43", {"traceparent": TRACEPARENT}),
}
CONCURRENT = [f"/ctx/{n}" for n in range(100, 108)]
ROUTES = {
    "root": "/",
    "item": "/api/items/{item_id}",
    "sync": "/api/sync/{n}",
    "http_404": "/api/missing/{n}",
    "http_503": "/api/unavailable",
    "error": "/error",
    "stream": "/stream",
    "sub": "/sub/things/{thing_id}",
    "star": "/star/hello/{name}",
    "deep": "/star/deep/x/{k}",
}


def path_of(target: str) -> str:
    return target.split("?", 1)[0]


@dataclass
class Run:
    port: int
    pid: int
    responses: dict
    concurrent: dict
    spans: list = field(default_factory=list)
    exit_code: int = 0
    log: str = ""

    def servers(self, path: str) -> list:
        return [s for s in self.spans if s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("url.path") == path]

    def server(self, key_or_path: str) -> dict:
        path = path_of(SCENARIO[key_or_path][0]) if key_or_path in SCENARIO else key_or_path
        found = self.servers(path)
        assert len(found) == 1, f"expected one SERVER span for {path}, got {len(found)}"
        return found[0]

    def children(self, span: dict) -> list:
        return [s for s in self.spans if s["parent_span_id"] == span["span_id"] and s["trace_id"] == span["trace_id"]]


@pytest.fixture(scope="module")
def run(dist_dir, module_receiver, tmp_path_factory) -> Run:
    workdir = tmp_path_factory.mktemp("asgi-fastapi")
    launcher = ServerLauncher(workdir)
    module_receiver.clear()
    try:
        install = install_like_operator(dist_dir, workdir)
        env = operator_env(install, module_receiver.endpoint("http/protobuf"))
        app = launcher.start(UvicornApp, env, app_dir=FASTAPI_DIR, app="app:app")
        responses = {key: http_get(app.port, target, headers) for key, (target, headers) in SCENARIO.items()}
        with ThreadPoolExecutor(len(CONCURRENT)) as pool:
            concurrent = dict(zip(CONCURRENT, pool.map(lambda t: http_get(app.port, t), CONCURRENT)))
        responses["gather_manual"] = http_get(app.port, f"/gather?port={app.port}&base=1000&manual=1")
        responses["gather"] = http_get(app.port, f"/gather?port={app.port}&base=2000")
        expected = len(SCENARIO) + len(CONCURRENT) + 2 + 4  # + the four downstream requests
        server_kind = lambda s: s["kind"] == SPAN_KIND_SERVER  # noqa: E731
        try:
            module_receiver.wait_for_spans(expected, timeout=15, predicate=server_kind)
        except AssertionError:
            pass  # the tests below say what is missing
        result = Run(port=app.port, pid=app.pid, responses=responses, concurrent=concurrent)
        result.exit_code = app.stop()
        result.spans = module_receiver.spans()
        result.log = app.log_text()
        return result
    except Exception as exc:
        logs = "\n".join(f"--- {title}\n{text}" for title, text in launcher.failure_sections())
        raise RuntimeError(f"FastAPI scenario failed: {exc!r}\n{logs}\n{module_receiver.summary()}") from exc
    finally:
        launcher.kill_all()


def test_responses_unchanged(run):
    r = run.responses
    assert (r["root"].status, r["root"].body) == (200, b"hello")
    assert (r["item"].status, json.loads(r["item"].body)) == (200, {"item_id": 42, "q": "x"})
    assert r["http_404"].status == 404 and json.loads(r["http_404"].body) == {"detail": "no such item"}
    assert r["http_503"].status == 503
    assert r["error"].status == 500
    assert r["not_found"].status == 404
    assert (r["stream"].status, r["stream"].body) == (200, b"chunk0\nchunk1\nchunk2\n")
    assert json.loads(r["sub"].body) == {"thing_id": "abc"}
    assert r["star"].body == b"hi bob" and r["deep"].body == b"deep 5"
    assert json.loads(r["gather_manual"].body) == {"codes": [200, 200]}
    assert json.loads(r["gather"].body) == {"codes": [200, 200]}
    assert all(resp.status == 200 for resp in run.concurrent.values())
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit status -15) since 0.29.
    assert run.exit_code in (0, -15) and "Finished server process" in run.log, run.log


def test_one_server_span_per_request_and_nothing_else(run):
    requested = [path_of(t) for t, _ in SCENARIO.values()] + CONCURRENT + ["/gather", "/gather"]
    requested += [f"/api/items/{n}" for n in (1001, 1002, 2001, 2002)]
    servers = [s for s in run.spans if s["kind"] == SPAN_KIND_SERVER]
    assert sorted(s["attributes"]["url.path"] for s in servers) == sorted(requested)
    # No spans for ASGI receive/send events, lifespan or anything else of the agent's own.
    ours = [s for s in run.spans if s["scope_name"].startswith("ferrotel") and s["kind"] != SPAN_KIND_CLIENT]
    assert all(s["kind"] == SPAN_KIND_SERVER or s["scope_name"] == "ferrotel" for s in ours)
    assert not [s for s in run.spans if "send" in s["name"] or "receive" in s["name"]]
    assert {s["resource"]["process.pid"] for s in servers} == {run.pid}


@pytest.mark.parametrize("key", sorted(ROUTES))
def test_span_name_and_route(run, key):
    span = run.server(key)
    assert span["attributes"]["http.route"] == ROUTES[key]
    assert span["name"] == f"GET {ROUTES[key]}"


def test_attributes(run):
    span = run.server("item")
    expected = {
        "http.request.method": "GET",
        "url.path": "/api/items/42",
        "url.query": "q=x",
        "url.scheme": "http",
        "http.route": "/api/items/{item_id}",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": run.port,
        "client.address": "127.0.0.1",
        "user_agent.original": USER_AGENT,
        "network.protocol.version": "1.1",
    }
    assert {k: span["attributes"].get(k) for k in expected} == expected
    assert span["status_code"] == STATUS_UNSET
    assert span["parent_span_id"] == ""
    assert span["scope_name"].startswith("ferrotel.")
    assert "url.query" not in run.server("root")["attributes"]


def test_4xx_is_not_an_error(run):
    for key in ("http_404", "not_found"):
        span = run.server(key)
        assert span["attributes"]["http.response.status_code"] == 404
        assert span["status_code"] == STATUS_UNSET
        assert "error.type" not in span["attributes"]
        assert not span["events"]
    unrouted = run.server("not_found")
    assert unrouted["name"] == "GET" and "http.route" not in unrouted["attributes"]


def test_5xx_without_exception_is_an_error(run):
    span = run.server("http_503")
    assert span["attributes"]["http.response.status_code"] == 503
    assert span["status_code"] == STATUS_ERROR
    assert span["attributes"]["error.type"] == "503"
    assert not [e for e in span["events"] if e["name"] == "exception"]


def test_unhandled_exception(run):
    span = run.server("error")
    assert span["status_code"] == STATUS_ERROR
    assert span["attributes"]["http.response.status_code"] == 500
    assert span["attributes"]["error.type"] == "ValueError"
    [event] = [e for e in span["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "boom"
    assert "Traceback" in event["attributes"]["exception.stacktrace"]


def test_streamed_response_timed_to_last_chunk(run):
    span = run.server("stream")
    assert span["end_ns"] - span["start_ns"] >= 100 * MS  # two 50 ms pauses between chunks


def test_incoming_traceparent_continues_the_trace(run):
    span = run.server("traceparent")
    assert span["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span["parent_span_id"] == "00f067aa0ba902b7"


def test_sync_endpoint_in_thread_pool_sees_the_span(run):
    server = run.server("sync")
    body = json.loads(run.responses["sync"].body)
    assert body["thread"] != "MainThread"  # FastAPI ran it in its thread pool
    [child] = run.children(server)
    assert child["name"] == "sync-child" and child["kind"] == SPAN_KIND_INTERNAL
    assert body["span"]["current"] == server["span_id"]


def test_context_across_awaits_and_tasks_of_concurrent_requests(run):
    """Eight requests in flight together on one event loop: each sees only its own span."""
    for target, response in run.concurrent.items():
        server = run.server(target)
        body = json.loads(response.body)
        children = {c["name"]: c for c in run.children(server)}
        assert set(children) == {"before-await", "after-await", "in-task"}, target
        for name in ("before", "after", "task"):
            assert body[name]["current"] == server["span_id"], (target, name)
            assert body[name]["trace_id"] == server["trace_id"]
    assert len({run.server(t)["trace_id"] for t in CONCURRENT}) == len(CONCURRENT)


def _check_fanout(run, base: int, client_spans: list):
    gather = [s for s in run.servers("/gather") if s["trace_id"] == client_spans[0]["trace_id"]]
    assert len(gather) == 1
    gather = gather[0]
    assert len(client_spans) == 2
    assert {c["parent_span_id"] for c in client_spans} == {gather["span_id"]}
    assert len({c["span_id"] for c in client_spans}) == 2
    downstream = [run.server(f"/api/items/{base + i}") for i in (1, 2)]
    assert {d["parent_span_id"] for d in downstream} == {c["span_id"] for c in client_spans}
    assert {d["trace_id"] for d in downstream} == {gather["trace_id"]}


def test_concurrent_outgoing_calls_each_parented_to_the_request(run):
    """asyncio.gather of two httpx.AsyncClient calls, each opening its CLIENT span (ferrotel's
    span API, made current in its own task) and sending its traceparent."""
    manual = [s for s in run.spans if s["scope_name"] == "app_fastapi.manual_client"]
    _check_fanout(run, 1000, manual)
    # An httpx hook in the build adds its CLIENT span under each task's current (manual) span,
    # and keeps the traceparent the app set itself.
    hooked = [s for s in run.spans if s["kind"] == SPAN_KIND_CLIENT and s["parent_span_id"] in {m["span_id"] for m in manual}]
    assert {h["parent_span_id"] for h in hooked} in (set(), {m["span_id"] for m in manual})


def test_concurrent_httpx_calls_with_the_client_hook(run):
    gather = [s for s in run.servers("/gather")]
    downstream_traces = {run.server(f"/api/items/{2000 + i}")["trace_id"] for i in (1, 2)}
    [auto] = [g for g in gather if g["trace_id"] in downstream_traces]
    clients = [s for s in run.children(auto) if s["kind"] == SPAN_KIND_CLIENT]
    _check_fanout(run, 2000, clients)


def test_low_ratio_light_records_metrics_exact_errors_whole(dist_dir, receiver, tmp_path):
    """`parentbased_traceidratio` 0.01 with metrics on: a dropped FastAPI request is recorded light
    (only what the metrics read), yet every request is counted by route and status; the errors
    and slow requests keep-errors-and-slow exports carry every request attribute (filled in when
    they end), and a streamed response's span is timed to its last body chunk, as a sampled one."""
    launcher = ServerLauncher(tmp_path)
    try:
        install = install_like_operator(dist_dir, tmp_path)
        env = operator_env(install, receiver.endpoint("http/protobuf"), extra={
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01",
            "OTEL_METRICS_EXPORTER": "otlp", "FERROTEL_SLOW_ROUTES": "/stream=80"})
        app = launcher.start(UvicornApp, env, app_dir=FASTAPI_DIR, app="app:app")
        items, errors, streams = 150, 4, 3
        for i in range(items):
            assert http_get(app.port, f"/api/items/{i}").status == 200
        for _ in range(errors):
            assert http_get(app.port, "/error?x=1").status == 500
        for _ in range(streams):  # two 50 ms pauses between its chunks: slow for its 80 ms bar
            assert http_get(app.port, "/stream").status == 200
        assert app.stop() in (0, -15), app.log_text()  # uvicorn re-raises SIGTERM since 0.29
    finally:
        launcher.kill_all()
    duration = [m for m in receiver.metrics() if m["name"] == "http.server.request.duration"][-1]
    by_route: dict = {}
    for dp in duration["data_points"]:
        key = (dp["attributes"].get("http.route"), dp["attributes"].get("http.response.status_code"))
        by_route[key] = by_route.get(key, 0) + dp["count"]
    assert by_route == {("/api/items/{item_id}", 200): items, ("/error", 500): errors, ("/stream", 200): streams}
    server = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_SERVER]
    errored = [s for s in server if s["attributes"].get("http.route") == "/error"]
    assert len(errored) == errors  # kept: errors
    streamed = [s for s in server if s["attributes"].get("http.route") == "/stream"]
    assert len(streamed) == streams  # kept: slow
    for s in streamed:
        assert s["attributes"]["url.path"] == "/stream" and s["attributes"]["http.response.status_code"] == 200
        assert s["end_ns"] - s["start_ns"] >= 80_000_000
    assert len(server) - len(errored) - len(streamed) < items // 2  # the rest follow the ratio
    for s in errored:
        a = s["attributes"]
        assert a["url.path"] == "/error" and a["url.query"] == "x=1"
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == app.port
        assert a["client.address"] == "127.0.0.1" and a["user_agent.original"] == USER_AGENT
        assert a["http.request.method"] == "GET" and a["url.scheme"] == "http" and a["network.protocol.version"] == "1.1"
