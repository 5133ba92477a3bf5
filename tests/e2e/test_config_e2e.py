"""End-to-end: behaviour driven by OTEL_* environment variables, agent injected the Operator way.

Each test runs a Flask app in-process (`support.wsgi_driver`: werkzeug test client, no server) in a
fresh interpreter and lets it exit; the agent's atexit shutdown flushes before the process ends,
so by the time the driver returns everything the agent was going to send has reached the receiver
(which is why "nothing arrived" is checked right after exit). Gunicorn is used where the server
process model matters.
"""

from __future__ import annotations

import json
import re

import pytest

from support.http_client import http_get
from support.operator import RESOURCE_ATTRIBUTES, SERVICE_NAME, install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER
from support.processes import free_port
from support.tcp_tools import RecordingProxy
from support.wsgi_driver import agent_lines, run_requests

PROTOCOLS = ["http/protobuf", "grpc"]
PROTOCOL_IDS = ["http", "grpc"]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SAMPLED_TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
UNSAMPLED_TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-00"
OTHER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
OTHER_PARENT_ID = "b7ad6b7169203331"
OTHER_TRACEPARENT = f"00-{OTHER_TRACE_ID}-{OTHER_PARENT_ID}-01"

# Other signals off, where a test counts requests, paths or diagnostics of the traces exporter alone.
TRACES_ONLY = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
QUIET = "a valid configuration must not print diagnostics"

CONSOLE_KEYS = {  # documented keys of a console span (more may be added)
    "name", "kind", "trace_id", "span_id", "parent_span_id", "start_time_unix_nano", "end_time_unix_nano",
    "duration_ms", "status", "attributes", "events", "scope", "resource",
}  # fmt: skip


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    """One operator-style copy of the dist for the whole module (the tests only read it)."""
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("config-install"))


def agent_env(install, receiver, protocol="http/protobuf", unset=(), **extra):
    """The operator's environment pointed at `receiver`, with `extra` applied and `unset` removed."""
    env = operator_env(install, receiver.endpoint(protocol), protocol, extra=extra)
    for key in unset:
        env.pop(key, None)
    return env


def statuses(run) -> list:
    return [r["status"] for r in run.report["responses"]]


def by_path(spans, path) -> dict:
    matches = [s for s in spans if s["attributes"].get("url.path") == path]
    assert len(matches) == 1, f"expected one span for {path}, got {len(matches)}: {spans}"
    return matches[0]


def assert_ok(run, n):
    assert run.returncode == 0, run.describe()
    assert statuses(run) == [200] * n, run.describe()


def assert_nothing_exported(receiver):
    assert receiver.spans() == [], receiver.summary()
    assert receiver.requests("traces") == [], "empty export requests were sent"
    assert receiver.errors() == []


# --------------------------------------------------------------------------- exporters


def test_console_exporter_prints_one_json_object_per_span(install, receiver):
    run = run_requests(agent_env(install, receiver, OTEL_TRACES_EXPORTER="console"), ["/users/7?x=1", "/"])
    assert_ok(run, 2)
    spans = run.console_spans
    assert len(spans) == 2, run.describe()
    assert [line for line in run.stderr.splitlines() if line.strip() and not line.startswith("{")] == []

    span = by_path(spans, "/users/7")
    assert CONSOLE_KEYS <= set(span), sorted(CONSOLE_KEYS - set(span))
    assert span["name"] == "GET /users/<int:uid>"
    assert span["kind"] == "SERVER"
    expected = {
        "http.request.method": "GET",
        "http.route": "/users/<int:uid>",
        "http.response.status_code": 200,
        "url.path": "/users/7",
        "url.query": "x=1",
        "url.scheme": "http",
    }
    assert {k: span["attributes"].get(k) for k in expected} == expected
    assert re.fullmatch(r"[0-9a-f]{32}", span["trace_id"]) and set(span["trace_id"]) != {"0"}
    assert re.fullmatch(r"[0-9a-f]{16}", span["span_id"]) and set(span["span_id"]) != {"0"}
    assert span["parent_span_id"] is None
    assert span["status"] == {"code": "UNSET", "description": ""}
    assert span["scope"]["name"] == "ferrotel.flask"
    assert span["start_time_unix_nano"] <= span["end_time_unix_nano"]
    assert span["resource"]["service.name"] == SERVICE_NAME
    assert span["resource"]["process.pid"] == run.report["pid"]
    assert span["resource"]["k8s.pod.name"] == RESOURCE_ATTRIBUTES["k8s.pod.name"]

    root = by_path(spans, "/")
    assert root["name"] == "GET /"
    assert root["trace_id"] != span["trace_id"]
    # console only: nothing goes to the (configured) OTLP endpoint
    assert_nothing_exported(receiver)


