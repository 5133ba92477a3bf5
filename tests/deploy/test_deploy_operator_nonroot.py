"""The OpenTelemetry Operator's contract, end to end, as the unprivileged user pods usually run as.

Reproduced on this machine: the image's files (the built tree, modes as built), the init container's
`cp -r /autoinstrumentation/. /otel-auto-instrumentation-python` run as `nobody` into an emptyDir-like
directory, then the app container -- PYTHONPATH = prefix : the app's own entry : suffix, and the
OTEL_* variables the webhook sets -- runs the unmodified test app under gunicorn as `nobody`. Spans
must reach the receiver from a worker owned by `nobody`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from support.http_client import http_get
from support.nonroot import (
    NonRootGunicorn,
    as_user,
    copy_test_app,
    make_readable,
    nobody,
    process_uid,
    python_for,
    vendor,
    world_readable_tmpdir,
)
from support.operator import INSTALL_DIR_NAME, RESOURCE_ATTRIBUTES, SERVICE_NAME, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER


@pytest.fixture
def pod():
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the unprivileged user")
    uid, gid = nobody()
    python, why = python_for(uid, gid)
    if python is None:
        pytest.skip(why)
    base = world_readable_tmpdir("ferrotel-pod-")
    apps = []
    try:
        yield base, uid, gid, python, apps
    finally:
        for app in apps:
            app.kill()
        shutil.rmtree(base, ignore_errors=True)


def test_operator_contract_as_non_root(pod, dist_dir, receiver):
    base, uid, gid, python, apps = pod
    # The image's /autoinstrumentation: the built tree with its modes (COPY keeps them).
    image = base / "image" / "autoinstrumentation"
    shutil.copytree(dist_dir, image, symlinks=True)
    # The init container, as the pod's user, into the shared emptyDir.
    volume = base / INSTALL_DIR_NAME
    volume.mkdir()
    os.chown(volume, uid, gid)
    copy = subprocess.run(
        ["cp", "-r", f"{image}/.", str(volume)], capture_output=True, text=True, timeout=60, cwd="/", **as_user(uid, gid)
    )
    assert copy.returncode == 0, f"the init container's cp failed as uid {uid}: files not readable by all?\n{copy.stderr}"
    assert (volume / "opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py").is_file()

    # The app container: its code, and its dependencies on its own PYTHONPATH entry.
    app_dir = copy_test_app(base / "app")
    deps = vendor(base / "app-deps", "flask", "gunicorn")
    make_readable(base / "app")
    make_readable(deps)
    env = operator_env(
        volume,
        receiver.http_endpoint,
        app_pythonpath=str(deps),
        extra={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    app = NonRootGunicorn(python, uid, gid, env, base / "gunicorn.log", app_dir)
    apps.append(app)
    app.start()
    try:
        assert http_get(app.port, "/").status == 200
        assert http_get(app.port, "/users/7").status == 200
        [worker] = app.worker_pids()
        spans = receiver.wait_for_spans(2, timeout=15, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
    except Exception:
        raise AssertionError(f"{app.log_text()}\n{receiver.summary()}")
    assert process_uid(app.pid) == uid and process_uid(worker) == uid
    assert {s["name"] for s in spans} == {"GET /", "GET /users/<int:uid>"}
    for span in spans:
        resource = span["resource"]
        assert resource["service.name"] == SERVICE_NAME
        assert resource["process.pid"] == worker
        for key, value in RESOURCE_ATTRIBUTES.items():
            assert resource[key] == value
    assert app.stop() == 0, app.log_text()
    assert "ferrotel:" not in app.log_text(), app.log_text()
