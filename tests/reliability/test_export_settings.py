"""Issue 18 (export): each export setting set as a user would, under gunicorn with the agent
injected the Operator's way, asserting its effect on what the collector gets.

- Signals isolated: a collector that holds every *trace* export for 30 s (`Receiver.stall`) does
  not hold up metrics or logs: both keep arriving while the traces wait, and the traces arrive
  once the stall ends. Over OTLP/HTTP and OTLP/gRPC.
- No silent failure: ``FERROTEL_TEST_FAULT=processor_panic`` panics inside the span processing
  chain (on the first span of each process): one ``ferrotel:`` line with the panic's message, and
  later spans are exported.
- ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT`` / ``OTEL_BSP_EXPORT_TIMEOUT``
  bound an export with its retries: against a collector that always answers 503 with
  ``Retry-After: 1``, a 1.5 s bound leaves room for exactly one retry (the default 10 s: four).
- ``Retry-After`` as an HTTP date is honoured.
- ``OTEL_METRICS_EXPORTER=console`` prints the metrics on stderr.
- ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``: with ``delta`` under two workers the
  deltas add up exactly to the requests served; ``lowmemory`` keeps the agent's observed
  counters cumulative while the histograms are deltas.
"""

from __future__ import annotations

import email.utils
import json
import time

import pytest

from support.fault_collector import Fault, FaultCollector
from support.http_client import http_get
from support.operator import operator_env
from support.otlp_receiver import Receiver

STALL_S = 30
# opentelemetry.proto.metrics.v1.AggregationTemporality
DELTA, CUMULATIVE = 1, 2


def _metric_points(rx, name: str):
    """(resource pid, temporality, point) for every data point of metric `name` received."""
    out = []
    for req in rx.requests("metrics"):
        for rm in req.message.resource_metrics:
            pid = next((kv.value.int_value for kv in rm.resource.attributes if kv.key == "process.pid"), None)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != name:
                        continue
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    for dp in data.data_points:
                        out.append((pid, data.aggregation_temporality, dp))
    return out