def test_exporter_none_sends_nothing_and_stays_quiet(install, receiver):
    run = run_requests(agent_env(install, receiver, OTEL_TRACES_EXPORTER="none"), ["/", "/users/1"])
    assert_ok(run, 2)
    assert run.report["ferrotel_loaded"] is True
    assert run.stderr == ""
    assert_nothing_exported(receiver)


def test_sdk_disabled_loads_nothing(install, receiver):
    run = run_requests(agent_env(install, receiver, OTEL_SDK_DISABLED="true"), ["/", "/span"])
    assert_ok(run, 2)
    assert run.report["responses"][1]["body"].strip() == "null"
    assert run.report["ferrotel_loaded"] is False
    assert run.stderr == ""
    assert_nothing_exported(receiver)


# --------------------------------------------------------------------------- propagators


@pytest.mark.parametrize(
    "propagators, headers",
    [
        ("b3", {"b3": f"{TRACE_ID}-{PARENT_ID}-1"}),
        ("b3multi", {"X-B3-TraceId": TRACE_ID, "X-B3-SpanId": PARENT_ID, "X-B3-Sampled": "1"}),
    ],
    ids=["b3", "b3multi"],
)
def test_b3_propagators_continue_the_trace(install, receiver, propagators, headers):
    # The second request carries only a W3C traceparent, which these propagators do not read.
    run = run_requests(
        agent_env(install, receiver, OTEL_PROPAGATORS=propagators),
        [("/users/1", headers), ("/users/2", {"traceparent": OTHER_TRACEPARENT})],
    )
    assert_ok(run, 2)
    spans = receiver.wait_for_spans(2, timeout=5)
    continued = by_path(spans, "/users/1")
    assert (continued["trace_id"], continued["parent_span_id"]) == (TRACE_ID, PARENT_ID)
    assert continued["span_id"] != PARENT_ID
    ignored = by_path(spans, "/users/2")
    assert ignored["trace_id"] not in (TRACE_ID, OTHER_TRACE_ID)
    assert ignored["parent_span_id"] == ""


def test_propagators_none_ignores_incoming_context(install, receiver):
    headers = {"traceparent": SAMPLED_TRACEPARENT, "b3": f"{OTHER_TRACE_ID}-{OTHER_PARENT_ID}-1"}
    run = run_requests(agent_env(install, receiver, OTEL_PROPAGATORS="none"), [("/", headers)])
    assert_ok(run, 1)
    [span] = receiver.wait_for_spans(1, timeout=5)
    assert span["trace_id"] not in (TRACE_ID, OTHER_TRACE_ID)
    assert span["parent_span_id"] == ""


def test_tracecontext_keeps_tracestate(install, receiver):
    tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    headers = {"traceparent": SAMPLED_TRACEPARENT, "tracestate": tracestate}
    run = run_requests(agent_env(install, receiver, OTEL_PROPAGATORS="tracecontext"), [("/", headers)])
    assert_ok(run, 1)
    [span] = receiver.wait_for_spans(1, timeout=5)
    assert (span["trace_id"], span["parent_span_id"]) == (TRACE_ID, PARENT_ID)
    assert span["trace_state"] == tracestate


# --------------------------------------------------------------------------- samplers


def span_seen_by_app(run, index):
    """What `/span` (request number `index`) reported about the agent's current span."""
    return json.loads(run.report["responses"][index]["body"])


