"""The injected bootstrap (sitecustomize) is safe in any Python process it lands in.

- Another agent instruments the process: ours stands down with one stderr line, loads nothing,
  and leaves sys.path and PYTHONPATH without our directories, so a child process does not load us.
  The other agents are stand-ins with the real layout and the real signals: the pure-Python
  OpenTelemetry agent's package directory (``opentelemetry/instrumentation/auto_instrumentation``
  with ``__init__.py``, its ``initialize()`` imported), ddtrace-run's ``ddtrace/bootstrap``
  sitecustomize that imports ``ddtrace.bootstrap.preload`` and then chains to the next one.
- A failure (unsupported interpreter, broken tree) stands down the same way.
- At start-up it starts no thread and opens no socket (it runs in pre-fork masters).
- The OpenTelemetry injector's layout (<prefix>/glibc on PYTHONPATH) works, and a stand-down also
  clears PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX so the injector does not re-add us.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.operator import PYTHONPATH_PREFIX, clean_env, install_like_operator, operator_env, operator_pythonpath
from support.otlp_receiver import SPAN_KIND_SERVER
from support.processes import APP_DIR, free_port, run_python

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import builtins, json, os, subprocess, sys
child = subprocess.run(
    [sys.executable, "-c", "import sys, builtins; print('ferrotel' in sys.modules, getattr(builtins, 'other_agent', None))"],
    capture_output=True, text=True,
)
print(json.dumps({
    "ferrotel": "ferrotel" in sys.modules,
    "other_agent": getattr(builtins, "other_agent", None),
    "sys_path": sys.path,
    "pythonpath": os.environ.get("PYTHONPATH", ""),
    "injector_prefix": os.environ.get("PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX"),
    "app_sitecustomize": os.environ.get("APP_SITECUSTOMIZE_RAN"),
    "child": child.stdout.split(),
    "child_stderr": child.stderr,
}))
"""

UPSTREAM_INIT = """\
# Stand-in for opentelemetry-instrumentation's auto_instrumentation package (same layout). Like the
# real initialize(), it removes its own directory from PYTHONPATH, then instruments.
import builtins
import os
from os.path import abspath, dirname, pathsep


def initialize():
    here = dirname(abspath(__file__))
    if "PYTHONPATH" in os.environ:
        os.environ["PYTHONPATH"] = pathsep.join(p for p in os.environ["PYTHONPATH"].split(pathsep) if abspath(p) != here)
    builtins.other_agent = "opentelemetry"
"""
UPSTREAM_SITECUSTOMIZE = "from opentelemetry.instrumentation.auto_instrumentation import initialize\n\ninitialize()\n"

DDTRACE_SITECUSTOMIZE = """\
# Stand-in for ddtrace/bootstrap/sitecustomize.py (ddtrace-run): preload, then chain to the next sitecustomize.
import os
import sys

import ddtrace.bootstrap.preload  # noqa: F401

bootstrap_dir = os.path.dirname(__file__)
if bootstrap_dir in sys.path:
    index = sys.path.index(bootstrap_dir)
    del sys.path[index]
    own = sys.modules.pop("sitecustomize", None)
    sys.modules.setdefault("ddtrace.bootstrap.sitecustomize", own)
    try:
        import sitecustomize  # noqa: F401
    except ImportError:
        sys.modules["sitecustomize"] = own
    finally:
        sys.path.insert(index, bootstrap_dir)
"""


def probe(env: dict, python: str | None = None) -> tuple[dict, str]:
    cmd = [python or sys.executable, "-c", PROBE]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def ferrotel_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ferrotel")]


def our_dirs(install: Path) -> set[str]:
    return {os.path.realpath(install / PYTHONPATH_PREFIX), os.path.realpath(install)}


def assert_stood_down(result: dict, stderr: str, install: Path, other: str | None):
    [line] = ferrotel_lines(stderr)
    assert "stands down" in line or "running without" in line, line
    if other:
        assert other in line, line
    assert result["ferrotel"] is False
    ours = our_dirs(install)
    assert not [p for p in result["sys_path"] if os.path.realpath(p or ".") in ours], result["sys_path"]
    assert not [p for p in result["pythonpath"].split(os.pathsep) if p and os.path.realpath(p) in ours], result["pythonpath"]
    # a Python child started afterwards does not load us (and says nothing)
    assert result["child"][0] == "False", result
    assert not ferrotel_lines(result["child_stderr"]), result["child_stderr"]


