"""End-to-end: the unmodified Flask app under gunicorn, instrumented exactly as the OpenTelemetry Operator does it.

The main scenario runs once per OTLP protocol (module-scoped `flask_run`): start gunicorn, send every request,
wait for the spans, SIGTERM, then the tests below assert on what the receiver got.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from support.http_client import USER_AGENT, HttpResponse, http_get
from support.operator import RESOURCE_ATTRIBUTES, SERVICE_NAME, clean_env, install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET, Receiver
from support.processes import GunicornLauncher, run_python

PROTOCOLS = ["http/protobuf", "grpc"]
PROTOCOL_IDS = ["http", "grpc"]

VALID_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
MALFORMED_TRACEPARENT = "00-xyz-00f067aa0ba902b7-01"

# request key -> (target, extra headers). Every request has a distinct url.path, which is how spans are matched.
SCENARIO = {
    "root": ("/", {}),
    "users": ("/users/42?x=1", {}),
    "error": ("/error", {}),
    "not_found": ("/nope", {}),
    "stream": ("/stream", {}),
    "slow": ("/slow", {}),
    "traceparent": ("/users/1", {"traceparent": VALID_TRACEPARENT}),
    "bad_traceparent": ("/users/2", {"traceparent": MALFORMED_TRACEPARENT}),
}
MS = 1_000_000


def path_of(target: str) -> str:
    return target.split("?", 1)[0]


def server_span(path: str | None = None):
    """Predicate: a SERVER span, optionally for one url.path."""
    return lambda s: s["kind"] == SPAN_KIND_SERVER and (path is None or s["attributes"].get("url.path") == path)


def assert_valid_ids(span):
    assert re.fullmatch(r"[0-9a-f]{32}", span["trace_id"]) and set(span["trace_id"]) != {"0"}, span
    assert re.fullmatch(r"[0-9a-f]{16}", span["span_id"]) and set(span["span_id"]) != {"0"}, span


@dataclass
class FlaskRun:
    protocol: str
    port: int
    master_pid: int
    worker_pids: list
    responses: dict  # key -> HttpResponse
    spans_before_stop: list
    spans: list
    exit_code: int
    log: str = ""

    def span(self, key: str) -> dict:
        """The single SERVER span of request `key`."""
        path = path_of(SCENARIO[key][0])
        matches = [s for s in self.spans if server_span(path)(s)]
        assert len(matches) == 1, f"expected exactly one SERVER span for {path}, got {len(matches)}"
        return matches[0]

    def failure_sections(self):
        return [(f"gunicorn log [{self.protocol}]", self.log)]


def run_scenario(protocol: str, dist_dir, receiver: Receiver, workdir) -> FlaskRun:
    """Start the operator-instrumented app, send SCENARIO, wait for the spans, SIGTERM it; return what happened."""
    receiver.clear()
    launcher = GunicornLauncher(workdir)
    try:
        install = install_like_operator(dist_dir, workdir)
        app = launcher.start(operator_env(install, receiver.endpoint(protocol), protocol))
        responses = {key: http_get(app.port, target, headers) for key, (target, headers) in SCENARIO.items()}
        worker_pids = app.worker_pids()
        try:  # exported on the BSP schedule, before any shutdown
            receiver.wait_for_spans(len(SCENARIO), timeout=15, predicate=server_span())
        except AssertionError:
            pass  # test_spans_exported_while_running reports it
        spans_before_stop = receiver.spans()
        exit_code = app.stop()
        return FlaskRun(
            protocol=protocol,
            port=app.port,
            master_pid=app.pid,
            worker_pids=worker_pids,
            responses=responses,
            spans_before_stop=spans_before_stop,
            spans=receiver.spans(),
            exit_code=exit_code,
            log=app.log_text(),
        )
    except Exception as exc:
        logs = "\n".join(f"--- {title}\n{text}" for title, text in launcher.failure_sections())
        raise RuntimeError(f"flask scenario [{protocol}] failed: {exc!r}\n{logs}\n{receiver.summary()}") from exc
    finally:
        launcher.kill_all()


@pytest.fixture(scope="module", params=PROTOCOLS, ids=PROTOCOL_IDS)
def flask_run(request, dist_dir, module_receiver, tmp_path_factory) -> FlaskRun:
    workdir = tmp_path_factory.mktemp("flask-" + request.param.replace("/", "-"))
    return run_scenario(request.param, dist_dir, module_receiver, workdir)


# --------------------------------------------------------------------------- responses are unaffected


def test_app_responses_unchanged(flask_run):
    r: dict[str, HttpResponse] = flask_run.responses
    assert (r["root"].status, r["root"].body) == (200, b"hello")
    assert (r["users"].status, json.loads(r["users"].body)) == (200, {"uid": 42})
    assert r["error"].status == 500
    assert r["not_found"].status == 404
    assert (r["stream"].status, r["stream"].body) == (200, b"chunk0\nchunk1\nchunk2\n")
    assert r["slow"].status == 200
    assert r["traceparent"].status == 200
    assert r["bad_traceparent"].status == 200


def test_app_exits_cleanly_on_sigterm(flask_run):
    assert flask_run.exit_code == 0
    assert flask_run.log.count("Booting worker with pid") == 1, "the worker crashed or was restarted"


# --------------------------------------------------------------------------- span content


def test_root_span(flask_run):
    span = flask_run.span("root")
    assert span["name"] == "GET /"
    assert span["kind"] == SPAN_KIND_SERVER
    expected = {
        "http.request.method": "GET",
        "url.path": "/",
        "url.scheme": "http",
        "http.route": "/",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": flask_run.port,
        "client.address": "127.0.0.1",
        "user_agent.original": USER_AGENT,
        "network.protocol.version": "1.1",
    }
    assert {k: span["attributes"].get(k) for k in expected} == expected
    assert type(span["attributes"]["http.response.status_code"]) is int
    assert type(span["attributes"]["server.port"]) is int
    assert "url.query" not in span["attributes"]
    assert span["status_code"] == STATUS_UNSET
    assert span["parent_span_id"] == ""
    assert_valid_ids(span)
    assert 0 < span["start_ns"] <= span["end_ns"]


def test_route_template_and_query(flask_run):
    span = flask_run.span("users")
    assert span["name"] == "GET /users/<int:uid>"
    attrs = span["attributes"]
    assert attrs["http.route"] == "/users/<int:uid>"
    assert attrs["url.path"] == "/users/42"
    assert attrs["url.query"] == "x=1"
    assert attrs["http.response.status_code"] == 200


def test_error_span(flask_run):
    span = flask_run.span("error")
    attrs = span["attributes"]
    assert span["status_code"] == STATUS_ERROR
    assert attrs["http.response.status_code"] == 500
    assert attrs.get("error.type") == "ValueError"
    [event] = [e for e in span["events"] if e["name"] == "exception"]
    assert "ValueError" in event["attributes"]["exception.type"]
    assert event["attributes"]["exception.message"] == "boom"
    stacktrace = event["attributes"]["exception.stacktrace"]
    assert stacktrace and ("Traceback" in stacktrace or "ValueError" in stacktrace)


def test_not_found_span(flask_run):
    span = flask_run.span("not_found")
    assert span["name"] == "GET"
    assert "http.route" not in span["attributes"]
    assert span["attributes"]["http.response.status_code"] == 404
    assert span["status_code"] == STATUS_UNSET  # 4xx is not an error on a SERVER span


def test_stream_span_ends_after_body_sent(flask_run):
    span = flask_run.span("stream")
    # 3 chunks with 50 ms between them: the span must cover the body, not just the view function.
    assert span["end_ns"] - span["start_ns"] >= 100 * MS


def test_slow_span_covers_handler(flask_run):
    span = flask_run.span("slow")
    assert span["end_ns"] - span["start_ns"] >= 150 * MS


def test_valid_traceparent_continues_trace(flask_run):
    span = flask_run.span("traceparent")
    assert span["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span["parent_span_id"] == "00f067aa0ba902b7"
    assert span["span_id"] != "00f067aa0ba902b7"


def test_malformed_traceparent_starts_new_trace(flask_run):
    span = flask_run.span("bad_traceparent")
    assert_valid_ids(span)
    assert span["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span["parent_span_id"] == ""
    assert flask_run.responses["bad_traceparent"].status == 200


def test_one_server_span_per_request(flask_run):
    server_spans = [s for s in flask_run.spans if server_span()(s)]
    paths = sorted(s["attributes"].get("url.path") for s in server_spans)
    assert paths == sorted(path_of(target) for target, _ in SCENARIO.values())
    assert len({s["span_id"] for s in server_spans}) == len(server_spans)


def test_spans_exported_while_running(flask_run):
    # OTEL_BSP_SCHEDULE_DELAY=200: the batch processor exports on its schedule, not only at shutdown.
    assert len([s for s in flask_run.spans_before_stop if server_span()(s)]) == len(SCENARIO)


def test_resource(flask_run):
    assert flask_run.spans
    for span in flask_run.spans:
        res = span["resource"]
        assert res["service.name"] == SERVICE_NAME
        assert res["telemetry.sdk.name"] == "ferrotel"
        assert res["telemetry.sdk.language"] == "python"
        assert isinstance(res.get("telemetry.sdk.version"), str) and res["telemetry.sdk.version"]
        assert type(res.get("process.pid")) is int
        assert res["process.runtime.name"] == "cpython"
        assert isinstance(res.get("process.runtime.version"), str) and res["process.runtime.version"]
        for key, value in RESOURCE_ATTRIBUTES.items():
            assert res.get(key) == value, key


def test_resource_pid_is_the_worker(flask_run):
    # gunicorn forks after sitecustomize ran in the master: the pid must be the serving worker's.
    pids = {s["resource"]["process.pid"] for s in flask_run.spans}
    assert pids and pids <= set(flask_run.worker_pids), (pids, flask_run.master_pid, flask_run.worker_pids)


def test_scope(flask_run):
    assert flask_run.spans
    assert {s["scope_name"] for s in flask_run.spans if server_span()(s)} == {"ferrotel.flask"}


# --------------------------------------------------------------------------- shutdown flush


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_sigterm_flushes_pending_spans(protocol, operator_install, receiver, gunicorn):
    # A schedule delay far beyond the test: only the graceful-shutdown flush can deliver the span.
    env = operator_env(operator_install, receiver.endpoint(protocol), protocol, extra={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    app = gunicorn.start(env)
    assert http_get(app.port, "/").status == 200
    assert app.stop() == 0
    [span] = receiver.wait_for_spans(1, timeout=5, predicate=server_span("/"))
    assert span["name"] == "GET /"


# --------------------------------------------------------------------------- coexistence with the app's environment


def write_app_sitecustomize(directory):
    """An app-owned sitecustomize.py that flags the env and writes the marker file named by $APP_SITECUSTOMIZE_MARKER."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(
        "import os\n"
        'os.environ["APP_SITECUSTOMIZE_RAN"] = "1"\n'
        'with open(os.environ["APP_SITECUSTOMIZE_MARKER"], "w") as f:\n'
        "    f.write(str(os.getpid()))\n"
    )
    return directory


