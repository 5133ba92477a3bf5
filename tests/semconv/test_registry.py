"""ferrotel's own semantic conventions (semconv/): the registry, the code, the Prometheus names the
dashboard and alert rules are checked against (support/metric_names.py) and the README's reference
all say the same thing. No Weaver needed: these read the registry's YAML directly."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

from support import metric_names

REPO = Path(__file__).resolve().parents[2]
SEMCONV = REPO / "semconv"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"semconv_{name}", SEMCONV / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _module("gen_docs")
REGISTRY = gen_docs.load()
ATTRIBUTES = gen_docs.attributes(REGISTRY)
METRICS = gen_docs.metrics(REGISTRY)
# The Rust files that name ferrotel's telemetry (span attributes, metric names and their attributes).
TELEMETRY_SOURCES = [*sorted((REPO / "src" / "processors").glob("*.rs")), *sorted((REPO / "src" / "metrics").glob("*.rs")),
                     REPO / "src" / "export" / "otlp_metrics.rs", *sorted((REPO / "src" / "semconv").glob("*.rs"))]


def test_readme_reference_is_generated_from_the_registry():
    readme = (REPO / "README.md").read_text()
    assert gen_docs.BEGIN in readme and gen_docs.END in readme
    assert gen_docs.updated(readme, gen_docs.render(REGISTRY)) == readme, "README.md is out of date: run python semconv/gen_docs.py"


def test_every_own_name_is_namespaced_described_and_has_a_stability():
    for name, item in [*ATTRIBUTES.items(), *METRICS.items()]:
        assert name.startswith("ferrotel."), name
        assert re.fullmatch(r"[a-z][a-z0-9]*([._][a-z0-9]+)*", name), name
        assert item.get("brief") and item.get("stability") in ("stable", "development", "release_candidate"), name
    for metric in METRICS.values():
        assert metric["instrument"] in ("counter", "updowncounter", "histogram", "gauge") and metric["unit"], metric["metric_name"]
        for ref in metric.get("attributes", []):
            assert ref["ref"] in ATTRIBUTES or not ref["ref"].startswith("ferrotel."), ref
    # An attribute may not also be the namespace of another (Weaver's illegal_namespace).
    for name in ATTRIBUTES:
        assert not any(other.startswith(name + ".") for other in ATTRIBUTES), name


def test_the_code_names_exactly_the_registry():
    """Every `ferrotel.*` string the telemetry code uses is in the registry, and every registry name is used."""
    used = set()
    for path in TELEMETRY_SOURCES:
        used |= set(re.findall(r'"(ferrotel\.[a-z0-9_.]+)"', path.read_text()))
    defined = set(ATTRIBUTES) | set(METRICS)
    assert used - defined == set(), f"named in src/ but not in semconv/ferrotel.yaml: {sorted(used - defined)}"
    assert defined - used == set(), f"in semconv/ferrotel.yaml but not emitted by src/: {sorted(defined - used)}"


def test_otlp_units_instruments_and_descriptions_match_the_registry():
    source = (REPO / "src" / "export" / "otlp_metrics.rs").read_text()
    encoded = {
        name: (description, unit, monotonic == "true")
        for name, description, unit, monotonic in re.findall(r'sum\(\s*"([^"]+)",\s*"([^"]*)",\s*"([^"]*)",\s*(true|false)', source)
    }
    for name, metric in METRICS.items():
        assert name in encoded, f"{name}: not encoded as a sum in otlp_metrics.rs"
        description, unit, monotonic = encoded[name]
        assert unit == metric["unit"], name
        assert description == metric["brief"], name
        assert monotonic == (metric["instrument"] == "counter"), name


def test_prometheus_names_match_the_registry():
    """support/metric_names.py (what the dashboard and alert rules may use) agrees with the registry."""
    own = {family: spec for family, spec in metric_names.METRICS.items() if family.startswith("ferrotel_")}
    expected = {gen_docs.prometheus_name(m): m for m in METRICS.values()}
    assert set(own) == set(expected)
    for family, (kind, labels) in own.items():
        metric = expected[family]
        assert kind == {"counter": metric_names.COUNTER, "histogram": metric_names.HISTOGRAM}.get(metric["instrument"], metric_names.GAUGE)
        assert set(labels) == {gen_docs.prometheus_label(r["ref"]) for r in metric.get("attributes", [])}, family
    reason = ATTRIBUTES["ferrotel.drop.reason"]
    assert tuple(m["value"] for m in reason["type"]["members"]) == metric_names.DROP_REASONS


def test_manifest_extends_the_pinned_semantic_conventions():
    manifest = yaml.safe_load((SEMCONV / "manifest.yaml").read_text())
    live_check = _module("live_check")
    (dep,) = manifest["dependencies"]
    assert dep["registry_path"] == live_check.PUBLISHED_PATH
    version = live_check.PINNED.lstrip("v")
    assert dep["schema_url"].endswith("/" + version) and f"@v{version}[" in dep["registry_path"]
    assert f"semantic conventions (v{version})" in " ".join((REPO / "README.md").read_text().split()), "README names the pinned version"
