"""`FERROTEL_CONFIG`: the example file the package ships (``ferrotel/config.example.toml``, in the
wheel and in the agent tree) loads without a diagnostic and takes effect; a line TOML rejects (the
usual mistake: text without quotes) is named with its line number and fix, and the rest of the file
still applies. Spans go to the console exporter."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.operator import install_like_operator, operator_env
from support.wsgi_driver import run_requests

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("config-file-install"))


def env_for(install, config: Path, **extra) -> dict:
    env = operator_env(install, "http://127.0.0.1:9", extra={"FERROTEL_CONFIG": str(config), **extra})
    # The file is to decide these: the environment would win over it.
    for key in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_PROPAGATORS", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(key, None)
    return env


def test_the_example_is_shipped(install):
    shipped = install / "ferrotel" / "config.example.toml"
    assert shipped.read_text() == (REPO / "python" / "ferrotel" / "config.example.toml").read_text()


def test_the_example_loads_and_applies(install):
    # The example sends to a collector and a Prometheus port that do not exist here: the exporters
    # come from the environment (which wins), the rest from the file.
    env = env_for(
        install,
        install / "ferrotel" / "config.example.toml",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_TRACES_SAMPLER_ARG="1.0",  # keep every trace, so the spans can be checked
    )
    run = run_requests(env, ["/users/1", "/"])
    assert run.returncode == 0, run.describe()
    assert run.agent_lines == [], "a valid file prints no diagnostics"
    spans = run.console_spans
    assert len(spans) == 2, run.describe()
    for span in spans:
        assert span["resource"]["service.name"] == "shop"
        assert span["resource"]["deployment.environment.name"] == "production"
        assert span["attributes"]["team"] == "payments"  # FERROTEL_SPAN_ATTRIBUTES


def test_an_unquoted_value_names_the_line_and_the_fix(install, tmp_path):
    config = tmp_path / "ferrotel.toml"
    config.write_text('OTEL_SERVICE_NAME = "shop"\nOTEL_TRACES_SAMPLER = always_on\nFERROTEL_SPAN_ATTRIBUTES = { team = "payments" }\n')
    env = env_for(install, config, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    run = run_requests(env, ["/"])
    assert run.returncode == 0, run.describe()
    assert len(run.agent_lines) == 1, run.describe()
    line = run.agent_lines[0]
    assert "line 2: `OTEL_TRACES_SAMPLER = always_on`" in line, line
    assert 'OTEL_TRACES_SAMPLER = "always_on"' in line, line
    # The rest of the file still applies.
    (span,) = run.console_spans
    assert span["resource"]["service.name"] == "shop"
    assert span["attributes"]["team"] == "payments"
