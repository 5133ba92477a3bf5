"""The database hooks' settings and promises, in-process with sqlite3 (no server needed): the
agent is started the Operator's way (PYTHONPATH) and prints spans with the console exporter.

- nothing database-related is imported at start-up;
- the driver behaves as before: return values, exception types, `__wrapped__`, `isinstance`;
- OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, FERROTEL_DB_QUERY_TEXT, FERROTEL_DB_SLOW_THRESHOLD_MS and
  the sqlcommenter opt-in do what the README says.
"""

from __future__ import annotations

import json
import subprocess
import sys

from support.operator import clean_env, operator_pythonpath

SCRIPT = r"""
import json, sqlite3, sys
from ferrotel import _native
seen = []
conn = sqlite3.connect(":memory:")
conn.set_trace_callback(seen.append)  # what the database itself was sent
cur = conn.cursor()
result = cur.execute("SELECT 'hunter2', 42")
out = {
    "returns_cursor": result is cur,
    "rows": cur.fetchall(),
    "isinstance": isinstance(conn, sqlite3.Connection) and isinstance(cur, sqlite3.Cursor),
    "connect_wrapped": hasattr(sqlite3.connect, "__wrapped__"),
    "execute_wrapped": getattr(type(cur).execute, "__wrapped__", None) is sqlite3.Cursor.execute,
}
try:
    cur.execute("SELECT * FROM nope")
except Exception as exc:
    out["error_type"] = type(exc).__module__ + "." + type(exc).__qualname__
    out["error_args"] = list(exc.args)
out["sent"] = seen
_native.flush()
print("RESULT " + json.dumps(out))
"""


def run(dist_dir, tmp_path, **env) -> tuple[dict, list]:
    environ = clean_env(
        PYTHONPATH=operator_pythonpath(dist_dir),
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        **env,
    )
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=environ, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
    spans = []
    for line in proc.stderr.splitlines():
        try:
            spans.append(json.loads(line))
        except ValueError:
            pass
    return result, [s for s in spans if "db.system.name" in s.get("attributes", {})]


def test_driver_behaviour_is_unchanged(dist_dir, tmp_path):
    hooked, spans = run(dist_dir, tmp_path)
    plain, none = run(dist_dir, tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="sqlite3")
    assert none == []
    assert not plain["connect_wrapped"], "a disabled instrumentation patches nothing"
    assert hooked["connect_wrapped"] and hooked["execute_wrapped"]
    for key in ("returns_cursor", "rows", "isinstance", "error_type", "error_args", "sent"):
        assert hooked[key] == plain[key], key
    assert hooked["returns_cursor"] and hooked["isinstance"]
    assert hooked["error_type"] == "sqlite3.OperationalError"
    assert len(spans) == 2


def test_statement_spans(dist_dir, tmp_path):
    _, spans = run(dist_dir, tmp_path)
    ok, failed = spans
    assert ok["kind"] == "CLIENT" and ok["scope"]["name"] == "ferrotel.sqlite3"
    assert ok["attributes"]["db.query.text"] == "SELECT ?, ?"
    assert "hunter2" not in json.dumps(spans)
    assert failed["status"]["code"] == "ERROR"
    assert failed["attributes"]["db.response.status_code"] == "1"
    assert [e["name"] for e in failed["events"]] == ["exception"]


def test_query_text_can_be_switched_off(dist_dir, tmp_path):
    _, spans = run(dist_dir, tmp_path, FERROTEL_DB_QUERY_TEXT="false")
    assert spans and all("db.query.text" not in s["attributes"] for s in spans)
    assert spans[0]["attributes"]["db.operation.name"] == "SELECT"


def test_database_slow_threshold(dist_dir, tmp_path):
    _, spans = run(dist_dir, tmp_path, FERROTEL_DB_SLOW_THRESHOLD_MS="0")
    assert len(spans) == 2 and all(s["attributes"].get("ferrotel.slow") is True for s in spans), spans
    _, spans = run(dist_dir, tmp_path)
    assert len(spans) == 2 and not any(s["attributes"].get("ferrotel.slow") for s in spans), "100 ms by default"


def test_sqlcommenter_is_opt_in(dist_dir, tmp_path):
    result, spans = run(dist_dir, tmp_path)
    assert result["sent"][0] == "SELECT 'hunter2', 42", "off by default: the statement is sent as written"
    result, spans = run(dist_dir, tmp_path, FERROTEL_DB_SQLCOMMENTER="true")
    ok = spans[0]
    assert result["sent"][0] == f"SELECT 'hunter2', 42 /*traceparent='00-{ok['trace_id']}-{ok['span_id']}-01'*/"
    assert "traceparent" not in ok["attributes"]["db.query.text"], "the exported text is the application's"
    assert result["rows"] == [["hunter2", 42]]


def test_start_up_imports_no_database_module(dist_dir):
    code = "import sys, json; print(json.dumps(sorted(m for m in ('sqlite3', '_sqlite3', 'psycopg', 'psycopg2', 'pymysql', 'MySQLdb', 'asyncpg', 'sqlalchemy', 'redis', 'concurrent.futures') if m in sys.modules)))"
    env = clean_env(PYTHONPATH=operator_pythonpath(dist_dir), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
