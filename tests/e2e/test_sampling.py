"""Keep errors and slow requests: with `traceidratio` 0.1, every /error and /slow request is
exported, and roughly 10% of the rest (a fixed request count; bounds of about ±3.5 standard
deviations of the binomial)."""

from __future__ import annotations

from support.http_client import http_get
from support.operator import operator_env
from support.otlp_receiver import SPAN_KIND_SERVER

PLAIN, ERRORS, SLOW = 300, 20, 8


def test_ratio_keeps_errors_and_slow(operator_install, receiver, gunicorn):
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1", "FERROTEL_KEEP_ERRORS_AND_SLOW": "true"},
    )
    app = gunicorn.start(env)
    for i in range(PLAIN):
        assert http_get(app.port, f"/users/{i}").status == 200
    for _ in range(ERRORS):
        assert http_get(app.port, "/error").status == 500
    for _ in range(SLOW):
        assert http_get(app.port, "/slow").status == 200
    assert app.stop() == 0, app.log_text()
    spans = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_SERVER]
    by_route = {}
    for s in spans:
        by_route.setdefault(s["attributes"].get("http.route"), []).append(s)
    assert len(by_route.get("/error", [])) == ERRORS
    assert len(by_route.get("/slow", [])) == SLOW
    kept = len(by_route.get("/users/<int:uid>", []))
    # Binomial(300, 0.1): mean 30, standard deviation 5.2.
    assert 12 <= kept <= 48, kept
    # The metrics still count every request, sampled or not.
    duration = [m for m in receiver.metrics() if m["name"] == "http.server.request.duration"][-1]
    assert sum(dp["count"] for dp in duration["data_points"]) == PLAIN + ERRORS + SLOW
    dropped = [m for m in receiver.metrics() if m["name"] == "ferrotel.spans.dropped"][-1]
    sampled_out = {dp["attributes"]["ferrotel.drop.reason"]: dp["value"] for dp in dropped["data_points"]}["sampled_out"]
    assert sampled_out == PLAIN - kept


def test_without_keep_errors_follow_the_ratio(operator_install, receiver, gunicorn):
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0", "FERROTEL_KEEP_ERRORS_AND_SLOW": "false"},
    )
    app = gunicorn.start(env)
    for _ in range(5):
        assert http_get(app.port, "/error").status == 500
    assert app.stop() == 0, app.log_text()
    assert not [s for s in receiver.spans() if s["kind"] == SPAN_KIND_SERVER]
