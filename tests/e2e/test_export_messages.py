"""What the agent says when export fails: one line naming the target once, each cause once (ureq's
errors used to read `<url>: Network Error: Network Error: ...`)."""

from __future__ import annotations

import re

import pytest

from support.operator import install_like_operator, operator_env
from support.processes import free_port
from support.wsgi_driver import run_requests


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("messages-install"))


def test_refused_export_reads_once(install):
    port = free_port()  # nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    env = operator_env(
        install,
        endpoint,
        extra={"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_TIMEOUT": "500", "OTEL_BSP_SCHEDULE_DELAY": "50"},
    )
    run = run_requests(env, ["/"])
    assert run.returncode == 0, run.describe()
    failed = [l for l in run.agent_lines if " failed: " in l]
    assert len(failed) == 1, run.describe()
    line = failed[0]
    assert line.startswith(f"ferrotel: export to OTLP/HTTP {endpoint}/v1/traces failed: "), line
    assert line.count(endpoint) == 1, line
    cause = line.split(" failed: ", 1)[1]
    parts = [p.strip().lower() for p in cause.split(": ")]
    assert all(a != b for a, b in zip(parts, parts[1:])), f"repeated text: {line}"
    assert re.search(r"(?i)refused", cause), line