def fake_upstream(parent: Path) -> tuple[Path, Path]:
    """(package root, bootstrap dir) of a stand-in pure-Python OpenTelemetry agent."""
    root = parent / "otel-upstream"
    package = root / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(UPSTREAM_INIT)
    (package / "sitecustomize.py").write_text(UPSTREAM_SITECUSTOMIZE)
    return root, package


def fake_ddtrace(parent: Path) -> tuple[Path, Path]:
    """(package root, bootstrap dir) of a stand-in ddtrace."""
    root = parent / "dd"
    bootstrap = root / "ddtrace" / "bootstrap"
    bootstrap.mkdir(parents=True)
    (root / "ddtrace" / "__init__.py").write_text("")
    (bootstrap / "__init__.py").write_text("")
    (bootstrap / "preload.py").write_text("import builtins\nbuiltins.other_agent = 'ddtrace'\n")
    (bootstrap / "sitecustomize.py").write_text(DDTRACE_SITECUSTOMIZE)
    return root, bootstrap


def write_app_sitecustomize(directory: Path) -> Path:
    directory.mkdir()
    (directory / "sitecustomize.py").write_text("import os\nos.environ['APP_SITECUSTOMIZE_RAN'] = '1'\n")
    return directory


# --------------------------------------------------------------------------- another agent


def test_stands_down_for_the_opentelemetry_agent_next_on_the_path(operator_install, receiver, tmp_path):
    # The app's image runs the pure-Python agent (its bootstrap dir on the app's PYTHONPATH, as
    # opentelemetry-instrument sets it) and the Operator injects ours in front of it.
    root, bootstrap = fake_upstream(tmp_path)
    env = operator_env(operator_install, receiver.http_endpoint, app_pythonpath=f"{bootstrap}{os.pathsep}{root}")
    result, stderr = probe(env)
    assert_stood_down(result, stderr, operator_install, "OpenTelemetry Python auto-instrumentation")
    assert result["other_agent"] == "opentelemetry", "the other agent's sitecustomize still runs (chained)"
    assert result["child"][1] == "None", "nor does the child load the other agent (it removed itself too)"


def test_stands_down_when_the_opentelemetry_agent_is_already_imported(operator_install, receiver, tmp_path):
    # Loaded before any sitecustomize, from a .pth file of the interpreter's site-packages.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root, _ = fake_upstream(tmp_path)
    (root / "opentelemetry").rename(Path(purelib) / "opentelemetry")
    (Path(purelib) / "otel-auto.pth").write_text(
        "import opentelemetry.instrumentation.auto_instrumentation as auto; auto.initialize()\n"
    )
    app_site = write_app_sitecustomize(tmp_path / "app-site")
    env = operator_env(operator_install, receiver.http_endpoint, app_pythonpath=str(app_site))
    result, stderr = probe(env, python)
    assert_stood_down(result, stderr, operator_install, "OpenTelemetry Python auto-instrumentation")
    assert result["app_sitecustomize"] == "1", "the app's own sitecustomize still runs"


def test_stands_down_under_ddtrace_run(operator_install, receiver, tmp_path):
    # `ddtrace-run gunicorn app:app` in a pod the Operator injected: ddtrace's bootstrap dir first,
    # its sitecustomize chains to the next one -- ours.
    root, bootstrap = fake_ddtrace(tmp_path)
    env = operator_env(operator_install, receiver.http_endpoint)
    env["PYTHONPATH"] = os.pathsep.join([str(bootstrap), str(root), env["PYTHONPATH"]])
    result, stderr = probe(env)
    assert_stood_down(result, stderr, operator_install, "ddtrace")
    assert result["other_agent"] == "ddtrace"


