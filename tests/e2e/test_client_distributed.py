"""End-to-end: one trace across two services. Two instances of the unmodified test app under gunicorn,
both instrumented the Operator's way and exporting to the suite's OTLP receiver. Service A, called
with a parent context and a `baggage` header, calls service B once through each HTTP client
(urllib.request, http.client, requests, urllib3, httpx sync and async), and once per client to a
closed port.

Checked per call: exactly one CLIENT span in A (not one per stacked layer) with the stable HTTP
client attributes; the propagation headers B received name that CLIENT span; B's SERVER span is
its child; baggage went on (when the baggage propagator is configured); a refused call is one
ERROR CLIENT span with `error.type` while the app caught its own exception. The scenario runs with
`tracecontext,baggage` and with `b3multi`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET
from support.processes import GunicornLauncher, free_port

CLIENTS = ["urllib", "http_client", "requests", "urllib3", "httpx", "httpx_async"]
# The exception each client raises to the app for a refused connection (what the app catches).
APP_ERRORS = {
    "urllib": "urllib.error.URLError",
    "http_client": "builtins.ConnectionRefusedError",
    "requests": "requests.exceptions.ConnectionError",
    "urllib3": "urllib3.exceptions.NewConnectionError",
    "httpx": "httpx.ConnectError",
    "httpx_async": "httpx.ConnectError",
}
# Scope of the hook that traces each client.
SCOPES = {
    "urllib": "ferrotel.urllib",
    "http_client": "ferrotel.urllib",
    "requests": "ferrotel.urllib3",
    "urllib3": "ferrotel.urllib3",
    "httpx": "ferrotel.httpx",
    "httpx_async": "ferrotel.httpx",
}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
BAGGAGE = "tenant=acme,request.origin=e2e"

PROPAGATION = {
    "w3c": ("tracecontext,baggage", {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01", "baggage": BAGGAGE}),
    "b3multi": (
        "b3multi",
        {"X-B3-TraceId": TRACE_ID, "X-B3-SpanId": CALLER_SPAN_ID, "X-B3-Sampled": "1", "baggage": BAGGAGE},
    ),
}


@dataclass
class Run:
    propagators: str
    port_b: int
    closed_port: int
    responses: dict  # (client, refused) -> parsed JSON of A's answer
    spans: list

    def trace(self):
        return [s for s in self.spans if s["trace_id"] == TRACE_ID]

    def server_span(self, service, path_match):
        found = [
            s
            for s in self.trace()
            if s["kind"] == SPAN_KIND_SERVER
            and s["resource"].get("service.name") == service
            and path_match(s["attributes"].get("url.path"), s["attributes"].get("url.query"))
        ]
        assert len(found) == 1, f"expected one {service} SERVER span, got {len(found)}"
        return found[0]

    def a_server(self, client, refused=False):
        path = f"/downstream/{client}"
        return self.server_span(
            "svc-a", lambda p, q: p == path and (q == "unreachable=1") == refused
        )

    def client_spans_of(self, parent):
        return [s for s in self.trace() if s["kind"] == SPAN_KIND_CLIENT and s["parent_span_id"] == parent["span_id"]]


def run_services(propagation, dist_dir, receiver, workdir) -> Run:
    propagators, incoming = PROPAGATION[propagation]
    receiver.clear()
    launcher = GunicornLauncher(workdir)
    try:
        install = install_like_operator(dist_dir, workdir)
        endpoint = receiver.endpoint("http/protobuf")
        common = {"OTEL_PROPAGATORS": propagators, "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
        b = launcher.start(operator_env(install, endpoint, extra={**common, "OTEL_SERVICE_NAME": "svc-b"}))
        closed_port = free_port()
        a = launcher.start(
            operator_env(
                install,
                endpoint,
                extra={
                    **common,
                    "OTEL_SERVICE_NAME": "svc-a",
                    "DOWNSTREAM_URL": f"http://127.0.0.1:{b.port}",
                    "UNREACHABLE_URL": f"http://127.0.0.1:{closed_port}",
                },
            )
        )
        responses = {}
        for client in CLIENTS:
            for refused in (False, True):
                target = f"/downstream/{client}" + ("?unreachable=1" if refused else "")
                r = http_get(a.port, target, incoming)
                assert r.status == 200, (target, r.status, r.body[:500])
                responses[(client, refused)] = json.loads(r.body)
        # Per call: A's SERVER and CLIENT spans, and B's SERVER span when B was reached.
        expected = len(CLIENTS) * 3 + len(CLIENTS) * 2
        try:
            receiver.wait_for_spans(expected, timeout=20, predicate=lambda s: s["trace_id"] == TRACE_ID)
        finally:
            a.stop()
            b.stop()
        return Run(propagators, b.port, closed_port, responses, receiver.spans())
    except Exception as exc:
        logs = "\n".join(f"--- {title}\n{text}" for title, text in launcher.failure_sections())
        raise RuntimeError(f"two-service scenario [{propagation}] failed: {exc!r}\n{logs}\n{receiver.summary()}") from exc
    finally:
        launcher.kill_all()


@pytest.fixture(scope="module", params=list(PROPAGATION))
def run(request, dist_dir, module_receiver, tmp_path_factory) -> Run:
    return run_services(request.param, dist_dir, module_receiver, tmp_path_factory.mktemp("client-" + request.param))


def test_one_trace_across_both_services(run):
    services = {s["resource"].get("service.name") for s in run.trace()}
    assert services == {"svc-a", "svc-b"}
    # Nothing of these calls started a trace of its own.
    strays = [s for s in run.spans if s["trace_id"] != TRACE_ID and s["resource"].get("service.name") in ("svc-a", "svc-b")]
    assert strays == []
    for client in CLIENTS:
        assert run.a_server(client)["parent_span_id"] == CALLER_SPAN_ID


@pytest.mark.parametrize("client", CLIENTS)
def test_exactly_one_client_span_with_the_http_attributes(run, client):
    server = run.a_server(client)
    [span] = run.client_spans_of(server)  # one, whatever layers the client stacks
    assert span["name"] == "GET"
    assert span["scope_name"] == SCOPES[client]
    assert span["status_code"] == STATUS_UNSET
    expected = {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": run.port_b,
        "url.full": f"http://127.0.0.1:{run.port_b}/headers?via={client}",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert {k: span["attributes"].get(k) for k in expected} == expected
    assert type(span["attributes"]["server.port"]) is int
    assert "error.type" not in span["attributes"]
    assert server["start_ns"] <= span["start_ns"] <= span["end_ns"] <= server["end_ns"]


@pytest.mark.parametrize("client", CLIENTS)
def test_downstream_continues_from_the_client_span(run, client):
    [span] = run.client_spans_of(run.a_server(client))
    received = run.responses[(client, False)]["received"]
    if "tracecontext" in run.propagators:
        assert received["traceparent"] == f"00-{TRACE_ID}-{span['span_id']}-01"
    else:
        assert "traceparent" not in received
        assert (received["x-b3-traceid"], received["x-b3-spanid"], received["x-b3-sampled"]) == (TRACE_ID, span["span_id"], "1")
    b_server = run.server_span("svc-b", lambda p, q: p == "/headers" and q == f"via={client}")
    assert b_server["parent_span_id"] == span["span_id"]
    assert b_server["trace_id"] == TRACE_ID


@pytest.mark.parametrize("client", CLIENTS)
def test_baggage_goes_on_with_the_baggage_propagator(run, client):
    received = run.responses[(client, False)]["received"]
    if "baggage" in run.propagators.split(","):
        assert received["baggage"] == BAGGAGE
    else:
        assert "baggage" not in received


@pytest.mark.parametrize("client", CLIENTS)
def test_refused_call_is_one_error_client_span_and_the_app_sees_its_exception(run, client):
    answer = run.responses[(client, True)]
    assert answer == {"client": client, "error": APP_ERRORS[client]}
    server = run.a_server(client, refused=True)
    [span] = run.client_spans_of(server)
    assert span["status_code"] == STATUS_ERROR
    attrs = span["attributes"]
    assert attrs["url.full"] == f"http://127.0.0.1:{run.closed_port}/headers"
    assert attrs["server.port"] == run.closed_port
    assert attrs["error.type"]  # the exception's type, as the hook saw it
    assert "http.response.status_code" not in attrs
    [event] = [e for e in span["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == attrs["error.type"]
    assert event["attributes"]["exception.message"]
    assert server["status_code"] == STATUS_UNSET, "the app handled its exception: its own request succeeded"