def test_sampler_always_off_exports_nothing(install, receiver):
    run = run_requests(agent_env(install, receiver, OTEL_TRACES_SAMPLER="always_off"), ["/", "/users/1", "/span"])
    assert_ok(run, 3)
    seen = span_seen_by_app(run, 2)
    assert seen is not None, "the agent was not active"
    assert (seen["sampled"], seen["recording"]) == (False, False)
    assert_nothing_exported(receiver)
    assert run.agent_lines == [], QUIET


def test_parentbased_always_on_follows_unsampled_parent(install, receiver):
    env = agent_env(install, receiver, OTEL_TRACES_SAMPLER="parentbased_always_on")
    run = run_requests(env, [("/span", {"traceparent": UNSAMPLED_TRACEPARENT}), "/users/1"])
    assert_ok(run, 2)
    seen = span_seen_by_app(run, 0)
    assert seen is not None, "the agent was not active"
    assert (seen["trace_id"], seen["sampled"], seen["recording"]) == (TRACE_ID, False, False)
    # The root request is sampled (proves export works); the one with flags 00 is not exported.
    spans = receiver.wait_for_spans(1, timeout=5)
    assert [s["attributes"]["url.path"] for s in receiver.spans()] == ["/users/1"], receiver.summary()
    assert spans[0]["trace_id"] != TRACE_ID
    assert run.agent_lines == [], QUIET


def test_traceidratio_zero_exports_nothing(install, receiver):
    env = agent_env(install, receiver, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    run = run_requests(env, ["/", "/users/1", "/users/2", "/span"])
    assert_ok(run, 4)
    seen = span_seen_by_app(run, 3)
    assert seen is not None and seen["sampled"] is False
    assert_nothing_exported(receiver)
    assert run.agent_lines == [], QUIET


# --------------------------------------------------------------------------- OTLP exporter settings


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_otlp_headers_arrive(install, receiver, protocol):
    env = agent_env(install, receiver, protocol, OTEL_EXPORTER_OTLP_HEADERS="api-key=secret123,x-tenant=t1")
    run = run_requests(env, ["/"])
    assert_ok(run, 1)
    receiver.wait_for_spans(1, timeout=5)
    requests = receiver.requests("traces")
    assert requests and all(r.transport == protocol.split("/")[0] for r in requests)
    for r in requests:
        assert (r.headers.get("api-key"), r.headers.get("x-tenant")) == ("secret123", "t1"), r.headers
    assert run.agent_lines == []


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_http_compression(install, receiver, compression):
    env = agent_env(install, receiver, OTEL_EXPORTER_OTLP_COMPRESSION=compression)
    run = run_requests(env, ["/users/3"])
    assert_ok(run, 1)
    [span] = receiver.wait_for_spans(1, timeout=5)
    assert span["attributes"]["url.path"] == "/users/3"
    encodings = {r.headers.get("content-encoding", "") for r in receiver.requests("traces")}
    assert encodings == ({"gzip"} if compression == "gzip" else {""})
    assert receiver.errors() == []
    assert run.agent_lines == []


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_grpc_compression(install, receiver, compression):
    # The gRPC server hides grpc-encoding from the handler, so a proxy reads the message flag off the wire.
    with RecordingProxy(receiver.grpc_port) as proxy:
        env = agent_env(install, receiver, "grpc", OTEL_EXPORTER_OTLP_COMPRESSION=compression)
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = proxy.endpoint
        run = run_requests(env, ["/users/3"])
        assert_ok(run, 1)
        [span] = receiver.wait_for_spans(1, timeout=5)
        flags = proxy.grpc_message_flags()
    assert span["attributes"]["url.path"] == "/users/3"
    assert flags, "no gRPC message seen on the wire"
    assert set(flags) == ({1} if compression == "gzip" else {0})
    assert run.agent_lines == []


# name -> (variables; "{rx}" is the receiver's HTTP base URL, "{dead}" one where nothing listens),
#          path the export is POSTed to, whether that path is the receiver's traces path)
ENDPOINT_CASES = {
    "generic-appends-v1-traces": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "{rx}"}, "/v1/traces", True),
    "generic-trailing-slash": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "{rx}/"}, "/v1/traces", True),
    "generic-with-base-path": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "{rx}/base"}, "/base/v1/traces", False),
    "traces-endpoint-as-is": (
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{rx}/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT": "{dead}"},
        "/v1/traces",
        True,
    ),
    "traces-endpoint-custom-path": (
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{rx}/custom/traces", "OTEL_EXPORTER_OTLP_ENDPOINT": "{rx}"},
        "/custom/traces",
        False,
    ),
}


