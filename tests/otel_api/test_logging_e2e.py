"""Python `logging` with the agent (issue 10): correlation fields on every record, the upstream
format with OTEL_PYTHON_LOG_CORRELATION, and OTLP log export (what is exported, what is not, the
app's own logging configuration left working, a bounded queue). One interpreter per case, the
agent injected the Operator's way, log records sent to the real receiver.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from support.operator import SERVICE_NAME, operator_env
from support.processes import run_python

EXPORT = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true", "OTEL_METRICS_EXPORTER": "none"}


def last_json(out):
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_logs(rx, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(rx.log_records()) < n:
        assert time.monotonic() < deadline, f"expected {n} log records, got {rx.log_records()}"
        time.sleep(0.05)
    return rx.log_records()


CORRELATION = r"""
import json, logging
from ferrotel import _native
rec = []
class Keep(logging.Handler):
    def emit(self, r): rec.append({k: getattr(r, k) for k in ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")})
log = logging.getLogger("t"); log.addHandler(Keep()); log.propagate = False
log.warning("outside")
span = _native.start_span("work")
tok = _native.set_current(span)
log.warning("inside")
_native.reset_current(tok)
span.end()
unsampled = _native.start_span("dropped", parent=("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0, None, True))
tok = _native.set_current(unsampled)
log.warning("inside an unsampled trace")
_native.reset_current(tok)
print(json.dumps({"records": rec, "span": [span.trace_id, span.span_id], "unsampled": [unsampled.trace_id, unsampled.span_id]}))
"""


def test_every_record_carries_the_correlation_fields(operator_install):
    env = operator_env(operator_install, "http://127.0.0.1:9", extra={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    seen = last_json(run_python(CORRELATION, env))
    outside, inside, unsampled = seen["records"]
    assert outside == {"otelTraceID": "0", "otelSpanID": "0", "otelTraceSampled": False, "otelServiceName": SERVICE_NAME}
    assert inside == {"otelTraceID": seen["span"][0], "otelSpanID": seen["span"][1], "otelTraceSampled": True, "otelServiceName": SERVICE_NAME}
    assert [unsampled["otelTraceID"], unsampled["otelSpanID"], unsampled["otelTraceSampled"]] == seen["unsampled"] + [False]


def test_service_name_defaults_as_the_resource_does(operator_install):
    env = operator_env(operator_install, "http://127.0.0.1:9", extra={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    del env["OTEL_SERVICE_NAME"]
    env["OTEL_RESOURCE_ATTRIBUTES"] = "service.name=from-resource"
    code = "import logging; r = logging.makeLogRecord({}); print(logging.getLogger().makeRecord('x', 30, 'f', 1, 'm', (), None).otelServiceName)"
    out = run_python(code, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from-resource"


FORMAT = r"""
import logging
from ferrotel import _native
span = _native.start_span("work")
tok = _native.set_current(span)
logging.getLogger("fmt").info("formatted %s", "line")
_native.reset_current(tok)
print(span.trace_id, span.span_id)
"""


def test_log_correlation_applies_the_upstream_format(operator_install):
    env = operator_env(
        operator_install, "http://127.0.0.1:9", extra={"OTEL_PYTHON_LOG_CORRELATION": "true", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    )
    out = run_python(FORMAT, env)
    assert out.returncode == 0, out.stderr
    trace_id, span_id = out.stdout.split()
    line = [l for l in out.stderr.splitlines() if "formatted line" in l]
    assert len(line) == 1, out.stderr
    assert re.search(
        rf" INFO \[fmt\] \[<string>:\d+\] \[trace_id={trace_id} span_id={span_id} "
        rf"resource.service.name={SERVICE_NAME} trace_sampled=True\] - formatted line$",
        line[0],
    ), line[0]
    custom = dict(env, OTEL_PYTHON_LOG_FORMAT="%(levelname)s|%(otelTraceID)s|%(message)s", OTEL_PYTHON_LOG_LEVEL="warning")
    out = run_python(FORMAT.replace(".info(", ".warning("), custom)
    assert out.returncode == 0, out.stderr
    assert f"WARNING|{out.stdout.split()[0]}|formatted line" in out.stderr.splitlines()


EXPORT_SCRIPT = r"""
import logging, sys
import logging.config
from ferrotel import _native
# The app configures its own console logging after the agent installed its handler: it must work.
logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(message)s", stream=sys.stdout)
log = logging.getLogger("app.orders")
log.debug("below the configured level")
log.info("order %s placed", 42, extra={"order.id": 42, "order.tags": ["a", "b"], "obj": object()})
log.warning({"event": "refund", "amount": 9.5})
try:
    1 / 0
except ZeroDivisionError:
    log.exception("could not divide")
log.log(25, "custom level")
log.error("bad format %d", "x")
# Reconfiguration through dictConfig keeps the export handler.
logging.config.dictConfig({"version": 1, "root": {"level": "WARNING", "handlers": []}, "disable_existing_loggers": False})
log.info("now below the root level")
log.critical("after dictConfig")
print("flushed", _native.flush(5000))
"""


def test_log_records_are_exported(operator_install, receiver):
    env = operator_env(operator_install, receiver.http_endpoint, extra=EXPORT)
    out = run_python(EXPORT_SCRIPT, env)
    assert out.returncode == 0, out.stderr
    assert "APP INFO order 42 placed" in out.stdout.splitlines(), "the app's own basicConfig still applies"
    records = wait_logs(receiver, 6)
    assert len(records) == 6, records
    by_text = {r["severity_text"]: r for r in records}
    assert [r["severity_text"] for r in records] == ["INFO", "WARN", "ERROR", "Level 25", "ERROR", "FATAL"]
    info = records[0]
    assert info["body"] == "order 42 placed" and info["severity_number"] == 9
    assert info["scope_name"] == "app.orders"
    assert info["attributes"]["order.id"] == 42 and info["attributes"]["order.tags"] == ["a", "b"]
    assert "obj" not in info["attributes"], "values the API's attribute types cannot hold are left out"
    assert info["attributes"]["code.function.name"] == "<module>"
    assert info["trace_id"] == "" and info["span_id"] == "", "no span was active"
    assert info["resource"]["service.name"] == SERVICE_NAME
    assert abs(info["time_ns"] - time.time_ns()) < 120 * 10**9
    warn = by_text["WARN"]
    assert warn["body"] == {"event": "refund", "amount": 9.5}, "a dict message stays a map"
    error = records[2]
    assert error["severity_number"] == 17 and error["body"] == "could not divide"
    assert error["attributes"]["exception.type"] == "ZeroDivisionError"
    assert error["attributes"]["exception.message"] == "division by zero"
    assert "ZeroDivisionError" in error["attributes"]["exception.stacktrace"]
    assert records[3]["severity_number"] == 12, "level 25 maps to INFO4"
    assert records[4]["body"] == "bad format %d", "a broken format exports the template"
    assert records[5]["body"] == "after dictConfig" and records[5]["severity_number"] == 21


EXTRAS_SCRIPT = r"""
import logging, sys
from ferrotel import _native
from ferrotel.hooks.otel import logging_hook
logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(message)s", stream=sys.stdout)
log = logging.getLogger("app.extras")
many = {f"extra.{i}": i for i in range(12)}
log.info("twelve extras", extra=many)


class Tag(logging.Filter):
    def filter(self, record):
        record.tenant = "acme"  # set by a filter, after the formatter of the app's handler ran
        return True


log.addFilter(Tag())
log.info("tagged by a filter")
# A filter on the export handler itself: records it refuses are not exported.
logging_hook.handler.addFilter(lambda r: "secret" not in r.getMessage())
log.info("a secret line")
log.info("after the handler filter", extra={"k": "v"})
print("flushed", _native.flush(5000))
"""


def test_extras_past_the_window_filters_and_handler_filters(operator_install, receiver):
    """Every `extra=` attribute is exported however many there are (the native side reads the
    last few entries of a record first); a filter's attribute too; a filter added to the export
    handler still applies (the handler's fast path steps aside)."""
    out = run_python(EXTRAS_SCRIPT, operator_env(operator_install, receiver.http_endpoint, extra=EXPORT))
    assert out.returncode == 0, out.stderr
    records = wait_logs(receiver, 3)
    assert [r["body"] for r in records] == ["twelve extras", "tagged by a filter", "after the handler filter"], records
    assert {k: v for k, v in records[0]["attributes"].items() if k.startswith("extra.")} == {f"extra.{i}": i for i in range(12)}
    assert records[1]["attributes"]["tenant"] == "acme"
    assert records[2]["attributes"]["k"] == "v" and records[2]["attributes"]["tenant"] == "acme"
    for r in records:
        assert r["attributes"]["code.function.name"] == "<module>" and r["attributes"]["code.line.number"] > 0
        assert r["attributes"]["code.file.path"] == "<string>" and r["scope_name"] == "app.extras"
        assert not [k for k in r["attributes"] if k.startswith("otel") or k in ("message", "asctime", "msg", "args")]


LAYOUTS_SCRIPT = r"""
import logging, sys
from ferrotel import _native
if CAPI == "fallbacks":
    _native._capi_fallbacks(True)  # the record's dict through getattr, as on an interpreter without PyObject_GenericGetDict
log = logging.getLogger("app.layouts")
log.setLevel(logging.INFO)
for i in range(3):  # the same layout again and again: later records take the remembered layout
    log.info("plain %d", i, extra={"n": i})
previous = logging.getLogRecordFactory()


class Sub(logging.LogRecord):
    pass


def factory(*args, **kwargs):
    # A subclass, with attributes of its own before the correlation fields, one of the standard
    # ones deleted and set again (so it moves to the end of the record's dict): a layout the
    # remembered one does not fit.
    record = Sub(*args, **kwargs)
    record.tenant = "acme"
    record.region = "eu"
    lineno = record.lineno
    del record.lineno
    record.lineno = lineno
    return record


# The app's own factory, set after the agent's, replaces it: these records have no correlation
# fields either, a layout different again.
logging.setLogRecordFactory(factory)
log.warning("sub %s", "x", extra={"k": "v"})
logging.setLogRecordFactory(previous)
log.info("plain again", extra={"n": 9})
print("flushed", _native.flush(5000))
"""


@pytest.mark.parametrize("capi", ["resolved", "fallbacks"])
def test_record_layouts_other_than_logrecords_own(operator_install, receiver, capi):
    """The native side reads a record's attributes in one pass over its dict, recognising each
    name by where the previous records had it: a record laid out otherwise (a subclass, a
    factory's own attributes, an attribute deleted and set again) still gives every attribute,
    with the C-API fast paths and without them."""
    out = run_python(f"CAPI = {capi!r}\n" + LAYOUTS_SCRIPT, operator_env(operator_install, receiver.http_endpoint, extra=EXPORT))
    assert out.returncode == 0, out.stderr
    records = wait_logs(receiver, 5)
    assert [r["body"] for r in records] == ["plain 0", "plain 1", "plain 2", "sub x", "plain again"], records
    assert [r["attributes"].get("n") for r in records] == [0, 1, 2, None, 9]
    sub = records[3]
    assert sub["severity_text"] == "WARN" and sub["severity_number"] == 13 and sub["scope_name"] == "app.layouts"
    assert {k: sub["attributes"].get(k) for k in ("tenant", "region", "k")} == {"tenant": "acme", "region": "eu", "k": "v"}
    assert sub["attributes"]["code.line.number"] > 0 and sub["attributes"]["code.function.name"] == "<module>"
    for r in records:
        assert not [k for k in r["attributes"] if k.startswith("otel") or k in ("message", "asctime", "msg", "args", "lineno")]


def test_no_export_unless_switched_on(operator_install, receiver):
    script = (
        "import json, logging; from ferrotel import _native; from ferrotel.hooks.otel import logging_hook\n"
        "logging.getLogger('x').error('e'); _native.flush(3000)\n"
        "print(json.dumps({'handler': logging_hook.handler is not None, 'root': [type(h).__name__ for h in logging.getLogger().handlers]}))"
    )
    for extra in ({}, {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true", "OTEL_LOGS_EXPORTER": "none"}):
        env = operator_env(operator_install, receiver.http_endpoint, extra={"OTEL_METRICS_EXPORTER": "none", **extra})
        assert last_json(run_python(script, env)) == {"handler": False, "root": []}, extra
    assert receiver.log_records() == []


BURST = r"""
import json, logging
from ferrotel import _native
log = logging.getLogger("burst")
for i in range(5000):
    log.warning("record %d", i)
_native.flush(10000)
print(json.dumps(_native.log_stats()))
"""


def test_a_full_log_queue_drops_and_counts(operator_install, receiver):
    extra = dict(EXPORT, OTEL_BLRP_MAX_QUEUE_SIZE="16", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="16")
    out = run_python(BURST, operator_env(operator_install, receiver.http_endpoint, extra=extra))
    stats = last_json(out)
    assert stats["logs_dropped_queue_full"] > 0, stats
    assert stats["logs_exported"] + stats["logs_dropped_queue_full"] == 5000, stats
    assert len(receiver.log_records()) == stats["logs_exported"]
    assert re.search(r"ferrotel: at exit: \d+ log records exported, \d+ dropped because the queue was full", out.stderr), out.stderr
