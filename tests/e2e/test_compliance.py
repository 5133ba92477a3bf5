"""docs/compliance.md against the code, in both directions (issue 18).

The names the agent reads come from the code itself: the native configuration reader lists every
variable it asks for (`_native.config_variables()`), and the two places that read the environment
before it runs -- the Python bootstrap (`python/sitecustomize.py`, `python/ferrotel/`) and the
LD_PRELOAD library (`preload/src/`) -- are scanned for the names they read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from support.operator import clean_env

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "compliance.md"
STATUSES = {"supported", "partly", "not"}

# The specification's environment-variable page (general, batch processors, limits, exporter
# selection, metrics SDK, Zipkin, Prometheus, declarative configuration) and the OTLP exporter's
# variables (protocol/exporter.md): the table may not leave one out.
OTLP_KEYS = ("ENDPOINT", "PROTOCOL", "HEADERS", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY", "INSECURE")
SPEC = {
    "OTEL_SDK_DISABLED", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "OTEL_LOG_LEVEL", "OTEL_PROPAGATORS",
    "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_EXPORT_TIMEOUT", "OTEL_BLRP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT", "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
    "OTEL_EXPORTER_PROMETHEUS_HOST", "OTEL_EXPORTER_PROMETHEUS_PORT",
    "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
    "OTEL_METRICS_EXEMPLAR_FILTER", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_EXPERIMENTAL_CONFIG_FILE",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
} | {f"OTEL_EXPORTER_OTLP_{s}{k}" for s in ("", "TRACES_", "METRICS_", "LOGS_") for k in OTLP_KEYS}


def table():
    """{variable: (status, how)} from the table between the markers."""
    text = DOC.read_text()
    body = text.split("<!-- compliance-table: begin -->", 1)[1].split("<!-- compliance-table: end -->", 1)[0]
    rows = {}
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        assert name not in rows, f"{name} is in the table twice"
        assert cells[1] in STATUSES, f"{name}: status {cells[1]!r} is not one of {sorted(STATUSES)}"
        assert cells[2], f"{name}: say how (partly) or why (not)"
        rows[name] = (cells[1], cells[2])
    return rows


def native_names(dist_dir):
    code = "import json; from ferrotel import _native; print(json.dumps(_native.config_variables()))"
    out = subprocess.run([sys.executable, "-c", code], env=clean_env(PYTHONPATH=str(dist_dir)), capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def bootstrap_names():
    """OTEL_* names read from the environment by Python code (`environ.get("X")`, `environ["X"]`,
    `getenv("X")`) and by the LD_PRELOAD library (its byte-string constants)."""
    names = set()
    for path in [REPO / "python" / "sitecustomize.py", *(REPO / "python" / "ferrotel").rglob("*.py")]:
        names |= set(re.findall(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](OTEL_[A-Z0-9_]+)["']""", path.read_text()))
    for path in (REPO / "preload" / "src").rglob("*.rs"):
        names |= set(re.findall(r'b"(OTEL_[A-Z0-9_]+)"', path.read_text()))
    return names


def read_by_code(dist_dir):
    return {n for n in native_names(dist_dir) | bootstrap_names() if n.startswith("OTEL_")}


def test_the_reader_lists_what_it_reads(dist_dir):
    names = native_names(dist_dir)
    # a few the reader must name, or the check below would pass over an empty list
    assert {"OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SPAN_LINK_COUNT_LIMIT", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"} <= names
    assert "OTEL_SDK_DISABLED" in bootstrap_names(), "the bootstrap's own read was not found: fix the scan"


def test_every_variable_the_code_reads_is_in_the_table(dist_dir):
    rows = table()
    missing = sorted(read_by_code(dist_dir) - set(rows))
    assert missing == [], f"read by the code but not in docs/compliance.md: {missing}"
    marked_not = sorted(n for n in read_by_code(dist_dir) if rows[n][0] == "not")
    assert marked_not == [], f"read by the code but marked 'not': {marked_not}"


def test_every_supported_row_is_read_by_the_code(dist_dir):
    claimed = {n for n, (status, _) in table().items() if status != "not"}
    unread = sorted(claimed - read_by_code(dist_dir))
    assert unread == [], f"marked supported/partly in docs/compliance.md but read nowhere: {unread}"


def test_the_specification_page_is_covered():
    assert sorted(SPEC - set(table())) == []
