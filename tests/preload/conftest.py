"""Fixtures for the LD_PRELOAD library tests (helpers live in preload_helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preload_helpers import BOOTSTRAP_SUBDIR, LIB_NAME, Programs


@pytest.fixture(scope="session")
def preload_lib(dist_dir) -> Path:
    """The shipped library, dist/autoinstrumentation/libferrotel_preload.so."""
    lib = Path(dist_dir) / LIB_NAME
    if not lib.is_file():
        pytest.fail(f"{lib} not found: run `make dist` (it builds preload/ and copies the library in)")
    return lib


@pytest.fixture(scope="session")
def agent_dir(preload_lib) -> str:
    """What the constructor puts first on PYTHONPATH: <real dir of the library>/<bootstrap subdir>."""
    return str(Path(os.path.realpath(preload_lib)).parent / BOOTSTRAP_SUBDIR)


@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> Programs:
    return Programs(tmp_path_factory.mktemp("preload-programs"))
