"""Keep errors and slow requests: with `traceidratio` 0.1, every /error and /slow request is
exported, and roughly 10% of the rest (a fixed request count; bounds of about ±3.5 standard
deviations of the binomial)."""

from __future__ import annotations

import time

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


def test_low_ratio_records_light_spans_and_metrics_stay_exact(operator_install, receiver, gunicorn):
    """`parentbased_traceidratio` 0.01 with metrics on (OTLP and Prometheus): a dropped request is
    recorded light (only what the metrics read), yet every request is counted on both, with its
    route, status, error and slow flag; the errors and slow requests keep-errors-and-slow exports
    carry every request attribute (filled in when they end); a statement under a dropped request
    is still counted in the database metric."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from support.processes import free_port

    port = free_port()
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
            "OTEL_METRICS_EXPORTER": "otlp,prometheus",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        },
    )
    users, errors, slow, orders, unrouted, not_sampled = 400, 6, 3, 5, 4, 7
    app = gunicorn.start(env)
    for i in range(users):
        assert http_get(app.port, f"/users/{i}").status == 200
    for _ in range(errors):
        assert http_get(app.port, "/error").status == 500
    for _ in range(slow):
        assert http_get(app.port, "/slow").status == 200
    for i in range(orders):
        assert http_get(app.port, f"/orders/{i}").status == 200
    for i in range(unrouted):
        assert http_get(app.port, f"/missing/{i}").status == 404
    # A caller that did not sample: the parent's decision stands, errors or not.
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    for _ in range(not_sampled):
        assert http_get(app.port, "/error", headers={"traceparent": parent}).status == 500
    total = users + errors + slow + orders + unrouted + not_sampled

    def scrape() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            out: dict = {}
            for family in text_string_to_metric_families(resp.read().decode()):
                for s in family.samples:
                    out.setdefault(s.name, []).append((s.labels, s.value))
            return out

    # The endpoint publishes every half second: wait until it has seen every request.
    deadline = time.monotonic() + 20
    prom = scrape()
    while sum(v for _, v in prom.get("http_server_request_duration_seconds_count", [])) < total and time.monotonic() < deadline:
        time.sleep(0.2)
        prom = scrape()
    assert app.stop() == 0, app.log_text()

    # OTLP: the last cumulative point counts every request, by route.
    duration = [m for m in receiver.metrics() if m["name"] == "http.server.request.duration"][-1]
    by_route: dict = {}
    for dp in duration["data_points"]:
        route = dp["attributes"].get("http.route")
        by_route[route] = by_route.get(route, 0) + dp["count"]
    expected = {"/users/<int:uid>": users, "/error": errors + not_sampled, "/slow": slow, "/orders/<int:oid>": orders, None: unrouted}
    assert by_route == expected
    statuses = {dp["attributes"].get("http.response.status_code") for dp in duration["data_points"]}
    assert statuses == {200, 404, 500}
    db = [m for m in receiver.metrics() if m["name"] == "db.client.operation.duration"][-1]
    assert sum(dp["count"] for dp in db["data_points"]) == 2 * orders, "two statements per /orders request"
    assert {dp["attributes"].get("db.operation.name") for dp in db["data_points"]} >= {"SELECT"}
    # Prometheus: the same counts.
    prom_by_route: dict = {}
    for labels, value in prom["http_server_request_duration_seconds_count"]:
        prom_by_route[labels.get("http_route")] = prom_by_route.get(labels.get("http_route"), 0) + value
    assert prom_by_route == expected
    assert [(l["http_route"], v) for l, v in prom["ferrotel_http_server_slow_requests_total"]] == [("/slow", slow)]
    assert sum(v for _, v in prom["ferrotel_http_server_error_requests_total"]) == errors + not_sampled

    # Traces: every local error and slow request, whole; nothing under the unsampled caller.
    server = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_SERVER]
    kept_errors = [s for s in server if s["attributes"].get("http.route") == "/error"]
    assert len(kept_errors) == errors
    assert not [s for s in server if s["trace_id"] == parent.split("-")[1]]
    kept_slow = [s for s in server if s["attributes"].get("http.route") == "/slow"]
    assert len(kept_slow) == slow
    for s in kept_errors + kept_slow:
        a = s["attributes"]
        assert a["url.path"] in ("/error", "/slow") and a["client.address"] == "127.0.0.1", a
        assert a["user_agent.original"] == "ferrotel-test/1.0" and a["server.address"] == "127.0.0.1", a
        assert a["http.request.method"] == "GET" and a["url.scheme"] == "http", a
        assert a["network.protocol.version"] == "1.1", a
    assert all(s["attributes"]["error.type"] == "ValueError" for s in kept_errors)
    assert all(s["attributes"].get("ferrotel.slow") is True for s in kept_slow)
    # Sampled requests (about 1%) are whole too.
    for s in server:
        assert "url.path" in s["attributes"] and "client.address" in s["attributes"], s["attributes"]
    dropped = [m for m in receiver.metrics() if m["name"] == "ferrotel.spans.dropped"][-1]
    sampled_out = {dp["attributes"]["ferrotel.drop.reason"]: dp["value"] for dp in dropped["data_points"]}.get("sampled_out", 0)
    exported_other = len(receiver.spans()) - len(server)
    assert sampled_out + len(server) + exported_other == total + 2 * orders, (sampled_out, len(server), exported_other)
