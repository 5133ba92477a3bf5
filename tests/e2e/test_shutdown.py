"""End-to-end: how an instrumented process exits (no collector, a hung collector) and forks.

The wall-time bounds are functional (an unreachable collector must not hold up exit for longer
than the configured export timeout, plus a generous margin for a slow CI machine), not
performance claims.
"""

from __future__ import annotations

import pytest

from support.operator import install_like_operator, operator_env
from support.processes import free_port
from support.tcp_tools import SilentServer
from support.wsgi_driver import run_driver, run_requests

PROTOCOLS = ["http/protobuf", "grpc"]
PROTOCOL_IDS = ["http", "grpc"]

EXPORT_TIMEOUT_MS = 1000
EXIT_BOUND_S = EXPORT_TIMEOUT_MS / 1000 + 10  # the export timeout plus a generous margin


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("shutdown-install"))


def assert_clean_exit(run):
    assert run.returncode == 0, run.describe()
    assert run.report["responses"] == [{"status": 200, "body": "hello"}], run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    assert run.elapsed < EXIT_BOUND_S, f"exit took {run.elapsed:.1f}s\n{run.describe()}"


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_exit_without_collector(install, protocol):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    # traces only, so that every diagnostic line is about the one failed span export
    extra = {"OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_MS), "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    env = operator_env(install, endpoint, protocol, extra=extra)
    run = run_requests(env, ["/"])
    assert_clean_exit(run)
    assert len(run.agent_lines) <= 1, run.describe()
    # the one line, if any, is about the failed export; nothing else on stderr
    assert [line for line in run.stderr.splitlines() if line.strip()] == run.agent_lines, run.describe()
    for line in run.agent_lines:
        assert "export" in line and ("fail" in line or "error" in line), line


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_exit_with_collector_that_never_answers(install, protocol):
    with SilentServer() as silent:
        env = operator_env(install, silent.endpoint, protocol, extra={"OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_MS)})
        run = run_requests(env, ["/"])
        assert silent.connections >= 1, "the exporter never connected: the test proves nothing"
    assert_clean_exit(run)
    assert [line for line in run.stderr.splitlines() if line.strip()] == run.agent_lines, run.describe()


FORK_MAIN = """
request("/users/1")  # parent, before the fork: the span is queued in the parent's pipeline
child = os.fork()
if child == 0:
    request("/users/2")
    report({"role": "child", "pid": os.getpid()})
    sys.exit(0)  # a normal exit: the child's atexit flush runs
_, status = os.waitpid(child, 0)
request("/users/3")
report({"role": "parent", "pid": os.getpid(), "child": child, "child_status": status})
"""


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTOCOL_IDS)
def test_fork_after_start(install, receiver, protocol):
    # A schedule delay beyond the test: the parent's first span is still queued when it forks, and
    # every span is exported by its own process's exit flush.
    env = operator_env(install, receiver.endpoint(protocol), protocol, extra={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    run = run_driver(env, FORK_MAIN)
    assert run.returncode == 0, run.describe()
    reports = {r["role"]: r for r in run.reports}
    assert set(reports) == {"parent", "child"}, run.describe()
    parent_pid, child_pid = reports["parent"]["pid"], reports["child"]["pid"]
    assert reports["parent"]["child"] == child_pid and reports["parent"]["child_status"] == 0
    assert parent_pid != child_pid
    assert "Traceback" not in run.stderr and run.agent_lines == [], run.describe()

    spans = receiver.wait_for_spans(3, timeout=5)
    pids = {s["attributes"]["url.path"]: s["resource"]["process.pid"] for s in spans}
    assert len(spans) == 3, receiver.summary()  # the child did not re-export the parent's queued span
    assert pids == {"/users/1": parent_pid, "/users/2": child_pid, "/users/3": parent_pid}, receiver.summary()
    assert len({s["span_id"] for s in spans}) == 3
    # the first ids each side draws after the fork differ (the generator is reseeded in the child)
    assert len({s["trace_id"] for s in spans}) == 3
