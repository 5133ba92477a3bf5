"""Reproduce what the OpenTelemetry Operator does to a Python pod.

The operator's init container runs ``cp -r /autoinstrumentation/. /otel-auto-instrumentation-python``
and the app container gets ``PYTHONPATH=<prefix>[:<app PYTHONPATH>]:<suffix>`` plus OTEL_* variables.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

INSTALL_DIR_NAME = "otel-auto-instrumentation-python"
PYTHONPATH_PREFIX = "opentelemetry/instrumentation/auto_instrumentation"  # relative to the install dir

SERVICE_NAME = "flask-test-app"
RESOURCE_ATTRIBUTES = {
    "k8s.namespace.name": "default",
    "k8s.pod.name": "test-pod-abc",
    "k8s.container.name": "app",
    "service.instance.id": "default.test-pod-abc.app",
}


def install_like_operator(dist_dir: Path, parent: Path) -> Path:
    """Copy the dist tree into ``<parent>/otel-auto-instrumentation-python`` (the init container's cp -r)."""
    dest = Path(parent) / INSTALL_DIR_NAME
    shutil.copytree(dist_dir, dest, symlinks=True)
    return dest


def operator_pythonpath(install_dir: Path, app_pythonpath: str | None = None) -> str:
    """``prefix:suffix``, or ``prefix:<app PYTHONPATH>:suffix`` when the app sets its own."""
    parts = [str(Path(install_dir) / PYTHONPATH_PREFIX)]
    if app_pythonpath:
        parts.append(app_pythonpath)
    parts.append(str(install_dir))
    return ":".join(parts)


def clean_env(**overrides: str) -> dict:
    """The test runner's environment without OTEL_* variables or PYTHONPATH, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env.update(overrides)
    return env


def operator_env(
    install_dir: Path,
    endpoint: str,
    protocol: str = "http/protobuf",
    app_pythonpath: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Full process environment of an operator-instrumented app container.

    ``extra`` is applied last (app-level env, or overrides such as OTEL_BSP_SCHEDULE_DELAY).
    """
    env = clean_env(
        PYTHONPATH=operator_pythonpath(install_dir, app_pythonpath),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME=SERVICE_NAME,
        OTEL_RESOURCE_ATTRIBUTES=",".join(f"{k}={v}" for k, v in RESOURCE_ATTRIBUTES.items()),
        OTEL_PROPAGATORS="tracecontext,baggage",
        OTEL_TRACES_SAMPLER="parentbased_always_on",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    env.update(extra or {})
    return env
