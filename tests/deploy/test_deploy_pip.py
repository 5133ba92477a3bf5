"""The wheel as a complete way in: `pip install` it into a fresh virtualenv, then
`ferrotel-run gunicorn -w 2 app:app` is traced end to end, as `pip install ddtrace` + `ddtrace-run`
and `opentelemetry-instrument` are. Also: installing it starts nothing by itself (no .pth file, no
import at interpreter start-up), and the wheel's metadata and platform tag are publishable.

The wheel is the one `make dist` keeps in dist/wheels/. Flask and gunicorn come from the package
index (pip's cache after the first run), at the versions of the test environment."""

from __future__ import annotations

import email.parser
import json
import os
import re
import signal
import subprocess
import sys
import time
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from support.http_client import http_get
from support.operator import clean_env
from support.otlp_receiver import SPAN_KIND_SERVER
from support.processes import free_port

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "tests" / "app"


def wheel_path(dist_dir: Path) -> Path:
    wheels = sorted((dist_dir.parent / "wheels").glob("ferrotel-*.whl"))
    if not wheels:
        pytest.fail(f"no wheel in {dist_dir.parent / 'wheels'}: `make dist` keeps the wheel it builds there")
    return wheels[-1]


@pytest.fixture(scope="module")
def wheel(dist_dir) -> Path:
    return wheel_path(dist_dir)


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtualenv with the wheel, Flask and gunicorn installed by pip, nothing else."""
    root = tmp_path_factory.mktemp("pip-venv") / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(root)
    pins = [f"{name}=={metadata.version(name)}" for name in ("flask", "gunicorn")]
    result = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel), *pins],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0 and re.search(r"(?i)(connection|network|resolve|No matching distribution)", result.stderr):
        pytest.skip(f"Flask and gunicorn could not be installed from the package index: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stderr
    return root


def site_packages(root: Path) -> Path:
    return next((root / "lib").glob("python3*/site-packages"))


def test_installing_starts_nothing(fresh_venv):
    site = site_packages(fresh_venv)
    pth = [p.name for p in site.glob("*.pth") if "ferrotel" in p.read_text() or "ferrotel" in p.name]
    assert pth == [], "no .pth file may start the agent in every process of the venv"
    assert not (site / "sitecustomize.py").exists()
    code = "import sys; print(sorted(m for m in sys.modules if m.startswith('ferrotel')))"
    result = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=clean_env())
    assert result.stdout.strip() == "[]", result.stderr
    # The bootstrap is inside the package, where only ferrotel-run puts it on PYTHONPATH.
    boot = site / "ferrotel" / "_boot" / "sitecustomize.py"
    assert boot.is_file() and not boot.is_symlink()
    assert boot.read_text() == (REPO / "python" / "sitecustomize.py").read_text()


def test_pip_ferrotel_run_traces_gunicorn_with_two_workers(fresh_venv, receiver, tmp_path):
    port = free_port()
    env = clean_env(
        OTEL_SERVICE_NAME="pip-installed",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="100",
        PATH=f"{fresh_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    )
    env.pop("VIRTUAL_ENV", None)
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["ferrotel-run", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
            cwd=APP_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http_get(port, "/")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gunicorn did not come up under ferrotel-run:\n" + log.read_text())
                time.sleep(0.2)
        for uid in range(10):
            http_get(port, f"/users/{uid}")
        spans = receiver.wait_for_spans(11, timeout=30, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "ferrotel:" not in log.read_text(), log.read_text()
    users = [s for s in spans if s["attributes"].get("http.route") == "/users/<int:uid>"]
    assert len(users) == 10, [s["name"] for s in spans]
    assert {s["name"] for s in users} == {"GET /users/<int:uid>"}
    assert {s["resource"]["service.name"] for s in spans} == {"pip-installed"}
    # The spans come from gunicorn's workers (not the master), each with its own process.pid.
    pids = {s["resource"]["process.pid"] for s in spans}
    assert proc.pid not in pids and pids


def test_pip_ferrotel_run_version_and_help(fresh_venv, wheel):
    version = wheel.name.split("-")[1]
    run = subprocess.run([str(fresh_venv / "bin" / "ferrotel-run"), "--version"], capture_output=True, text=True, env=clean_env())
    assert (run.returncode, run.stdout) == (0, f"ferrotel-run {version}\n")


def test_python_api_start_in_code(fresh_venv, tmp_path):
    """`import ferrotel; ferrotel.start()` at the top of the app, for apps that start it in code."""
    script = tmp_path / "start_in_code.py"
    script.write_text(
        "import ferrotel\n"
        "assert ferrotel.start() is True\n"
        "from flask import Flask\n"
        "app = Flask('incode')\n"
        "@app.route('/items/<int:n>')\n"
        "def item(n):\n"
        "    return str(n)\n"
        "resp = app.test_client().get('/items/3')\n"
        "resp.close()\n"
    )
    env = clean_env(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    run = subprocess.run([str(fresh_venv / "bin" / "python"), str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    spans = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert [s["name"] for s in spans] == ["GET /items/<int:n>"], run.stderr


# --------------------------------------------------------------------------- the wheel itself


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        tags = next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL"))
        parser = email.parser.Parser()
        return parser.parsestr(zf.read(info).decode()), parser.parsestr(zf.read(tags).decode()), zf.namelist()


def test_wheel_metadata_is_publishable(wheel):
    meta, tags, names = wheel_metadata(wheel)
    assert meta["Name"] == "ferrotel"
    assert meta["Requires-Python"] == ">=3.9"
    assert meta["Summary"]
    assert "Apache-2.0" in (meta.get("License") or meta.get("License-Expression") or "")
    assert meta["Description-Content-Type"].startswith("text/markdown") and "ferrotel" in meta.get_payload()
    assert "Programming Language :: Python :: Implementation :: CPython" in meta.get_all("Classifier")
    assert meta.get_all("Requires-Dist") is None, "the agent brings no Python dependency"
    assert tags["Root-Is-Purelib"] == "false"
    (tag,) = tags.get_all("Tag")
    python, abi, platform = tag.split("-")
    assert (python, abi) == ("cp39", "abi3")
    assert re.fullmatch(r"(manylinux_2_\d+|musllinux_1_\d+)_x86_64(\.\w+)*", platform), platform
    assert "ferrotel/_boot/sitecustomize.py" in names
    assert "ferrotel/config.example.toml" in names
    assert not [n for n in names if n.endswith(".pth")]
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)


def test_wheel_platform_tag_covers_the_glibc_it_needs(wheel, tmp_path):
    """What `auditwheel show` checks: the glibc symbol versions the extension needs are within its
    manylinux tag (manylinux_2_X: glibc 2.X or newer)."""
    _, tags, _ = wheel_metadata(wheel)
    platform = tags["Tag"].split("-")[2]
    match = re.match(r"manylinux_2_(\d+)_", platform)
    if match is None:
        pytest.skip(f"not a manylinux wheel ({platform})")
    with zipfile.ZipFile(wheel) as zf:
        so = next(n for n in zf.namelist() if re.search(r"ferrotel/_native\.abi3\.so$", n))
        zf.extract(so, tmp_path)
    dump = subprocess.run(["objdump", "-T", str(tmp_path / so)], capture_output=True, text=True)
    if dump.returncode != 0:
        pytest.skip(f"objdump could not read the extension: {dump.stderr.strip()}")
    needed = {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", dump.stdout)}
    assert needed, "the extension links against glibc"
    newest = max(needed)
    assert newest[:2] <= (2, int(match.group(1))), f"needs GLIBC_{'.'.join(map(str, newest))} but is tagged {platform}"
    libpython = subprocess.run(["readelf", "-d", str(tmp_path / so)], capture_output=True, text=True).stdout
    assert "libpython" not in libpython, "an extension module must not link libpython"
