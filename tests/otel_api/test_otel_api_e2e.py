"""End to end (issue 10): the test app under gunicorn, the agent injected the Operator's way, in app
environments that have opentelemetry-api installed (the newest release and one about two years
older). The app's `/otel` route opens a manual span through the API (attributes, an event, a
recorded exception) and logs inside it; the route reports what the API and `logging` showed it.
Traces and OTLP logs go to the real receiver, over OTLP/HTTP and OTLP/gRPC.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from support.app_venvs import app_venv, run_in, start_gunicorn
from support.http_client import http_get
from support.operator import SERVICE_NAME, install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, Receiver
from support.processes import GunicornLauncher

API_VENVS = ["api-newest", "api-older"]
PROTOCOLS = ["http/protobuf", "grpc"]
LOGGER = "test.app.otel"
SEVERITY_WARN, SEVERITY_ERROR = 13, 17

LOG_EXPORT = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true", "OTEL_BLRP_SCHEDULE_DELAY": "200"}


def wait_for(what, probe, timeout=15.0):
    """`probe()` until it returns something truthy (bounded wait); AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Run:
    venv: str
    protocol: str
    response: dict
    server: dict
    manual: dict
    logs: list
    log_requests: list
    gunicorn_log: str


@pytest.fixture(scope="module", params=[(v, p) for v in API_VENVS for p in PROTOCOLS], ids=lambda vp: f"{vp[0]}-{vp[1].split('/')[0]}")
def run(request, dist_dir, tmp_path_factory):
    venv, protocol = request.param
    bin_dir = app_venv(venv)
    tmp = tmp_path_factory.mktemp(f"otel-{venv}")
    install = install_like_operator(dist_dir, tmp)
    launcher = GunicornLauncher(tmp)
    with Receiver() as rx:
        try:
            env = operator_env(install, rx.endpoint(protocol), protocol, extra=LOG_EXPORT)
            app = start_gunicorn(launcher, bin_dir, env)
            resp = http_get(app.port, "/otel")
            assert resp.status == 200, resp.body
            body = json.loads(resp.body)
            is_server = lambda s: s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("url.path") == "/otel"  # noqa: E731
            server = rx.wait_for_spans(1, predicate=is_server)[0]
            manual = rx.wait_for_spans(1, predicate=lambda s: s["name"] == "manual-work")[0]
            logs = wait_for(
                "the WARN and ERROR log records",
                lambda: (lambda r: r if len(r) >= 2 else None)([r for r in rx.log_records() if r["scope_name"] == LOGGER]),
            )
            app.stop()
            yield Run(venv, protocol, body, server, manual, logs, rx.requests("logs"), app.log_text())
        finally:
            launcher.kill_all()


def test_the_api_sees_the_server_span_as_current(run):
    assert run.response["api"] is True
    assert run.response["server_span"] == {"trace_id": run.server["trace_id"], "span_id": run.server["span_id"]}


def test_the_manual_span_is_a_child_of_the_server_span_with_the_apps_scope(run):
    m, s = run.manual, run.server
    assert m["kind"] == SPAN_KIND_INTERNAL
    assert m["trace_id"] == s["trace_id"]
    assert m["parent_span_id"] == s["span_id"]
    assert (m["scope_name"], m["scope_version"]) == ("test.app.manual", "1.2.3")
    assert m["resource"] == s["resource"], "one pipeline, one resource"
    assert m["attributes"]["work.items"] == 3 and m["attributes"]["work.kind"] == "test"
    assert run.response["manual_span"] == {"trace_id": m["trace_id"], "span_id": m["span_id"]}
    assert s["start_ns"] <= m["start_ns"] <= m["end_ns"] <= s["end_ns"]


def test_events_and_the_recorded_exception_are_exported(run):
    events = {e["name"]: e for e in run.manual["events"]}
    assert events["checkpoint"]["attributes"] == {"step": 1}
    exc = events["exception"]["attributes"]
    assert exc["exception.type"] == "KeyError"
    assert "missing-item" in exc["exception.message"]
    assert "Traceback" in exc["exception.stacktrace"] and "otel_api" in exc["exception.stacktrace"]


def test_propagate_inject_carries_the_manual_span(run):
    assert run.response["traceparent"] == f"00-{run.manual['trace_id']}-{run.manual['span_id']}-01"


def test_log_records_carry_the_upstream_correlation_fields(run):
    assert run.response["log"] == {
        "otelTraceID": run.manual["trace_id"],
        "otelSpanID": run.manual["span_id"],
        "otelTraceSampled": True,
        "otelServiceName": SERVICE_NAME,
    }


