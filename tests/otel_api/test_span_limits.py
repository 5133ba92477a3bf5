"""The specification's span limits (issue 18), enforced as attributes, events and links are
added, so an open span's memory is bounded during the request: the test app under gunicorn, the
agent injected the Operator's way, in an app environment with opentelemetry-api. Its `/limits`
route adds far more than the limits allow through the API -- on a manual span and on the
request's server span -- and reports what the open spans hold, as the app sees them (the SDK's
`ReadableSpan` names: `attributes`, `events`, `links`, `dropped_*`). The receiver gets the same,
with OTLP's dropped_*_count.

Two configurations: the span-specific variables (which win over the general ones, set too), and
the general `OTEL_ATTRIBUTE_*` ones alone (which then apply to span, event and link attributes).
"""

from __future__ import annotations

import json

import pytest

from support.app_venvs import app_venv, start_gunicorn
from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER, Receiver
from support.processes import APP_DIR, GunicornLauncher

N = 40  # what the route adds of each kind (tests/app/app_limits.py)

SPECIFIC = {
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "20",
    "OTEL_ATTRIBUTE_COUNT_LIMIT": "30",  # loses to each specific one
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "50",  # loses
    "OTEL_SPAN_EVENT_COUNT_LIMIT": "5",
    "OTEL_SPAN_LINK_COUNT_LIMIT": "3",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "4",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "2",
}
GENERAL = {"OTEL_ATTRIBUTE_COUNT_LIMIT": "6", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "7"}

# (attributes, value length, events, event attributes, links, link attributes)
EXPECTED = {"specific": (20, 10, 5, 4, 3, 2), "general": (6, 7, 128, 6, 128, 6)}


@pytest.fixture(scope="module", params=["specific", "general"])
def run(request, dist_dir, tmp_path_factory):
    bin_dir = app_venv("api-newest")
    tmp = tmp_path_factory.mktemp("limits")
    install = install_like_operator(dist_dir, tmp)
    launcher = GunicornLauncher(tmp)
    settings = SPECIFIC if request.param == "specific" else GENERAL
    with Receiver() as rx:
        try:
            env = operator_env(install, rx.http_endpoint, extra={"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **settings})
            app = start_gunicorn(launcher, bin_dir, env, app_dir=APP_DIR, app="app_limits:app")
            resp = http_get(app.port, "/limits")
            assert resp.status == 200, resp.body
            held = json.loads(resp.body)
            manual = rx.wait_for_spans(1, predicate=lambda s: s["name"] == "limited")[0]
            server = rx.wait_for_spans(1, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)[0]
            app.stop()
            yield request.param, held, manual, server, app.log_text()
        finally:
            launcher.kill_all()


def _strings(attrs):
    for v in attrs.values():
        if isinstance(v, str):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from (x for x in v if isinstance(x, str))


def _link_attribute_counts(links, link_attrs):
    """N links at the start with N attributes each, then one added later with one."""
    counts = [min(N, link_attrs)] * N + [min(1, link_attrs)]
    return counts[:links]


def test_the_open_manual_span_is_bounded(run):
    kind, held, _, _, log = run
    attrs, length, events, event_attrs, links, link_attrs = EXPECTED[kind]
    span = held["manual"]
    assert "ferrotel:" not in log, log
    # start attributes first: the earliest are kept; a kept key can still be replaced
    assert sorted(span["attributes"]) == ["start.%02d" % i for i in range(attrs)]
    assert span["attributes"]["start.00"] == "x" * length
    assert len(span["events"]) == min(N, events)
    assert all(len(e["attributes"]) == event_attrs for e in span["events"])
    assert all(len(v) <= length for e in span["events"] for v in _strings(e["attributes"]))
    assert len(span["links"]) == min(N + 1, links)
    assert [len(link["attributes"]) for link in span["links"]] == _link_attribute_counts(links, link_attrs)
    dropped_attrs = (N - attrs) + N + N  # the rest of the start attributes, app.*, more.*
    assert span["dropped"] == [dropped_attrs, max(0, N - events), max(0, N + 1 - links)]


def test_the_receiver_gets_the_bounded_span_and_the_dropped_counts(run):
    kind, held, manual, _, _ = run
    attrs, length, events, event_attrs, links, link_attrs = EXPECTED[kind]
    assert len(manual["attributes"]) == attrs
    assert all(len(v) <= length for v in _strings(manual["attributes"]))
    assert manual["dropped_attributes_count"] == held["manual"]["dropped"][0]
    assert len(manual["events"]) == min(N, events)
    assert manual["dropped_events_count"] == max(0, N - events)
    assert [len(e["attributes"]) for e in manual["events"]] == [event_attrs] * min(N, events)
    assert len(manual["links"]) == min(N + 1, links)
    assert manual["dropped_links_count"] == max(0, N + 1 - links)
    assert [len(link["attributes"]) for link in manual["links"]] == _link_attribute_counts(links, link_attrs)
    # each event's and link's own dropped_attributes_count
    assert [e["dropped_attributes_count"] for e in manual["events"]] == [N - event_attrs] * min(N, events)
    given = [N] * N + [1]
    assert [link["dropped_attributes_count"] for link in manual["links"]] == [g - k for g, k in zip(given, _link_attribute_counts(links, link_attrs))]


def test_the_server_span_the_app_enriches_is_bounded_too(run):
    kind, held, _, server, _ = run
    attrs, length, *_ = EXPECTED[kind]
    span = held["server"]
    own = [k for k in span["attributes"] if not k.startswith("app.server.")]
    assert own, "ferrotel's own request attributes come first"
    # the app's attributes fill what the limit leaves after ferrotel's own (a fixed few, set
    # before the app runs); the rest are dropped and counted
    assert len(span["attributes"]) == max(attrs, len(own))
    assert span["dropped"][0] == N - max(0, attrs - len(own))
    assert all(len(v) <= length for k, v in span["attributes"].items() if k.startswith("app.server."))
    assert len(server["attributes"]) <= attrs
    assert server["dropped_attributes_count"] >= span["dropped"][0]
    assert all(len(v) <= length for v in _strings(server["attributes"]))