@pytest.mark.parametrize("case", list(ENDPOINT_CASES))
def test_http_endpoint_variables(install, receiver, case):
    variables, path, accepted = ENDPOINT_CASES[case]
    dead = f"http://127.0.0.1:{free_port()}"
    env = agent_env(install, receiver, unset=["OTEL_EXPORTER_OTLP_ENDPOINT"], **TRACES_ONLY)
    env.update({k: v.format(rx=receiver.http_endpoint, dead=dead) for k, v in variables.items()})
    run = run_requests(env, ["/"])
    assert_ok(run, 1)
    if accepted:
        receiver.wait_for_spans(1, timeout=5)
        assert {r.path for r in receiver.requests("traces")} == {path}
        assert run.agent_lines == []
    else:
        assert receiver.spans() == []
        assert receiver.errors() and set(receiver.errors()) == {f"HTTP POST to unknown path {path!r}"}
        # the failed export is reported, once
        assert len([line for line in run.agent_lines if "404" in line]) == 1, run.describe()


# --------------------------------------------------------------------------- bad values

BAD_VALUES = {"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_TRACES_SAMPLER": "bogus", "OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}


def assert_one_warning_per_bad_variable(lines):
    for var, value in BAD_VALUES.items():
        named = [line for line in lines if var in line]
        assert len(named) == 1, f"{var}: {lines}"
        assert value in named[0], named[0]
    assert len(lines) == len(BAD_VALUES), lines


def test_bad_values_warn_once_and_spans_still_arrive(install, receiver):
    run = run_requests(agent_env(install, receiver, **BAD_VALUES), ["/", "/users/1", "/users/2", "/users/3"])
    assert_ok(run, 4)
    # the (default, 5 s) schedule delay has not passed: these arrive with the exit flush
    spans = receiver.wait_for_spans(4, timeout=5)
    assert sorted(s["attributes"]["url.path"] for s in spans) == ["/", "/users/1", "/users/2", "/users/3"]
    assert run.agent_lines == run.stderr.splitlines(), run.describe()
    assert_one_warning_per_bad_variable(run.agent_lines)


def test_bad_values_warn_once_under_gunicorn(install, receiver, gunicorn):
    # master and forked worker, several requests: still one line per bad variable
    app = gunicorn.start(agent_env(install, receiver, **BAD_VALUES))
    assert [http_get(app.port, target).status for target in ("/", "/users/1", "/users/2")] == [200, 200, 200]
    assert app.stop() == 0
    spans = receiver.wait_for_spans(3, timeout=5, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
    assert len(spans) == 3
    assert_one_warning_per_bad_variable(agent_lines(app.log_text()))


# --------------------------------------------------------------------------- resource


def test_service_name_defaults_to_unknown_service(install, receiver):
    run = run_requests(agent_env(install, receiver, unset=["OTEL_SERVICE_NAME"]), ["/"])
    assert_ok(run, 1)
    [span] = receiver.wait_for_spans(1, timeout=5)
    assert span["resource"]["service.name"] == "unknown_service:python"
    assert span["resource"]["k8s.pod.name"] == RESOURCE_ATTRIBUTES["k8s.pod.name"]


def test_resource_attributes_are_percent_decoded(install, receiver):
    raw = "deployment.environment=prod%20eu,team=caf%C3%A9,note=a%2Cb%3Dc,service.name=from%2Dattrs"
    env = agent_env(install, receiver, unset=["OTEL_SERVICE_NAME"], OTEL_RESOURCE_ATTRIBUTES=raw)
    run = run_requests(env, ["/"])
    assert_ok(run, 1)
    [span] = receiver.wait_for_spans(1, timeout=5)
    res = span["resource"]
    assert (res["deployment.environment"], res["team"], res["note"]) == ("prod eu", "café", "a,b=c")
    assert res["service.name"] == "from-attrs"  # no OTEL_SERVICE_NAME: the attribute names the service
    assert run.agent_lines == []
