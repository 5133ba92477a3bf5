"""Shared fixtures for the ferrotel Python test-suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:  # make `support` importable whatever pytest's import mode
    sys.path.insert(0, str(TESTS_DIR))

from support.operator import install_like_operator  # noqa: E402
from support.otlp_receiver import Receiver  # noqa: E402
from support.processes import GunicornLauncher  # noqa: E402

pytest_plugins = ["support.db_fixtures"]  # real database servers, one of each per session


@pytest.fixture(scope="session")
def dist_dir() -> Path:
    """The built agent tree (what the operator image ships under /autoinstrumentation)."""
    path = Path(os.environ.get("FERROTEL_DIST", REPO_DIR / "dist" / "autoinstrumentation"))
    if not path.is_dir():
        pytest.fail(f"agent distribution {path} not found: run `make dist` first (or set FERROTEL_DIST)")
    return path


@pytest.fixture
def operator_install(dist_dir, tmp_path) -> Path:
    """A fresh copy of the dist at <tmp>/otel-auto-instrumentation-python, as the operator's init container makes."""
    return install_like_operator(dist_dir, tmp_path)


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def module_receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def gunicorn(tmp_path):
    """Launcher for gunicorn-run test apps; every app it started is killed (process group) at teardown."""
    launcher = GunicornLauncher(tmp_path)
    yield launcher
    launcher.kill_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, append the logs of any fixture value offering `failure_sections()` (gunicorn log, receiver dump)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):
        for value in getattr(item, "funcargs", {}).values():
            sections = getattr(value, "failure_sections", None)
            if callable(sections):
                try:
                    for title, text in sections():
                        report.sections.append((title, text))
                except Exception as exc:  # noqa: BLE001 - never mask the real failure
                    report.sections.append(("failure_sections error", repr(exc)))
