"""One built tree (one abi3 `.so`) loaded by every CPython 3.9–3.13 on this machine produces spans;
an unsupported interpreter (3.8) runs the app untraced with one warning line.

Interpreters come from pyenv (`$PYENV_ROOT`, default ~/.pyenv); a version that is not installed is
skipped with that reason. The app is a plain WSGI function wrapped by the bootstrap-started agent,
driven in-process, so no third-party package is needed under any interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support.operator import operator_pythonpath, clean_env

SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]
UNSUPPORTED = ["3.8"]

DRIVER = r"""
import sys
from wsgiref.util import setup_testing_defaults
import ferrotel.wsgi

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

wrapped = ferrotel.wsgi.Middleware(app)
environ = {"PATH_INFO": "/hello", "QUERY_STRING": "a=1", "HTTP_USER_AGENT": "matrix"}
setup_testing_defaults(environ)
body = wrapped(environ, lambda status, headers, exc_info=None: None)
assert b"".join(body) == b"ok"
body.close()
print("python", "%d.%d" % sys.version_info[:2])
"""


def find_python(version: str) -> Path | None:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(root.glob(f"{version}.*/bin/python{version}")) if root.is_dir() else []
    return candidates[-1] if candidates else None


def run(python: Path, install: Path, code: str) -> subprocess.CompletedProcess:
    env = clean_env(
        PYTHONPATH=operator_pythonpath(install),
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="matrix",
        PYTHONNOUSERSITE="1",
    )
    return subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def spans_in(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("version", SUPPORTED)
def test_supported_interpreter_produces_spans(version, operator_install):
    python = find_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed on this machine (pyenv)")
    result = run(python, operator_install, DRIVER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", version]
    [span] = spans_in(result.stderr)
    assert span["name"] == "GET"
    assert span["kind"] == "SERVER"
    assert span["attributes"]["url.path"] == "/hello"
    assert span["attributes"]["url.query"] == "a=1"
    assert span["attributes"]["http.response.status_code"] == 200
    assert span["resource"]["process.runtime.version"].startswith(version + ".")
    assert span["resource"]["service.name"] == "matrix"


@pytest.mark.parametrize("version", UNSUPPORTED)
def test_unsupported_interpreter_runs_untraced_with_one_warning(version, operator_install):
    python = find_python(version)
    if python is None:
        pytest.skip(f"CPython {version} is not installed on this machine (pyenv)")
    code = "import sys; print('ferrotel' in sys.modules, 'ok')"
    result = run(python, operator_install, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "ok"]
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("ferrotel:") and "not supported" in lines[0], result.stderr
