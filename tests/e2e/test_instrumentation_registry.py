"""The registry of instrumentations (python/ferrotel/_registry.py) is the one list: the README's
table of supported libraries is made from it, every hook it names exists, and every name it gives
is one OTEL_PYTHON_DISABLED_INSTRUMENTATIONS switches off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.operator import clean_env

import importlib.util

REPO = Path(__file__).resolve().parents[2]
# Loaded by path: the registry imports nothing, and the `ferrotel` package would start the agent.
_spec = importlib.util.spec_from_file_location("ferrotel_registry", REPO / "python" / "ferrotel" / "_registry.py")
_registry = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_registry)

BEGIN, END = "<!-- supported-libraries: begin (python3 python/ferrotel/_registry.py) -->", "<!-- supported-libraries: end -->"


def test_readme_table_is_the_registry():
    text = (REPO / "README.md").read_text()
    assert BEGIN in text and END in text, "the README lost its generated table markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip() + "\n"
    assert table == _registry.markdown_table(), "README table is stale: paste `python3 python/ferrotel/_registry.py` between the markers"


def test_every_hook_the_registry_names_exists(dist_dir):
    targets = sorted({t for inst in _registry.INSTRUMENTATIONS for t in inst.triggers.values()})
    code = (
        "import json, sys\n"
        "missing = []\n"
        "for t in sys.argv[1:]:\n"
        "    mod, _, fn = t.partition(':')\n"
        "    m = __import__('ferrotel.hooks.' + mod, fromlist=[fn])\n"
        "    if not callable(getattr(m, fn, None)): missing.append(t)\n"
        "print(json.dumps(missing))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *targets], env=clean_env(PYTHONPATH=str(dist_dir)), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_names_are_unique_and_families_known():
    names = [i.name for i in _registry.INSTRUMENTATIONS]
    assert len(names) == len(set(names))
    assert {i.family for i in _registry.INSTRUMENTATIONS} <= set(_registry.FAMILIES)
    # That each name really switches its instrumentation off is tested under servers, name by
    # name, in test_instrumentation_switches.py (which fails when a registry name has no test).
