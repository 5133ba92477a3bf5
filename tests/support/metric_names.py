"""The metrics the agent exports, as Prometheus names: the one list the dashboard, the alert rules and
the collector config are checked against (tests/deploy), and that the agent's exposition must match.

The service is the Prometheus ``job`` label (the collector maps ``service.name`` to ``job``; a direct
scrape sets it in its scrape config), ``instance`` the scraped target. Default endpoint of the agent:
port 9464 (``OTEL_EXPORTER_PROMETHEUS_PORT``), path ``/metrics``.
"""

from __future__ import annotations

PROMETHEUS_PORT = 9464
PROMETHEUS_PATH = "/metrics"

HISTOGRAM = "histogram"
COUNTER = "counter"
GAUGE = "gauge"

# family -> (type, labels). Counters are named with their ``_total`` sample name; ``error_type``
# appears on the duration histograms only for failed requests. The OTLP names, units and attributes
# behind these are in semconv/ (ferrotel's registry, and the semantic conventions it extends);
# tests/semconv checks that the ferrotel_* families here match that registry.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "http_server_request_duration_seconds": (
        HISTOGRAM,
        ("http_request_method", "http_route", "http_response_status_code", "url_scheme", "error_type", "network_protocol_version"),
    ),
    "http_client_request_duration_seconds": (
        HISTOGRAM,
        (
            "http_request_method",
            "server_address",
            "server_port",
            "http_response_status_code",
            "url_scheme",
            "error_type",
            "network_protocol_version",
        ),
    ),
    "db_client_operation_duration_seconds": (
        HISTOGRAM,
        (
            "db_system_name",
            "db_namespace",
            "db_collection_name",
            "db_operation_name",
            "db_query_summary",
            "db_response_status_code",
            "db_stored_procedure_name",
            "server_address",
            "server_port",
            "error_type",
        ),
    ),
    "http_server_active_requests": (GAUGE, ("http_request_method", "url_scheme")),
    "ferrotel_http_server_slow_requests_total": (COUNTER, ("http_request_method", "http_route")),
    "ferrotel_http_server_error_requests_total": (COUNTER, ("http_request_method", "http_route", "error_type")),
    # Self-telemetry of the agent.
    "ferrotel_spans_started_total": (COUNTER, ()),
    "ferrotel_spans_exported_total": (COUNTER, ()),
    "ferrotel_spans_dropped_total": (COUNTER, ("ferrotel_drop_reason",)),
    "ferrotel_export_failures_total": (COUNTER, ()),
}

# Values of ferrotel_spans_dropped_total{ferrotel_drop_reason=...} (the label was ``reason`` before
# the project's registry, semconv/ferrotel.yaml, namespaced it).
DROP_REASONS = ("queue_full", "filtered", "sampled_out")

# Labels every series carries once scraped (target labels), and the histogram's bucket label.
TARGET_LABELS = ("job", "instance")
BUCKET_LABEL = "le"

_SUFFIXES = {HISTOGRAM: ("_bucket", "_sum", "_count"), COUNTER: ("",), GAUGE: ("",)}


def series_names() -> set[str]:
    """Every sample name the agent exposes (histograms expanded to _bucket, _sum, _count)."""
    return {family + suffix for family, (kind, _) in METRICS.items() for suffix in _SUFFIXES[kind]}


def family_of(series: str) -> str | None:
    """The family of a sample name, or None when the agent does not export it."""
    for family, (kind, _) in METRICS.items():
        for suffix in _SUFFIXES[kind]:
            if series == family + suffix:
                return family
    return None


def labels_of(series: str) -> set[str]:
    """Labels a query may use on `series`: its own, the target labels, and ``le`` on buckets."""
    family = family_of(series)
    if family is None:
        return set()
    labels = set(METRICS[family][1]) | set(TARGET_LABELS)
    if series.endswith("_bucket") and METRICS[family][0] == HISTOGRAM:
        labels.add(BUCKET_LABEL)
    return labels


def all_labels() -> set[str]:
    return {label for _, labels in METRICS.values() for label in labels} | set(TARGET_LABELS) | {BUCKET_LABEL}
