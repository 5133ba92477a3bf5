"""Real CPython under LD_PRELOAD=libferrotel_preload.so, with no PYTHONPATH set by the test:

- the unmodified Flask test app under gunicorn is traced end to end (a SERVER span at the receiver);
- OTEL_SDK_DISABLED=true, `-I` and `-E` load nothing of ours (checked in sys.modules);
- a Python child of a traced Python is traced too, with our directory once in its PYTHONPATH;
- the application's own PYTHONPATH and sitecustomize still work.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from preload_helpers import base_env, run
from support.http_client import http_get
from support.otlp_receiver import SPAN_KIND_SERVER

# Prints, as JSON: PYTHONPATH, whether the agent package is loaded, and every loaded module whose
# file lies in the agent tree.
PROBE = textwrap.dedent(
    """
    import json, os, sys
    tree = os.path.realpath(sys.argv[1])
    ours = sorted(
        name for name, m in list(sys.modules.items())
        if isinstance(getattr(m, "__file__", None), str) and os.path.realpath(m.__file__).startswith(tree + os.sep)
    )
    print(json.dumps({
        "pythonpath": os.environ.get("PYTHONPATH"),
        "ferrotel": "ferrotel" in sys.modules,
        "ours": ours,
        "marker": os.environ.get("APP_SITECUSTOMIZE_RAN"),
        "sys_path_has_agent": any(p.endswith("auto_instrumentation") for p in sys.path),
    }))
    """
)


def probe(args: list, env: dict, dist_dir) -> dict:
    result = run([sys.executable, *args, "-c", PROBE, str(dist_dir)], env)
    assert result.returncode == 0, result.stderr.decode()
    return {**json.loads(result.stdout), "stderr": result.stderr.decode()}


def preload_env(lib, **overrides) -> dict:
    # No exporter endpoint is reachable in these probes: keep the agent from exporting anything.
    env = base_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env.update(overrides)
    env["LD_PRELOAD"] = str(lib)
    return env


def test_interpreter_is_what_the_library_detects():
    """The venv's python is a symlink; /proc/self/exe (what the library reads) is the real binary."""
    real = os.path.realpath(sys.executable)
    assert os.path.basename(real).startswith("python3"), real


def test_python_under_preload_loads_the_agent(preload_lib, dist_dir, agent_dir):
    seen = probe([], preload_env(preload_lib), dist_dir)
    assert seen["pythonpath"] == agent_dir
    assert seen["ferrotel"] and "ferrotel" in seen["ours"] and "sitecustomize" in seen["ours"], seen
    assert "ferrotel-preload" not in seen["stderr"]


def test_python_without_preload_loads_nothing(dist_dir):
    env = base_env()
    seen = probe([], env, dist_dir)
    assert (seen["ferrotel"], seen["ours"], seen["pythonpath"]) == (False, [], None)


def test_otel_sdk_disabled_loads_nothing(preload_lib, dist_dir):
    seen = probe([], preload_env(preload_lib, OTEL_SDK_DISABLED="true"), dist_dir)
    assert (seen["ferrotel"], seen["ours"]) == (False, []), seen
    assert seen["pythonpath"] is None, "the library should not even touch PYTHONPATH"


@pytest.mark.parametrize("flag", ["-I", "-E"])
def test_isolated_or_ignore_environment_loads_nothing(preload_lib, dist_dir, flag):
    """-I/-E make Python ignore PYTHONPATH: the bootstrap is never found, nothing of ours is imported."""
    seen = probe([flag], preload_env(preload_lib), dist_dir)
    assert (seen["ferrotel"], seen["ours"], seen["sys_path_has_agent"]) == (False, [], False), seen


def test_child_python_gets_the_directory_once(preload_lib, dist_dir, agent_dir):
    """A traced Python starting another Python (environment inherited, LD_PRELOAD included)."""
    parent = textwrap.dedent(
        """
        import json, os, subprocess, sys
        child = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], capture_output=True, text=True)
        print(json.dumps({"parent": os.environ.get("PYTHONPATH"), "parent_ferrotel": "ferrotel" in sys.modules,
                          "child": child.stdout, "child_stderr": child.stderr, "rc": child.returncode}))
        """
    )
    result = run([sys.executable, "-c", parent, PROBE, str(dist_dir)], preload_env(preload_lib, PYTHONPATH="/app/lib"))
    assert result.returncode == 0, result.stderr.decode()
    out = json.loads(result.stdout)
    assert out["rc"] == 0, out["child_stderr"]
    child = json.loads(out["child"])
    assert out["parent"] == f"{agent_dir}:/app/lib" and out["parent_ferrotel"]
    assert child["pythonpath"] == f"{agent_dir}:/app/lib", "the directory must not be added twice"
    assert child["pythonpath"].split(":").count(agent_dir) == 1
    assert child["ferrotel"], child


def test_app_pythonpath_and_sitecustomize_still_work(preload_lib, dist_dir, agent_dir, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "sitecustomize.py").write_text("import os\nos.environ['APP_SITECUSTOMIZE_RAN'] = 'yes'\n")
    (app / "applib.py").write_text("VALUE = 42\n")
    seen = probe([], preload_env(preload_lib, PYTHONPATH=str(app)), dist_dir)
    assert seen["pythonpath"] == f"{agent_dir}:{app}"
    assert seen["ferrotel"] and seen["marker"] == "yes", seen


def test_flask_app_traced_end_to_end(preload_lib, receiver, gunicorn):
    """gunicorn + the unmodified Flask app, instrumented by nothing but LD_PRELOAD."""
    env = base_env(
        LD_PRELOAD=str(preload_lib),
        OTEL_SERVICE_NAME="preload-flask",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    assert "PYTHONPATH" not in env
    app = gunicorn.start(env)
    response = http_get(app.port, "/users/7")
    assert (response.status, json.loads(response.body)) == (200, {"uid": 7})
    spans = receiver.wait_for_spans(
        1,
        timeout=30,
        predicate=lambda s: s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("url.path") == "/users/7",
    )
    span = spans[0]
    assert span["resource"].get("service.name") == "preload-flask", span["resource"]
    assert app.stop() == 0
    assert "ferrotel-preload" not in app.log_text()
