"""The OpenTelemetry API's promises through the bridge (issue 10), in one interpreter per API
release: a script uses the API the way apps and libraries do, checks what the API shows it, and
the spans it made are checked as the receiver got them. The agent is injected the Operator's way.
"""

from __future__ import annotations

import json

import pytest

from support.app_venvs import app_venv, run_in
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_OK

SCRIPT = r"""
import asyncio, json, threading, contextvars
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from ferrotel import _native

out = {}
tracer = trace.get_tracer("sem.scope", "0.1")
invalid = trace.get_current_span()
assert not invalid.get_span_context().is_valid and not invalid.is_recording()

# A request's server span made current natively (as the WSGI/ASGI hooks do), with incoming baggage.
incoming = _native.otel_context_span(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, 1, "vendor=1", True, "tenant=acme")
server = _native.start_span("GET /x", kind=1, parent=incoming)
token = _native.set_current(server)
seen = trace.get_current_span()
sc = seen.get_span_context()
out["server_seen"] = ["%032x" % sc.trace_id, "%016x" % sc.span_id, sc.trace_state.get("vendor")]
seen.set_attribute("app.user", "u-1")          # the app may enrich ferrotel's span ...
seen.end()                                      # ... but ferrotel ends it
assert seen.is_recording()

with tracer.start_as_current_span("parent", kind=SpanKind.INTERNAL, attributes={"p": True}) as parent:
    assert trace.get_current_span() is parent
    assert _native.current_span().span_id == "%016x" % parent.get_span_context().span_id
    client = _native.start_span("native client", kind=2)      # what the HTTP client hooks do
    out["client"] = [client.trace_id, client.span_id]
    client.end()
    detached = tracer.start_span("detached", kind=SpanKind.PRODUCER, links=[Link(sc, {"link.kind": "server"})])
    assert trace.get_current_span() is parent, "start_span does not make the span current"
    with trace.use_span(detached, end_on_exit=True):
        assert trace.get_current_span() is detached
        out["inject_in_detached"] = {}
        propagate.inject(out["inject_in_detached"])
    assert trace.get_current_span() is parent
    try:
        with tracer.start_as_current_span("failing", kind=SpanKind.CONSUMER):
            raise RuntimeError("escaped")
    except RuntimeError:
        pass
    child = tracer.start_span("explicit-context", context=trace.set_span_in_context(detached), kind=SpanKind.CLIENT)
    child.set_status(Status(StatusCode.OK))
    child.add_link(sc, {"late": 1})
    child.update_name("explicit-context-renamed")
    child.end()
    with tracer.start_span("with-span-cm") as cm_span:
        assert trace.get_current_span() is parent, "a span used as context manager is not made current"
    # An empty context attached: no current span for the API, nor for ferrotel.
    tok = context.attach(context.Context())
    assert not trace.get_current_span().get_span_context().is_valid
    assert _native.current_span() is None
    orphan = _native.start_span("orphan client", kind=2)
    out["orphan_parent_is_none"] = True
    orphan.end()
    context.detach(tok)
    assert trace.get_current_span() is parent
    # Threads: a copied context carries the span; so does a new thread, through the threading
    # instrumentation (a thread started while a span is current runs under it, as upstream's).
    box = {}
    ctx = contextvars.copy_context()
    t = threading.Thread(target=lambda: ctx.run(lambda: box.setdefault("copied", trace.get_current_span() is parent)))
    t.start(); t.join()
    t = threading.Thread(target=lambda: box.setdefault("fresh", trace.get_current_span().get_span_context().is_valid))
    t.start(); t.join()
    out["threads"] = box
    # asyncio tasks copy the context.
    async def task():
        with tracer.start_as_current_span("in-task") as s:
            return trace.get_current_span() is s
    out["task"] = asyncio.run(task())
    parent.set_status(StatusCode.ERROR, "described")

assert trace.get_current_span() is seen or trace.get_current_span().get_span_context() == sc

# Incoming baggage of the native span is visible through the API; propagate.inject writes it.
out["baggage"] = dict(baggage.get_all())
carrier = {}
propagate.inject(carrier)
out["inject_server"] = carrier

# extract + attach: ferrotel's client spans become children of the remote parent.
remote = propagate.extract({"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"})
tok = context.attach(remote)
c2 = _native.start_span("client under remote", kind=2)
out["remote_client"] = [c2.trace_id]
c2.end()
with tracer.start_as_current_span("under-remote") as ur:
    out["under_remote"] = "%032x" % ur.get_span_context().trace_id
context.detach(tok)

# Decorator use.
@tracer.start_as_current_span("decorated")
def work():
    return trace.get_current_span().get_span_context().span_id
out["decorated"] = work() != 0

@tracer.start_as_current_span("decorated-async")
async def awork():
    await asyncio.sleep(0)
    return trace.get_current_span().get_span_context().span_id
out["decorated_async"] = asyncio.run(awork()) != 0
_native.reset_current(token)
server.end()
assert not trace.get_current_span().get_span_context().is_valid
out["flushed"] = _native.flush(5000)
print(json.dumps(out))
"""