def test_app_sitecustomize_still_runs_under_gunicorn(operator_install, receiver, gunicorn, tmp_path):
    app_site = write_app_sitecustomize(tmp_path / "app-site")
    marker = tmp_path / "marker"
    env = operator_env(
        operator_install, receiver.http_endpoint, app_pythonpath=str(app_site), extra={"APP_SITECUSTOMIZE_MARKER": str(marker)}
    )
    app = gunicorn.start(env)
    assert http_get(app.port, "/").status == 200
    receiver.wait_for_spans(1, predicate=server_span("/"))
    assert app.stop() == 0
    assert marker.exists(), "the app's own sitecustomize.py did not run"


def test_app_sitecustomize_still_runs_plain_python(operator_install, receiver, tmp_path):
    app_site = write_app_sitecustomize(tmp_path / "app-site")
    marker = tmp_path / "marker"
    env = operator_env(
        operator_install, receiver.http_endpoint, app_pythonpath=str(app_site), extra={"APP_SITECUSTOMIZE_MARKER": str(marker)}
    )
    result = run_python("import os, sys; print(os.environ.get('APP_SITECUSTOMIZE_RAN'), 'ferrotel' in sys.modules)", env)
    assert result.returncode == 0, result.stderr
    # both ran: the app's sitecustomize and the agent's bootstrap
    assert result.stdout.split() == ["1", "True"], result.stderr
    assert marker.exists()


def test_import_ferrotel_does_not_import_flask(dist_dir):
    result = run_python("import ferrotel, sys; assert 'flask' not in sys.modules", clean_env(PYTHONPATH=str(dist_dir)))
    assert result.returncode == 0, result.stderr


def test_operator_bootstrap_does_not_import_flask(operator_install, receiver):
    env = operator_env(operator_install, receiver.http_endpoint)
    result = run_python("import sys; print('flask' in sys.modules)", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", result.stderr