def test_otlp_log_records(run):
    by_severity = {r["severity_text"]: r for r in run.logs}
    assert set(by_severity) == {"WARN", "ERROR"}, "the INFO record is below the root logger's level"
    warn, error = by_severity["WARN"], by_severity["ERROR"]
    assert (warn["severity_number"], error["severity_number"]) == (SEVERITY_WARN, SEVERITY_ERROR)
    assert warn["body"] == "manual work done: ok"
    for rec in (warn, error):
        assert (rec["trace_id"], rec["span_id"]) == (run.manual["trace_id"], run.manual["span_id"])
        assert rec["resource"] == run.server["resource"], "the same resource as the spans"
        assert rec["attributes"]["code.function.name"] == "otel_api"
        assert rec["attributes"]["code.file.path"].endswith("app.py")
        assert isinstance(rec["attributes"]["code.line.number"], int)
        assert abs(rec["time_ns"] - run.manual["start_ns"]) < 60 * 10**9
    assert error["attributes"]["exception.type"] == "KeyError"
    assert "missing-item" in error["attributes"]["exception.message"]
    assert "Traceback" in error["attributes"]["exception.stacktrace"]
    assert "exception.type" not in warn["attributes"]
    transport = "grpc" if run.protocol == "grpc" else "http"
    assert {r.transport for r in run.log_requests} == {transport}
    if transport == "http":
        assert {r.path for r in run.log_requests} == {"/v1/logs"}


def test_no_agent_diagnostics(run):
    assert "ferrotel:" not in run.gunicorn_log, run.gunicorn_log


# ---- environments without the API, start-up, an app with its own SDK ------------------------------


def test_without_the_api_nothing_of_it_is_loaded_and_logs_still_correlate(dist_dir, tmp_path, gunicorn, receiver):
    bin_dir = app_venv("noapi")
    install = install_like_operator(dist_dir, tmp_path)
    app = start_gunicorn(gunicorn, bin_dir, operator_env(install, receiver.http_endpoint))
    resp = http_get(app.port, "/otel")
    assert resp.status == 200, resp.body
    body = json.loads(resp.body)
    assert body["api"] is False
    # The route's own failed `from opentelemetry import ...` leaves the bare namespace package
    # behind (the agent tree's opentelemetry/instrumentation/auto_instrumentation directory makes
    # one, as the upstream image's does); nothing else of the API, and no bridge module.
    assert [m for m in body["modules"] if m != "opentelemetry"] == [], body["modules"]
    server = receiver.wait_for_spans(1, predicate=lambda s: s["attributes"].get("url.path") == "/otel")[0]
    assert body["log"] == {
        "otelTraceID": server["trace_id"],
        "otelSpanID": server["span_id"],
        "otelTraceSampled": True,
        "otelServiceName": SERVICE_NAME,
    }


STARTUP_PROBE = """
import json, sys
before = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
import logging, flask
after = sorted(m for m in sys.modules if m.startswith("opentelemetry") or m.startswith("ferrotel.hooks.otel.otel_api"))
print(json.dumps({"agent": "ferrotel._native" in sys.modules, "before": before, "after": after}))
"""


@pytest.mark.parametrize("venv", ["api-newest", "noapi"])
def test_agent_start_up_imports_no_opentelemetry_module(dist_dir, tmp_path, venv):
    bin_dir = app_venv(venv)
    install = install_like_operator(dist_dir, tmp_path)
    env = operator_env(install, "http://127.0.0.1:9", extra={"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"})
    out = run_in(bin_dir, STARTUP_PROBE, env)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"agent": True, "before": [], "after": []}, seen


def test_an_app_with_its_own_sdk_provider_keeps_it(dist_dir, tmp_path, gunicorn, receiver):
    bin_dir = app_venv("sdk")
    install = install_like_operator(dist_dir, tmp_path)
    app = start_gunicorn(gunicorn, bin_dir, operator_env(install, receiver.http_endpoint), app="app_own_sdk:app")
    for _ in range(2):
        resp = http_get(app.port, "/otel")
        assert resp.status == 200, resp.body
    servers = receiver.wait_for_spans(2, predicate=lambda s: s["attributes"].get("url.path") == "/otel")
    manual = receiver.wait_for_spans(2, predicate=lambda s: s["name"] == "manual-work")
    for s in servers:
        assert s["resource"]["telemetry.sdk.name"] == "ferrotel"
    for m in manual:
        assert m["resource"]["telemetry.sdk.name"] == "opentelemetry", "exported by the app's own SDK"
        assert m["scope_name"] == "test.app.manual"
    # The API context still agrees with ferrotel's: the SDK's spans join the request's trace.
    assert {(m["trace_id"], m["parent_span_id"]) for m in manual} == {(s["trace_id"], s["span_id"]) for s in servers}
    app.stop()
    notices = [line for line in app.log_text().splitlines() if "set its own OpenTelemetry tracer provider" in line]
    assert len(notices) == 1, app.log_text()
    assert notices[0].startswith("ferrotel: ")
