"""Weaver's live-check over the demo traffic (what `make semconv-check` runs): 0 violations, and
improvements only about what the semantic conventions themselves still mark as development or
release candidate. Skipped, with the reason, where there is no `weaver` on PATH (or $WEAVER) or no
local semantic-conventions checkout ($SEMCONV, default /opt/semconv): CI machines have neither."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "semconv" / "live_check.py"


def test_live_check_of_the_demo_traffic(dist_dir):
    probe = subprocess.run([sys.executable, str(SCRIPT), "--can-run"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(probe.stdout.strip() or probe.stderr.strip())
    env = dict(os.environ, FERROTEL_DIST=str(dist_dir))
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=900)
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "violations: 0," in run.stdout
