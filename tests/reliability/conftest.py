"""Fixtures of the reliability suite (issue 6): one Operator-style copy of the agent for the whole
directory, a launcher for gunicorn / waitress / uwsgi apps, and the app directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.operator import install_like_operator
from support.servers import ServerLauncher

RELIABILITY_DIR = Path(__file__).resolve().parent
APPS_DIR = RELIABILITY_DIR / "apps"


@pytest.fixture(scope="session")
def rel_install(dist_dir, tmp_path_factory) -> Path:
    """The agent as the Operator's init container copies it (shared by the reliability tests)."""
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("reliability-install"))


@pytest.fixture
def servers(tmp_path):
    """Starts gunicorn / waitress / uwsgi apps; all are SIGKILLed (process group) at teardown."""
    launcher = ServerLauncher(tmp_path)
    yield launcher
    launcher.kill_all()