def test_ddtrace_with_tracing_disabled_does_not_count(operator_install, receiver, tmp_path):
    root, bootstrap = fake_ddtrace(tmp_path)
    env = operator_env(operator_install, receiver.http_endpoint, extra={"DD_TRACE_ENABLED": "false"})
    env["PYTHONPATH"] = os.pathsep.join([str(bootstrap), str(root), env["PYTHONPATH"]])
    result, stderr = probe(env)
    assert result["ferrotel"] is True, stderr
    assert not ferrotel_lines(stderr), stderr


def test_no_other_agent_loads_us_quietly(operator_install, receiver):
    result, stderr = probe(operator_env(operator_install, receiver.http_endpoint))
    assert result["ferrotel"] is True and result["other_agent"] is None
    assert not ferrotel_lines(stderr), stderr
    assert result["child"][0] == "True", "children of an instrumented process are instrumented too"


# --------------------------------------------------------------------------- failures


def test_broken_tree_stands_down_for_children_too(dist_dir, receiver, tmp_path):
    install = install_like_operator(dist_dir, tmp_path)
    (install / "ferrotel" / "_native.abi3.so").unlink()
    result, stderr = probe(operator_env(install, receiver.http_endpoint))
    assert_stood_down(result, stderr, install, "could not load the agent")


def _pyenv_python(version: str) -> Path | None:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob(f"{version}.*/bin/python{version}")) if root.is_dir() else []
    return found[-1] if found else None


def test_unsupported_python_stands_down_for_children_too(operator_install, receiver):
    python = _pyenv_python("3.8")
    if python is None:
        pytest.skip("no CPython 3.8 (pyenv) on this machine")
    result, stderr = probe(operator_env(operator_install, receiver.http_endpoint), str(python))
    assert_stood_down(result, stderr, operator_install, "Python 3.8 is not supported")


# --------------------------------------------------------------------------- pre-fork safety


THREADS_AND_SOCKETS = r"""
import json, os, sys
links = []
for fd in os.listdir("/proc/self/fd"):
    try:
        links.append(os.readlink("/proc/self/fd/" + fd))
    except OSError:
        pass
names = []
for task in os.listdir("/proc/self/task"):
    try:
        with open("/proc/self/task/%s/comm" % task) as f:
            names.append(f.read().strip())
    except OSError:
        pass
print(json.dumps({
    "started": bool(getattr(sys.modules.get("ferrotel._bootstrap"), "_started", False)),
    "threads": len(os.listdir("/proc/self/task")),
    "thread_names": sorted(names),
    "sockets": [link for link in links if link.startswith("socket:")],
}))
"""


@pytest.mark.parametrize(
    "protocol, extra",
    [
        ("http/protobuf", {}),
        ("grpc", {}),
        ("http/protobuf", {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1"}),
    ],
    ids=["otlp-http", "otlp-grpc", "prometheus-metrics"],
)
def test_start_up_starts_no_thread_and_opens_no_socket(operator_install, receiver, protocol, extra):
    """Export threads and clients start lazily, after any fork. The one exception is opt-in: with
    the Prometheus exporter, the process that started the agent serves /metrics from start-up (an
    idle server must answer scrapes), from one thread that only waits in accept(); forked children
    close its socket (test_prometheus_listener_is_closed_in_forked_children)."""
    prometheus = bool(extra)
    extra = dict(extra, OTEL_EXPORTER_PROMETHEUS_PORT=str(free_port())) if extra else {}
    env = operator_env(operator_install, receiver.endpoint(protocol), protocol, extra=extra)
    result = run_python(THREADS_AND_SOCKETS, env)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert state["started"] is True, result.stderr
    if prometheus:
        assert state["threads"] == 2 and "ferrotel-promet" in state["thread_names"], state  # comm: 15 chars
        assert len(state["sockets"]) <= 1, state  # its listening socket, once bound
    else:
        assert state["threads"] == 1, state
        assert state["sockets"] == [], state


FORK_CHILD_SOCKETS = r"""
import json, os, sys, time, urllib.request
port = int(os.environ["OTEL_EXPORTER_PROMETHEUS_PORT"])
deadline = time.monotonic() + 10
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
def sockets():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if link.startswith("socket:"):
            out.append(link)
    return out
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, json.dumps({"threads": len(os.listdir("/proc/self/task")), "sockets": sockets()}).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(r, 65536))
served = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).status
print(json.dumps({"parent_sockets": sockets(), "child": child, "served_after_fork": served}))
"""


def test_prometheus_listener_is_closed_in_forked_children(operator_install, receiver):
    """The /metrics thread of the process that started the agent is absent in a forked child, and
    so is its listening socket (closed by a pthread_atfork child handler): a child that outlives
    its parent cannot hold the port with nobody answering. The parent keeps serving."""
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port())},
    )
    result = run_python(FORK_CHILD_SOCKETS, env)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["child"] == {"threads": 1, "sockets": []}, state
    assert state["served_after_fork"] == 200
    assert len(state["parent_sockets"]) == 1, state