def _wait(predicate, timeout: float, what: str, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s\n{detail()}")


def _requests_counted(rx) -> int:
    """The largest http.server.request.duration count (all series) of one export (cumulative)."""
    best = 0
    for req in rx.requests("metrics"):
        total = 0
        for rm in req.message.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "http.server.request.duration":
                        total += sum(int(dp.count) for dp in m.histogram.data_points)
        best = max(best, total)
    return best


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_stalled_traces_endpoint_does_not_hold_up_metrics_or_logs(rel_install, servers, protocol):
    with Receiver() as rx:
        env = operator_env(
            rel_install,
            rx.endpoint(protocol),
            protocol,
            extra={
                # The trace exports really wait for the collector (nothing gives up before the stall ends).
                "OTEL_EXPORTER_OTLP_TIMEOUT": str((STALL_S + 30) * 1000),
                "OTEL_BSP_EXPORT_TIMEOUT": str((STALL_S + 30) * 1000),
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "300",
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
                "OTEL_BLRP_SCHEDULE_DELAY": "100",
            },
        )
        app = servers.gunicorn(env, workers=1)
        app.wait_for_workers(1)
        http_get(app.port, "/")
        rx.wait_for_spans(1, timeout=20)  # traces flow before the stall
        rx.stall("traces", STALL_S)
        stalled_at = time.monotonic()
        spans_before = len(rx.spans())
        logs_before = len(rx.log_records())
        n = 20
        for _ in range(n - 5):
            http_get(app.port, "/")
        for _ in range(5):
            http_get(app.port, "/otel")  # logs a warning: a log record to export
        # While the traces are held, the metrics count every request and the log records arrive.
        _wait(lambda: _requests_counted(rx) >= n + 1, 15, "metrics did not count the requests while traces stalled", rx.summary)
        _wait(lambda: len(rx.log_records()) > logs_before, 15, "no log record arrived while traces stalled", rx.summary)
        still_stalled = time.monotonic() - stalled_at < STALL_S
        assert still_stalled, "the checks above must finish inside the stall to prove anything"
        assert len(rx.spans()) == spans_before, "the traces were held: none recorded during the stall"
        rx.release()
        rx.wait_for_spans(spans_before + n, timeout=30)
        assert app.stop() == 0
        assert "internal error" not in app.log_text()


def test_a_panic_in_the_processor_chain_is_reported_once_and_export_goes_on(rel_install, servers):
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra={"FERROTEL_TEST_FAULT": "processor_panic", "OTEL_BSP_SCHEDULE_DELAY": "100"})
        app = servers.gunicorn(env, workers=1)
        app.wait_for_workers(1)
        http_get(app.port, "/users/1")  # its span is the one the fault costs
        time.sleep(0.5)  # processed (and lost) before the next ones are queued
        for i in range(2, 6):
            http_get(app.port, f"/users/{i}")
        spans = rx.wait_for_spans(4, timeout=20, predicate=lambda s: s["attributes"].get("url.path", "").startswith("/users/"))
        assert sorted(s["attributes"]["url.path"] for s in spans) == [f"/users/{i}" for i in range(2, 6)]
        assert app.stop() == 0
        lines = [line for line in app.log_text().splitlines() if "internal error" in line]
        assert len(lines) == 1, app.log_text()
        assert lines[0].startswith("ferrotel: internal error in span processing (panic: injected fault"), lines[0]
        assert "panicked at" not in app.log_text(), "Rust's own panic message stays quiet"


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT": "1500"},
        {"OTEL_BSP_EXPORT_TIMEOUT": "1500"},
        {},  # the defaults: 10 s
    ],
    ids=["traces-timeout", "otlp-timeout", "bsp-export-timeout", "default"],
)
def test_the_export_timeout_bounds_the_retries(rel_install, servers, variables):
    collector = FaultCollector().start()
    try:
        collector.set_fault(Fault(status=503, retry_after="1"))
        env = operator_env(rel_install, collector.endpoint("http/protobuf"), extra={"OTEL_METRICS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "100", **variables})
        app = servers.gunicorn(env, workers=1)
        app.wait_for_workers(1)
        http_get(app.port, "/users/7")
        expected = 2 if variables else 5  # 1.5 s: one 1 s wait fits; 10 s: the retry policy's 5 attempts
        _wait(lambda: len(collector.trace_attempts()) >= expected, 20, f"fewer than {expected} attempts", collector.summary)
        time.sleep(2.5)  # room for a (wrong) further retry
        attempts = [a for a in collector.trace_attempts() if a.span_ids == collector.trace_attempts()[0].span_ids]
        gaps = [round(b.time - a.time, 2) for a, b in zip(attempts, attempts[1:])]
        assert len(attempts) == expected, f"{len(attempts)} attempts (gaps {gaps} s), expected {expected}"
        assert all(g >= 0.9 for g in gaps), gaps
        app.stop()
    finally:
        collector.kill()


def test_retry_after_as_an_http_date(rel_install, servers):
    collector = FaultCollector().start()
    try:
        env = operator_env(rel_install, collector.endpoint("http/protobuf"), extra={"OTEL_METRICS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "100"})
        app = servers.gunicorn(env, workers=1)
        app.wait_for_workers(1)
        # An IMF-fixdate 3 s ahead (whole seconds: the wait is 2 to 3 s).
        collector.set_fault(Fault(status=503, retry_after=email.utils.formatdate(time.time() + 3, usegmt=True), count=1))
        http_get(app.port, "/users/8")
        collector.wait_for_spans(1, timeout=20)
        attempts = collector.trace_attempts()
        assert [a.status for a in attempts] == [503, 200], collector.summary()
        gap = attempts[1].time - attempts[0].time
        assert gap >= 1.5, f"retried after {gap:.2f} s, before the date in Retry-After"
        app.stop()
    finally:
        collector.kill()


def test_console_metrics_exporter_prints_the_metrics(rel_install, servers):
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra={"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "500"})
        app = servers.gunicorn(env, workers=1)
        app.wait_for_workers(1)
        for _ in range(7):
            http_get(app.port, "/")

        def counted() -> int:
            best = 0
            for line in app.log_text().splitlines():
                if line.startswith("{") and '"http.server.request.duration"' in line:
                    metric = json.loads(line)
                    best = max(best, sum(p["count"] for p in metric["data_points"]))
            return best

        _wait(lambda: counted() == 7, 15, "the console never printed 7 requests", app.log_text)
        line = next(json.loads(x) for x in app.log_text().splitlines() if '"http.server.request.duration"' in x)
        assert line["type"] == "histogram" and line["aggregation_temporality"] == "CUMULATIVE"
        assert line["resource"]["service.name"] and line["scope"]["name"] == "ferrotel"
        app.stop()
        assert rx.requests("metrics") == [], "console only: nothing pushed over OTLP"


def test_delta_temporality_adds_up_across_workers(rel_install, servers):
    with Receiver() as rx:
        env = operator_env(
            rel_install,
            rx.http_endpoint,
            extra={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta", "OTEL_METRIC_EXPORT_INTERVAL": "300"},
        )
        app = servers.gunicorn(env, workers=2)
        app.wait_for_workers(2)
        n = 60
        for i in range(n):
            http_get(app.port, "/" if i % 2 else f"/users/{i}")
            if i % 20 == 0:
                time.sleep(0.4)  # several export intervals: several deltas per worker
        assert app.stop() == 0  # the final flush sends each worker's last delta
        points = _metric_points(rx, "http.server.request.duration")
        assert points and {t for _, t, _ in points} == {DELTA}
        assert sum(int(dp.count) for _, _, dp in points) == n, "deltas add up to the requests served"
        assert len({pid for pid, _, _ in points}) == 2, "each worker exports its own deltas"
        # Consecutive deltas of one series tile time: each starts where the previous one ended.
        by_series: dict = {}
        for pid, _, dp in points:
            key = (pid, tuple(sorted((kv.key, str(kv.value)) for kv in dp.attributes)))
            by_series.setdefault(key, []).append((dp.start_time_unix_nano, dp.time_unix_nano))
        for spans in by_series.values():
            spans.sort()
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
        # (A gauge series exists once a snapshot saw a request in flight: maybe none here.)
        active = _metric_points(rx, "http.server.active_requests")
        assert {t for _, t, _ in active} <= {CUMULATIVE}, "up-down counters stay cumulative"
        started = _metric_points(rx, "ferrotel.spans.started")
        assert {t for _, t, _ in started} == {DELTA} and sum(dp.as_int for _, _, dp in started) == n


def test_lowmemory_temporality(rel_install, servers):
    with Receiver() as rx:
        env = operator_env(
            rel_install,
            rx.http_endpoint,
            extra={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "lowmemory", "OTEL_METRIC_EXPORT_INTERVAL": "300"},
        )
        app = servers.gunicorn(env, workers=1)
        app.wait_for_workers(1)
        for _ in range(10):
            http_get(app.port, "/")
        assert app.stop() == 0
        hist = _metric_points(rx, "http.server.request.duration")
        assert {t for _, t, _ in hist} == {DELTA} and sum(int(dp.count) for _, _, dp in hist) == 10
        started = _metric_points(rx, "ferrotel.spans.started")
        assert {t for _, t, _ in started} == {CUMULATIVE}, "an observed counter stays cumulative under lowmemory"
        assert max(dp.as_int for _, _, dp in started) == 10