@pytest.mark.parametrize("venv", ["api-newest", "api-older"])
def test_api_semantics(venv, dist_dir, tmp_path, receiver):
    bin_dir = app_venv(venv)
    install = install_like_operator(dist_dir, tmp_path)
    out = run_in(bin_dir, SCRIPT, operator_env(install, receiver.http_endpoint, extra={"OTEL_METRICS_EXPORTER": "none"}))
    assert out.returncode == 0, out.stderr + out.stdout
    assert "ferrotel:" not in out.stderr, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["flushed"] is True
    spans = {s["name"]: s for s in receiver.wait_for_spans(13)}
    server = spans["GET /x"]
    parent = spans["parent"]

    assert seen["server_seen"] == [server["trace_id"], server["span_id"], "1"]
    assert server["attributes"]["app.user"] == "u-1", "attributes set through the API land on ferrotel's span"
    assert server["end_ns"] >= parent["end_ns"], "the API's end() did not end ferrotel's own span"

    assert parent["parent_span_id"] == server["span_id"] and parent["trace_id"] == server["trace_id"]
    assert parent["scope_name"] == "sem.scope" and parent["scope_version"] == "0.1"
    assert parent["status_code"] == STATUS_ERROR and parent["status_message"] == "described"
    assert parent["attributes"]["p"] is True
    assert parent["trace_state"] == "vendor=1", "trace state follows the parent"

    client = spans["native client"]
    assert seen["client"] == [client["trace_id"], client["span_id"]]
    assert client["kind"] == SPAN_KIND_CLIENT and client["parent_span_id"] == parent["span_id"]

    detached = spans["detached"]
    assert detached["parent_span_id"] == parent["span_id"] and detached["kind"] == 4  # PRODUCER
    assert detached["links"] == [{"trace_id": server["trace_id"], "span_id": server["span_id"], "attributes": {"link.kind": "server"}, "dropped_attributes_count": 0}]
    assert seen["inject_in_detached"]["traceparent"] == f"00-{detached['trace_id']}-{detached['span_id']}-01"

    failing = spans["failing"]
    assert failing["kind"] == 5 and failing["status_code"] == STATUS_ERROR  # CONSUMER
    assert failing["status_message"] == "RuntimeError: escaped"
    assert [e["attributes"]["exception.type"] for e in failing["events"] if e["name"] == "exception"] == ["RuntimeError"]

    renamed = spans["explicit-context-renamed"]
    assert renamed["parent_span_id"] == detached["span_id"], "an explicit context wins over the current span"
    assert renamed["kind"] == SPAN_KIND_CLIENT and renamed["status_code"] == STATUS_OK
    assert renamed["links"][0]["attributes"] == {"late": 1}

    assert spans["with-span-cm"]["parent_span_id"] == parent["span_id"]
    assert spans["orphan client"]["parent_span_id"] == "", "an attached empty context has no span"
    assert spans["orphan client"]["trace_id"] != server["trace_id"]
    assert seen["threads"] == {"copied": True, "fresh": True}
    assert seen["task"] is True and spans["in-task"]["parent_span_id"] == parent["span_id"]

    assert seen["baggage"] == {"tenant": "acme"}, "the request's incoming baggage"
    assert seen["inject_server"]["baggage"] == "tenant=acme"
    assert seen["inject_server"]["traceparent"] == f"00-{server['trace_id']}-{server['span_id']}-01"
    assert seen["inject_server"]["tracestate"] == "vendor=1"

    assert seen["remote_client"] == ["11111111111111111111111111111111"]
    assert spans["client under remote"]["parent_span_id"] == "2222222222222222"
    assert spans["under-remote"]["parent_span_id"] == "2222222222222222"
    assert seen["decorated"] is True and spans["decorated"]["parent_span_id"] == server["span_id"]
    assert seen["decorated_async"] is True and spans["decorated-async"]["parent_span_id"] == server["span_id"]
    for s in spans.values():
        if s["name"] not in ("GET /x", "native client", "client under remote", "orphan client"):
            assert s["kind"] != SPAN_KIND_SERVER
            assert s["scope_name"] == "sem.scope", s["name"]
    assert spans["in-task"]["kind"] == SPAN_KIND_INTERNAL


BAGGAGE_SCRIPT = r"""
import json
from opentelemetry import baggage, context, propagate, trace
from ferrotel import _native
server = _native.start_span("GET /b", kind=1, parent=("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, None, True))
# A span extracted from headers carries baggage (as the WSGI hook gives it); here through the API:
remote = propagate.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage": "tenant=acme"})
tok = context.attach(remote)
out = {"api": dict(baggage.get_all())}
c = _native.start_span("client", kind=2)
out["native_headers"] = dict(_native.inject_headers(c))
c.end()
context.detach(tok)
server.end()
print(json.dumps(out))
"""


def test_baggage_of_an_attached_context_reaches_ferrotels_client_spans(dist_dir, tmp_path):
    bin_dir = app_venv("api-newest")
    install = install_like_operator(dist_dir, tmp_path)
    out = run_in(bin_dir, BAGGAGE_SCRIPT, operator_env(install, "http://127.0.0.1:9", extra={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["api"] == {"tenant": "acme"}
    assert seen["native_headers"]["baggage"] == "tenant=acme"
    assert seen["native_headers"]["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
