"""The span processing chain end to end (gunicorn, the real OTLP receiver): custom attributes,
slow marking (global and per-route threshold), error enrichment, filtering and redaction — and the
OTLP metrics computed from the same requests."""

from __future__ import annotations

import pytest

from support.http_client import http_get
from support.operator import operator_env
from support.otlp_receiver import SPAN_KIND_SERVER

SECRET = "secret123"
REQUESTS = [
    ("/?token=" + SECRET + "&page=2", {"Authorization": "Bearer " + SECRET, "X-Request-Id": "r-1"}),
    ("/slow", {}),
    ("/error", {}),
    ("/users/1", {}),
    ("/healthz", {}),
]


@pytest.fixture(scope="module")
def run(dist_dir, module_receiver, tmp_path_factory):
    from support.operator import install_like_operator
    from support.processes import GunicornLauncher

    workdir = tmp_path_factory.mktemp("processing")
    launcher = GunicornLauncher(workdir)
    try:
        env = operator_env(
            install_like_operator(dist_dir, workdir),
            module_receiver.http_endpoint,
            extra={
                "FERROTEL_SPAN_ATTRIBUTES": "team=payments,tier=gold",
                "FERROTEL_SLOW_ROUTES": "/users/<int:uid>=0",
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,x-request-id",
            },
        )
        app = launcher.start(env)
        for target, headers in REQUESTS:
            http_get(app.port, target, headers)
        assert app.stop() == 0, app.log_text()
        spans = {s["attributes"]["url.path"]: s for s in module_receiver.spans() if s["kind"] == SPAN_KIND_SERVER}
        return spans, module_receiver, app.log_text()
    finally:
        launcher.kill_all()


def test_custom_attributes_on_every_span(run):
    spans, _, _ = run
    assert spans
    for span in spans.values():
        assert span["attributes"]["team"] == "payments"
        assert span["attributes"]["tier"] == "gold"


def test_slow_flagged_with_threshold(run):
    spans, _, _ = run
    assert spans["/slow"]["attributes"]["ferrotel.slow"] is True
    assert spans["/slow"]["attributes"]["ferrotel.slow_threshold_ms"] == 100
    assert "ferrotel.slow" not in spans["/"]["attributes"]


def test_per_route_slow_threshold(run):
    spans, _, _ = run
    attrs = spans["/users/1"]["attributes"]
    assert attrs["ferrotel.slow"] is True and attrs["ferrotel.slow_threshold_ms"] == 0


def test_error_enriched(run):
    spans, _, _ = run
    attrs = spans["/error"]["attributes"]
    assert attrs["ferrotel.error"] is True
    assert attrs["error.type"] == "ValueError"
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "boom"
    assert attrs["http.route"] == "/error"
    assert attrs["http.response.status_code"] == 500


def test_filtered_route_never_exported(run):
    spans, receiver, _ = run
    assert "/healthz" not in spans
    assert not any(b"/healthz" in body for body in receiver.raw_payloads("traces"))


def test_redacted_values_never_leave_the_process(run):
    spans, receiver, _ = run
    attrs = spans["/"]["attributes"]
    assert attrs["url.query"] == "token=REDACTED&page=2"
    assert attrs["http.request.header.authorization"] == ["REDACTED"]
    assert attrs["http.request.header.x-request-id"] == ["r-1"]
    payloads = receiver.raw_payloads()
    assert payloads
    assert not any(SECRET.encode() in body for body in payloads)


def test_otlp_metrics_count_every_request(run):
    _, receiver, _ = run
    durations = [m for m in receiver.metrics() if m["name"] == "http.server.request.duration"]
    assert durations, receiver.summary()
    last = durations[-1]  # cumulative: the final export at shutdown holds every request
    assert last["unit"] == "s" and last["type"] == "histogram"
    assert sum(dp["count"] for dp in last["data_points"]) == len(REQUESTS), "filtered requests still count"
    routes = {dp["attributes"].get("http.route") for dp in last["data_points"]}
    assert {"/", "/slow", "/error", "/users/<int:uid>"} <= routes
    errors = [m for m in receiver.metrics() if m["name"] == "ferrotel.http.server.error_requests"][-1]
    assert sum(dp["value"] for dp in errors["data_points"]) == 1
    slow = [m for m in receiver.metrics() if m["name"] == "ferrotel.http.server.slow_requests"][-1]
    assert sum(dp["value"] for dp in slow["data_points"]) == 2
    dropped = [m for m in receiver.metrics() if m["name"] == "ferrotel.spans.dropped"][-1]
    by_reason = {dp["attributes"]["ferrotel.drop.reason"]: dp["value"] for dp in dropped["data_points"]}
    assert by_reason["filtered"] == 1
