"""The README's reference of ferrotel's own attributes and metrics, generated from the registry.

    python semconv/gen_docs.py           rewrite the section of README.md between the markers
    python semconv/gen_docs.py --check   exit 1 (and say so) when README.md is not up to date

The section lies between BEGIN and END below; tests/semconv/test_registry.py runs the check, so
documentation and telemetry cannot drift apart. Needs PyYAML (in the test requirements).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "semconv" / "ferrotel.yaml"
README = ROOT / "README.md"
BEGIN = "<!-- BEGIN ferrotel registry reference: generated from semconv/ferrotel.yaml by semconv/gen_docs.py -->"
END = "<!-- END ferrotel registry reference -->"

# Prometheus renders units the OpenTelemetry way: `s` becomes a `_seconds` suffix, annotations in
# braces (`{request}`) add nothing; counters end in `_total`.
_UNIT_SUFFIX = {"s": "_seconds", "By": "_bytes"}


def load(path: Path = REGISTRY) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def attributes(registry: dict) -> dict[str, dict]:
    return {
        a["id"]: a
        for g in registry["groups"]
        if g["type"] == "attribute_group"
        for a in g.get("attributes", [])
        if "id" in a
    }


def metrics(registry: dict) -> dict[str, dict]:
    return {g["metric_name"]: g for g in registry["groups"] if g["type"] == "metric"}


def prometheus_name(metric: dict) -> str:
    name = metric["metric_name"].replace(".", "_") + _UNIT_SUFFIX.get(metric["unit"], "")
    return name + "_total" if metric["instrument"] == "counter" else name


def prometheus_label(attribute: str) -> str:
    return attribute.replace(".", "_")


def _requirement(ref: dict) -> str:
    level = ref.get("requirement_level", "recommended")
    if isinstance(level, dict):
        (kind, why), = level.items()
        return f"{kind.replace('_', ' ')}: {why.strip().rstrip('.')}"
    return level.replace("_", " ")


def _type(a: dict) -> str:
    t = a["type"]
    if isinstance(t, dict):
        return "enum: " + ", ".join(f"`{m['value']}`" for m in t["members"])
    return t


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(registry: dict) -> str:
    lines = [
        BEGIN,
        "",
        "| attribute | type | stability | what it says |",
        "|---|---|---|---|",
    ]
    for key, a in attributes(registry).items():
        note = f" {a['note']}" if a.get("note") else ""
        lines.append(f"| `{key}` | {_type(a)} | {a['stability']} | {_cell(a['brief'] + note)} |")
    lines += [
        "",
        "| metric (OTLP) | Prometheus | instrument, unit | attributes | stability | what it counts |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics(registry).items():
        attrs = "; ".join(f"`{r['ref']}` ({_requirement(r)})" for r in m.get("attributes", [])) or "none"
        note = f" {m['note']}" if m.get("note") else ""
        lines.append(
            f"| `{name}` | `{prometheus_name(m)}` | {m['instrument']}, `{m['unit']}` | {_cell(attrs)} | {m['stability']} | "
            f"{_cell(m['brief'] + note)} |"
        )
    imported = registry.get("imports", {})
    if imported:
        parts = [f"{kind}: " + ", ".join(f"`{n}`" for n in names) for kind, names in imported.items()]
        lines += ["", "From the OpenTelemetry semantic conventions (imported by the registry): " + "; ".join(parts) + "."]
    lines += ["", END]
    return "\n".join(lines)


def updated(readme: str, section: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + section + readme[end:]


def main(argv: list[str]) -> int:
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        print(f"{README}: the markers of the generated section are missing ({BEGIN!r} ... {END!r})", file=sys.stderr)
        return 1
    new = updated(readme, render(load()))
    if "--check" in argv:
        if new != readme:
            print("README.md's reference of ferrotel's attributes and metrics is out of date: run python semconv/gen_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    if new != readme:
        README.write_text(new)
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
