"""End-to-end: Django (tests/app_django) injected the Operator's way, exporting over OTLP.

- WSGI under gunicorn, settings module importable only after the server starts
  (`gunicorn --chdir tests/app_django mysite.wsgi:application`, DJANGO_SETTINGS_MODULE set, the
  directory not on PYTHONPATH);
- a one-file app that calls `settings.configure()` itself (`gunicorn single:application`);
- ASGI Django under uvicorn (`uvicorn --app-dir tests/app_django mysite.asgi:application`).

Routes are Django's resolver routes with a leading slash: `/api/items/<int:item_id>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from support.asgi_servers import DJANGO_DIR, ServerLauncher, UvicornApp
from support.http_client import USER_AGENT, http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET
from support.processes import GunicornApp

MS = 1_000_000
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DJANGO_500_PAGE = b"<h1>Server Error (500)</h1>"

PROJECT = {
    "root": ("/", {}),
    "item": ("/api/items/7?q=1", {}),
    "legacy": ("/legacy/2024/", {}),
    "error": ("/error", {}),
    "missing": ("/missing", {}),
    "not_found": ("/nope", {}),
    "stream": ("/stream", {}),
    "ctx": ("/ctx", {}),
    "traceparent": ("/api/items/8", {"traceparent": TRACEPARENT}),
}
ROUTES = {
    "root": "/",
    "item": "/api/items/<int:item_id>",
    "legacy": "/legacy/(?P<year>[0-9]{4})/",
    "error": "/error",
    "missing": "/missing",
    "stream": "/stream",
    "ctx": "/ctx",
}


@dataclass
class DjangoRun:
    kind: str
    port: int
    responses: dict
    spans: list
    log: str

    def server(self, key: str) -> dict:
        path = PROJECT[key][0].split("?")[0]
        found = [s for s in self.spans if s["kind"] == SPAN_KIND_SERVER and s["attributes"]["url.path"] == path]
        assert len(found) == 1, f"[{self.kind}] expected one SERVER span for {path}, got {len(found)}\n{self.log}"
        return found[0]


def serve(launcher, cls, env, receiver, requests: dict, **kwargs):
    receiver.clear()
    app = launcher.start(cls, env, **kwargs)
    responses = {key: http_get(app.port, target, headers) for key, (target, headers) in requests.items()}
    try:
        receiver.wait_for_spans(len(requests), timeout=15, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
    except AssertionError:
        pass  # the tests say what is missing
    app.stop()
    return app, responses, receiver.spans()


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def project(request, dist_dir, module_receiver, tmp_path_factory) -> DjangoRun:
    workdir = tmp_path_factory.mktemp("django-" + request.param)
    launcher = ServerLauncher(workdir)
    try:
        install = install_like_operator(dist_dir, workdir)
        env = operator_env(install, module_receiver.endpoint("http/protobuf"), extra={"DJANGO_SETTINGS_MODULE": "mysite.settings"})
        if request.param == "wsgi":
            app, responses, spans = serve(launcher, GunicornApp, env, module_receiver, PROJECT, app_dir=DJANGO_DIR, app="mysite.wsgi:application")
        else:
            app, responses, spans = serve(launcher, UvicornApp, env, module_receiver, PROJECT, app_dir=DJANGO_DIR, app="mysite.asgi:application")
        return DjangoRun(request.param, app.port, responses, spans, app.log_text())
    finally:
        launcher.kill_all()


def test_settings_importable_only_after_start(dist_dir, tmp_path):
    """The layout under test: at interpreter start-up the settings module cannot be imported."""
    from support.processes import run_python

    install = install_like_operator(dist_dir, tmp_path)
    env = operator_env(install, "http://127.0.0.1:9", extra={"DJANGO_SETTINGS_MODULE": "mysite.settings"})
    result = run_python("import importlib.util, sys; print(importlib.util.find_spec('mysite'))", env)
    assert result.stdout.strip() == "None", result


def test_app_boots_and_answers(project):
    r = project.responses
    assert (r["root"].status, r["root"].body) == (200, b"hello")
    assert json.loads(r["item"].body) == {"item_id": 7}
    assert json.loads(r["legacy"].body) == {"year": "2024"}
    assert r["missing"].status == 404 and r["not_found"].status == 404
    assert (r["stream"].status, r["stream"].body) == (200, b"chunk0\nchunk1\nchunk2\n")
    # Django's own exception handling is untouched: the client gets Django's 500 page.
    assert r["error"].status == 500 and DJANGO_500_PAGE in r["error"].body


def test_one_span_per_request(project):
    paths = sorted(s["attributes"]["url.path"] for s in project.spans if s["kind"] == SPAN_KIND_SERVER)
    assert paths == sorted(t.split("?")[0] for t, _ in PROJECT.values())


@pytest.mark.parametrize("key", sorted(ROUTES))
def test_resolver_route(project, key):
    span = project.server(key)
    assert span["attributes"]["http.route"] == ROUTES[key]
    assert span["name"] == "GET " + ROUTES[key]


def test_attributes(project):
    span = project.server("item")
    expected = {
        "http.request.method": "GET",
        "url.path": "/api/items/7",
        "url.query": "q=1",
        "url.scheme": "http",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": project.port,
        "client.address": "127.0.0.1",
        "user_agent.original": USER_AGENT,
        "network.protocol.version": "1.1",
    }
    assert {k: span["attributes"].get(k) for k in expected} == expected
    assert span["scope_name"] == {"wsgi": "ferrotel.django", "asgi": "ferrotel.asgi"}[project.kind]


def test_status_rules(project):
    for key in ("missing", "not_found"):
        span = project.server(key)
        assert span["attributes"]["http.response.status_code"] == 404
        assert span["status_code"] == STATUS_UNSET and not span["events"]
    assert project.server("not_found")["name"] == "GET"
    error = project.server("error")
    assert error["status_code"] == STATUS_ERROR
    assert error["attributes"]["http.response.status_code"] == 500
    assert error["attributes"]["error.type"] == "ValueError"
    [event] = [e for e in error["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.message"] == "boom"


def test_stream_timed_to_last_chunk(project):
    span = project.server("stream")
    assert span["end_ns"] - span["start_ns"] >= 100 * MS


def test_span_current_in_view_and_traceparent(project):
    body = json.loads(project.responses["ctx"].body)
    span = project.server("ctx")
    assert (body["span_id"], body["trace_id"]) == (span["span_id"], span["trace_id"])
    continued = project.server("traceparent")
    assert continued["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert continued["parent_span_id"] == "00f067aa0ba902b7"


def test_one_file_app_configuring_its_own_settings(dist_dir, receiver, tmp_path):
    launcher = ServerLauncher(tmp_path)
    try:
        install = install_like_operator(dist_dir, tmp_path)
        env = operator_env(install, receiver.endpoint("http/protobuf"))
        requests = {"hello": ("/hello/bob", {}), "error": ("/error", {})}
        app, responses, spans = serve(launcher, GunicornApp, env, receiver, requests, app_dir=DJANGO_DIR, app="single:application")
    finally:
        launcher.kill_all()
    assert (responses["hello"].status, responses["hello"].body) == (200, b"hello bob")
    assert responses["error"].status == 500 and DJANGO_500_PAGE in responses["error"].body
    assert "Settings already configured" not in app.log_text()
    by_path = {s["attributes"]["url.path"]: s for s in spans if s["kind"] == SPAN_KIND_SERVER}
    assert sorted(by_path) == ["/error", "/hello/bob"]
    assert by_path["/hello/bob"]["name"] == "GET /hello/<str:name>"
    assert by_path["/error"]["attributes"]["error.type"] == "KeyError"
