"""gRPC end to end (issue 16): a real grpcio server process and a real client process, both
injected the Operator's way (PYTHONPATH to the agent tree, OTEL_* variables), exporting to the
real OTLP receiver. Unary and streaming calls, sync and grpc.aio: one trace from the client's own
span through every call, parentage asserted span by span; error statuses by the conventions'
rules for each side; a method the server does not implement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.operator import operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET
from support.processes import free_port

HERE = Path(__file__).resolve().parent
APP = HERE / "grpc_app.py"
METHODS = ("Unary", "ServerStream", "ClientStream", "BidiStream", "Missing", "Crash")


def _env(operator_install, receiver, service, **extra):
    return operator_env(operator_install, receiver.http_endpoint, extra={"OTEL_SERVICE_NAME": service, "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **extra})


def _start_server(env, mode, port, log):
    proc = subprocess.Popen([sys.executable, str(APP), "server", mode, str(port)], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "listening", "the gRPC server did not start: " + line
    return proc


@pytest.fixture
def server_log(tmp_path):
    with open(tmp_path / "server.log", "w+") as f:
        yield f


@pytest.mark.parametrize("mode", ["sync", "aio"])
def test_one_trace_through_unary_and_streaming_calls(mode, operator_install, receiver, server_log):
    port = free_port()
    server = _start_server(_env(operator_install, receiver, "grpc-server"), mode, port, server_log)
    try:
        done = subprocess.run(
            [sys.executable, str(APP), "client", mode, str(port)], env=_env(operator_install, receiver, "grpc-client"), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "ferrotel" not in done.stderr, done.stderr
        got = json.loads(done.stdout.strip().splitlines()[-1])
        # The calls answer exactly as without the agent.
        assert got == {
            "unary": "echo:inner:a",
            "server_stream": ["s-0", "s-1", "s-2"],
            "client_stream": "x+y",
            "bidi": ["re:1", "re:2"],
            "future": "inner:f+app",  # the application's interceptor's metadata arrived
            "Missing": "NOT_FOUND",
            "Crash": "UNKNOWN",
            "NoSuchMethod": "UNIMPLEMENTED",
        }
        # job, 8 calls from the client and the Unary handler's call to Inner: a CLIENT and a SERVER span each
        spans = receiver.wait_for_spans(19, timeout=20)
    finally:
        server.terminate()
        server.wait(timeout=20)
    server_log.seek(0)
    log = server_log.read()
    assert "ferrotel" not in log, log

    (job,) = [s for s in spans if s["name"] == "job"]
    trace = [s for s in spans if s["trace_id"] == job["trace_id"]]
    assert len(trace) == 19, [(s["name"], s["kind"]) for s in spans]
    by_id = {s["span_id"]: s for s in trace}

    def one(kind, name, service):
        found = [s for s in trace if s["kind"] == kind and s["name"] == name and s["resource"]["service.name"] == service]
        assert len(found) == 1, (kind, name, [(s["name"], s["kind"]) for s in trace])
        return found[0]

    for method in METHODS:
        full = "demo.Echo/" + method
        client = one(SPAN_KIND_CLIENT, full, "grpc-client")
        server = one(SPAN_KIND_SERVER, full, "grpc-server")
        assert client["parent_span_id"] == job["span_id"], method
        assert server["parent_span_id"] == client["span_id"], method
        for span in (client, server):
            a = span["attributes"]
            assert a["rpc.system.name"] == "grpc"
            assert a["rpc.method"] == full
            assert span["start_ns"] <= span["end_ns"]
        assert client["attributes"]["server.address"] == "127.0.0.1"
        assert client["attributes"]["server.port"] == port
        assert client["scope_name"] == "ferrotel.grpc"

    def status(kind, method):
        span = one(kind, "demo.Echo/" + method, "grpc-client" if kind == SPAN_KIND_CLIENT else "grpc-server")
        return span["attributes"].get("rpc.response.status_code"), span["status_code"], span["attributes"].get("error.type")

    for method in ("Unary", "ServerStream", "ClientStream", "BidiStream"):
        assert status(SPAN_KIND_CLIENT, method) == ("OK", STATUS_UNSET, None)
        assert status(SPAN_KIND_SERVER, method) == ("OK", STATUS_UNSET, None)
    # NOT_FOUND: an error for the client, not for the server (the conventions' server list).
    assert status(SPAN_KIND_CLIENT, "Missing") == ("NOT_FOUND", STATUS_ERROR, "NOT_FOUND")
    assert status(SPAN_KIND_SERVER, "Missing") == ("NOT_FOUND", STATUS_UNSET, None)
    missing = one(SPAN_KIND_SERVER, "demo.Echo/Missing", "grpc-server")
    assert not missing["events"], "abort() is a status, not an exception"
    # A handler that raises: UNKNOWN on both sides, the exception recorded on the server span.
    assert status(SPAN_KIND_CLIENT, "Crash") == ("UNKNOWN", STATUS_ERROR, "UNKNOWN")
    crash = one(SPAN_KIND_SERVER, "demo.Echo/Crash", "grpc-server")
    assert crash["status_code"] == STATUS_ERROR
    assert crash["attributes"]["rpc.response.status_code"] == "UNKNOWN"
    assert crash["attributes"]["error.type"] == "ValueError"
    (event,) = crash["events"]
    assert event["name"] == "exception" and event["attributes"]["exception.message"] == "handler bug"

    # The server span is current in the handler: its own outgoing call is its child.
    unary_server = one(SPAN_KIND_SERVER, "demo.Echo/Unary", "grpc-server")
    inner_client = one(SPAN_KIND_CLIENT, "demo.Echo/Inner", "grpc-server")
    assert inner_client["parent_span_id"] == unary_server["span_id"]
    # ... and the client's own call to Inner (through the app's interceptor; sync: a future)
    # continues the trace on the server: ferrotel's entries went in beside the app's metadata.
    direct = one(SPAN_KIND_CLIENT, "demo.Echo/Inner", "grpc-client")
    assert direct["parent_span_id"] == job["span_id"] and direct["attributes"]["rpc.response.status_code"] == "OK"
    inner_server = [s for s in trace if s["kind"] == SPAN_KIND_SERVER and s["name"] == "demo.Echo/Inner"]
    assert sorted(s["parent_span_id"] for s in inner_server) == sorted([inner_client["span_id"], direct["span_id"]])

    # A method the server does not implement: `_OTHER`, named by the system, UNIMPLEMENTED.
    nosuch_client = one(SPAN_KIND_CLIENT, "demo.Echo/NoSuchMethod", "grpc-client")
    assert nosuch_client["attributes"]["rpc.response.status_code"] == "UNIMPLEMENTED"
    (nosuch_server,) = [s for s in trace if s["kind"] == SPAN_KIND_SERVER and s["parent_span_id"] == nosuch_client["span_id"]]
    assert nosuch_server["name"] == "grpc"
    assert nosuch_server["attributes"]["rpc.method"] == "_OTHER"
    assert nosuch_server["attributes"]["rpc.method_original"] == "demo.Echo/NoSuchMethod"
    assert nosuch_server["status_code"] == STATUS_ERROR
    assert all(s["parent_span_id"] in by_id for s in trace if s is not job)


@pytest.mark.parametrize("mode", ["sync", "aio"])
def test_disabled_by_name(mode, operator_install, receiver, server_log):
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=grpc_client,grpc_server: the calls work, no RPC spans."""
    port = free_port()
    off = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "grpc_client,grpc_server"}
    server = _start_server(_env(operator_install, receiver, "grpc-server", **off), mode, port, server_log)
    try:
        done = subprocess.run(
            [sys.executable, str(APP), "client", mode, str(port)], env=_env(operator_install, receiver, "grpc-client", **off), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["unary"] == "echo:inner:a"
        receiver.wait_for_spans(1, timeout=20, predicate=lambda s: s["name"] == "job")
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert [s["name"] for s in receiver.spans()] == ["job"]
