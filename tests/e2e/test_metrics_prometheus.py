"""The Prometheus endpoint under a pre-fork server: `gunicorn -w 3`, one port, every worker's
requests counted. Checked with real Prometheus tooling: `promtool check metrics` (Debian's
`prometheus` package, installed by `make test`) and the `prometheus_client` text parser."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.http_client import http_get
from support.metric_names import METRICS
from support.operator import operator_env
from support.processes import free_port

ROOT, ERRORS, USERS = 30, 5, 5
TOTAL = ROOT + ERRORS + USERS


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def samples(text: str) -> dict:
    """sample name -> list of (labels, value)."""
    out: dict = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def wait_for_count(port: int, expected: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = scrape(port)
            counts = samples(last).get("http_server_request_duration_seconds_count", [])
            if sum(v for _, v in counts) == expected:
                return last
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"/metrics never counted {expected} requests; last scrape:\n{last}")


def shared_snapshots(master_pid: int, port: int) -> list[str]:
    """The per-process snapshot files the workers share (see src/metrics/prometheus.rs):
    `<pid>-<start time>.json` per process, `retained.json` for the exited ones."""
    directory = Path(tempfile.gettempdir()) / f"ferrotel-metrics-{os.getuid()}-{master_pid}-{port}"
    return sorted(p.name for p in directory.glob("*.json")) if directory.is_dir() else []


def snapshot_pids(names: list[str]) -> list[int]:
    """The pids of the live-process snapshot files among `names`."""
    return sorted(int(n.split("-")[0].removesuffix(".json")) for n in names if n != "retained.json")


@pytest.fixture
def prometheus_app(operator_install, receiver, gunicorn):
    port = free_port()
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1"},
    )
    app = gunicorn.start(env, workers=3)
    yield app, port
    app.stop()


def test_every_worker_counted_on_one_endpoint(prometheus_app):
    app, port = prometheus_app
    workers = app.wait_for_workers(3)
    # Three slow requests at once: each sync worker can hold only one, so all three serve.
    threads = [threading.Thread(target=http_get, args=(app.port, "/slow")) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(ROOT - 3):
        http_get(app.port, "/")
    for _ in range(ERRORS):
        http_get(app.port, "/error")
    for i in range(USERS):
        http_get(app.port, f"/users/{i}")
    text = wait_for_count(port, TOTAL)
    assert snapshot_pids(shared_snapshots(app.pid, port)) == sorted(workers), "every worker published"
    got = samples(text)
    by_route = {}
    for labels, value in got["http_server_request_duration_seconds_count"]:
        by_route[labels["http_route"]] = by_route.get(labels["http_route"], 0) + value
    assert by_route == {"/": ROOT - 3, "/slow": 3, "/error": ERRORS, "/users/<int:uid>": USERS}
    slow = got["ferrotel_http_server_slow_requests_total"]
    assert [(l["http_route"], v) for l, v in slow] == [("/slow", 3)]
    errors = got["ferrotel_http_server_error_requests_total"]
    assert [(l["http_route"], l["error_type"], v) for l, v in errors] == [("/error", "ValueError", ERRORS)]
    assert sum(v for _, v in got["ferrotel_spans_started_total"]) == TOTAL
    # Buckets are cumulative and end at the count.
    inf = [v for l, v in got["http_server_request_duration_seconds_bucket"] if l["le"] == "+Inf"]
    assert sum(inf) == TOTAL
    assert app.stop() == 0
    assert shared_snapshots(app.pid, port) == [], "the master removes the shared directory at exit"


def test_exposition_passes_promtool_and_names_match_the_published_list(prometheus_app):
    app, port = prometheus_app
    for _ in range(3):
        http_get(app.port, "/")
    http_get(app.port, "/error")
    text = wait_for_count(port, 4)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; `make test` installs it)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {family.name for family in text_string_to_metric_families(text)}
    # prometheus_client names counter families without their _total suffix.
    expected = {n[: -len("_total")] if n.endswith("_total") else n for n in METRICS}
    assert names == expected
    for family in text_string_to_metric_families(text):
        declared = METRICS.get(family.name) or METRICS[family.name + "_total"]
        assert family.type == declared[0]
        for s in family.samples:
            assert set(s.labels) - {"le"} <= set(declared[1]), (s.name, s.labels)


def test_only_metrics_is_served(prometheus_app):
    app, port = prometheus_app
    http_get(app.port, "/")
    wait_for_count(port, 1)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/anything-else", timeout=5)
    assert err.value.code == 404


@pytest.fixture
def idle_prometheus_app(operator_install, receiver, gunicorn):
    port = free_port()
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1"},
    )
    app = gunicorn.start(env, workers=2)
    yield app, port
    app.stop()


def test_metrics_answer_from_start_up_before_any_request(idle_prometheus_app):
    """An idle pod must not look down to Prometheus: `/metrics` answers before the first request
    (the process that started the agent, gunicorn's master, serves it from start-up), then counts
    the workers' requests."""
    app, port = idle_prometheus_app
    app.wait_for_workers(2)
    deadline = time.monotonic() + 10
    while True:
        try:
            text = scrape(port)
            break
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"/metrics does not answer before the first request: {exc}\n{app.log_text()}")
            time.sleep(0.1)
    got = samples(text)
    assert got.get("http_server_request_duration_seconds_count", []) == [], "no request yet"
    assert sum(v for _, v in got["ferrotel_spans_started_total"]) == 0
    for _ in range(4):
        http_get(app.port, "/")
    wait_for_count(port, 4)
    assert app.stop() == 0