# --------------------------------------------------------------------------- the OpenTelemetry injector


@pytest.fixture
def image_root(dist_dir, tmp_path) -> Path:
    """The image's file system as docker/layout.sh assembles it (the built tree as both libc flavours)."""
    out = tmp_path / "image"
    subprocess.run(["sh", str(REPO / "docker" / "layout.sh"), str(dist_dir), str(dist_dir), str(out)], check=True, timeout=60)
    return out


DRIVE_FLASK = r"""
import sys
from werkzeug.test import Client
from app import app
response = Client(app).get("/users/3")
assert response.status_code == 200, response.status_code
response.close()  # what a WSGI server does after sending the body: ends the span
print("ferrotel" in sys.modules)
"""


def test_injector_layout_instruments_the_app(image_root, receiver, tmp_path):
    # What the injector does for a glibc process: <prefix>/glibc first on PYTHONPATH.
    prefix = image_root / "injector"
    app_site = write_app_sitecustomize(tmp_path / "app-site")
    env = clean_env(
        PYTHONPATH=os.pathsep.join([str(prefix / "glibc"), str(APP_DIR), str(app_site)]),
        PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX=str(prefix),
        OTEL_SERVICE_NAME="injected",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        APP_SITECUSTOMIZE_MARKER=str(tmp_path / "marker"),
    )
    result = run_python(DRIVE_FLASK + "import os; print(os.environ.get('APP_SITECUSTOMIZE_RAN'))", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "1"], result.stderr
    assert not ferrotel_lines(result.stderr), result.stderr
    [span] = receiver.wait_for_spans(1, timeout=10, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
    assert span["name"] == "GET /users/<int:uid>"
    assert span["resource"]["service.name"] == "injected"


def test_injector_stand_down_clears_the_agent_path(image_root, receiver, tmp_path):
    prefix = image_root / "injector"
    root, bootstrap = fake_upstream(tmp_path)
    env = clean_env(
        PYTHONPATH=os.pathsep.join([str(prefix / "glibc"), str(bootstrap), str(root)]),
        PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX=str(prefix),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
    )
    result, stderr = probe(env)
    assert_stood_down(result, stderr, image_root / "autoinstrumentation", "OpenTelemetry")
    assert str(prefix / "glibc") not in result["pythonpath"].split(os.pathsep)
    assert result["injector_prefix"] == "", "the injector's way to disable Python for the children"


# --------------------------------------------------------------------------- our LD_PRELOAD library


def test_stand_down_turns_off_our_preload_for_children(operator_install, receiver, tmp_path):
    # Injected by libferrotel_preload.so (it prepends our bootstrap dir in every CPython process it
    # is preloaded into): after a stand-down, children must not get us back from it.
    preload = operator_install / "libferrotel_preload.so"
    assert preload.is_file(), "make dist ships libferrotel_preload.so in the tree"
    root, bootstrap = fake_upstream(tmp_path)
    env = clean_env(
        LD_PRELOAD=str(preload),
        PYTHONPATH=os.pathsep.join([str(bootstrap), str(root)]),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
    )
    result, stderr = probe(env)
    assert_stood_down(result, stderr, operator_install, "OpenTelemetry Python auto-instrumentation")
    assert result["other_agent"] == "opentelemetry"
