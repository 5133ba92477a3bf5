"""How instrumented processes leave: through ``os._exit`` (multiprocessing children, forked
children), and a clean exit while the collector misbehaves.

``os._exit`` skips ``atexit``, so the agent's normal exit flush never runs: the spans a
multiprocessing child made are still queued when it leaves. The schedule delay is 10 minutes in
these tests, so only an exit flush can deliver anything.

The exit-time bounds complement tests/e2e/test_shutdown.py (no collector, a collector that never
answers, one queued span): here the collector answers slowly or with 503 + Retry-After (over gRPC:
UNAVAILABLE / RESOURCE_EXHAUSTED with a RetryInfo), and many batches are queued. A clean exit must take at most the export timeout (plus start-up and a margin),
never one timeout per batch or per retry.
"""

from __future__ import annotations

import time

import pytest

from support.fault_collector import Fault, fault_collector
from support.operator import operator_env
from support.otlp_receiver import Receiver
from support.wsgi_driver import run_driver

QUEUED_UNTIL_EXIT = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_METRICS_EXPORTER": "none"}


MP_REQUEST_MAIN = r"""
import multiprocessing

def child_request():
    request("/users/77")          # a traced request through the in-process driver

def child_span():
    import ferrotel._native as native
    native.start_span("mp-child-span").end()

ctx = multiprocessing.get_context("fork")
pids = {}
for name, target in (("request", child_request), ("span", child_span)):
    p = ctx.Process(target=target)
    p.start()
    p.join(30)
    pids[name] = (p.pid, p.exitcode)
request("/users/1")               # the parent's own span (normal exit: atexit flush)
report({"parent": os.getpid(), "children": pids})
"""


def test_multiprocessing_children_flush(rel_install):
    """multiprocessing (fork context) children leave through os._exit: their spans still arrive."""
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra=QUEUED_UNTIL_EXIT)
        run = run_driver(env, MP_REQUEST_MAIN)
        assert run.returncode == 0, run.describe()
        rep = run.report
        assert rep["children"] and all(code == 0 for _, code in rep["children"].values()), rep
        try:
            rx.wait_for_spans(3, timeout=5)
        except AssertionError:
            pass
        spans = rx.spans()
    by_pid = {}
    for s in spans:
        by_pid.setdefault(s["resource"]["process.pid"], []).append(s["attributes"].get("url.path") or s["name"])
    request_pid, span_pid = rep["children"]["request"][0], rep["children"]["span"][0]
    assert by_pid.get(rep["parent"]) == ["/users/1"], f"parent's spans: {by_pid}"
    problems = []
    if by_pid.get(request_pid) != ["/users/77"]:
        problems.append(f"the child that served a request (pid {request_pid}) exported {by_pid.get(request_pid)}")
    if by_pid.get(span_pid) != ["mp-child-span"]:
        problems.append(f"the child that made a span (pid {span_pid}) exported {by_pid.get(span_pid)}")
    assert problems == [], "spans lost when a multiprocessing child left through os._exit:\n" + "\n".join(problems)


OS_EXIT_MAIN = r"""
child = os.fork()
if child == 0:
    request("/users/5")
    os._exit(0)                   # no atexit, no interpreter finalisation
_, status = os.waitpid(child, 0)
report({"parent": os.getpid(), "child": child, "status": status})
"""


def test_forked_child_os_exit_flushes(rel_install):
    with Receiver() as rx:
        env = operator_env(rel_install, rx.http_endpoint, extra=QUEUED_UNTIL_EXIT)
        run = run_driver(env, OS_EXIT_MAIN)
        assert run.returncode == 0, run.describe()
        rep = run.report
        assert rep["status"] == 0
        try:
            spans = rx.wait_for_spans(1, timeout=5)
        except AssertionError:
            spans = rx.spans()
    pids = {s["resource"]["process.pid"]: s["attributes"].get("url.path") for s in spans}
    assert pids == {rep["child"]: "/users/5"}, f"a forked child leaving through os._exit lost its span: got {pids}"


# ---------------------------------------------------------------------------------------------
# A clean exit while the collector is slow or refuses with Retry-After, many batches queued
# ---------------------------------------------------------------------------------------------

EXPORT_TIMEOUT_MS = 1000
EXIT_MARGIN_S = 2.5  # scheduling noise on a loaded 2-core machine; one timeout per batch would be 10+ s

MANY_SPANS_MAIN = r"""
import time
native = sys.modules["ferrotel._native"]
for i in range(6000):             # 12 batches of 512
    native.start_span("queued", attributes={"i": i}).end()
request("/")
report({"responses": [], "end_of_main": time.monotonic()})
"""


@pytest.mark.parametrize(
    "protocol,fault",
    [
        pytest.param("http/protobuf", Fault(delay=5.0), id="slow-5s"),
        pytest.param("http/protobuf", Fault(status=503, retry_after="1"), id="503-retry-after-1"),
        pytest.param("http/protobuf", Fault(status=429, retry_after="30"), id="429-retry-after-30"),
        pytest.param("grpc", Fault(delay=5.0), id="grpc-slow-5s"),
        pytest.param("grpc", Fault(grpc_code="UNAVAILABLE", retry_after="1"), id="grpc-UNAVAILABLE-retry-info-1"),
        pytest.param("grpc", Fault(grpc_code="RESOURCE_EXHAUSTED", retry_after="30"), id="grpc-RESOURCE_EXHAUSTED-retry-info-30"),
    ],
)
def test_clean_exit_bounded_with_many_batches_queued(rel_install, protocol, fault):
    collector = fault_collector(protocol).start()
    try:
        collector.set_fault(fault)
        extra = {
            "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_MS),
            "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_METRICS_EXPORTER": "none",
        }
        env = operator_env(rel_install, collector.endpoint(protocol), protocol, extra=extra)
        run = run_driver(env, MANY_SPANS_MAIN, timeout=120)
        exited = time.monotonic()
    finally:
        collector.kill()
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    exit_took = exited - run.report["end_of_main"]
    assert collector.trace_attempts(), "the exporter never reached the collector: the test proves nothing"
    assert exit_took < EXPORT_TIMEOUT_MS / 1000 + EXIT_MARGIN_S, (
        f"exit took {exit_took:.1f}s with 12 batches queued and the collector {fault} "
        f"(export timeout {EXPORT_TIMEOUT_MS} ms); {len(collector.trace_attempts())} export attempts\n{run.describe()}"
    )
