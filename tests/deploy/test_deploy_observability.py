"""The Grafana dashboard and the Prometheus alerting rules in docker/: their queries name only metrics
(and labels) the agent exports -- the list in support/metric_names.py -- and real Prometheus tooling
accepts them: `promtool check rules` on the rule file and on every dashboard query, and `promtool test
rules` proves the alerts fire per service on made-up series (promtool: Debian's `prometheus` package,
installed by `make test`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support import metric_names

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docker" / "grafana-dashboard.json"
RULES = REPO / "docker" / "alert-rules.yaml"

# PromQL words that are not metric names (aggregation modifiers, operators, literals).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
# Grafana's variables as a query runs: $__rate_interval, $job (multi-value: a regex), ${datasource}.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "job": ".+", "route": ".*"}


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects (function names, keywords, labels and numbers left out)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 5m, 1e3
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function call
            continue
        if match.group(0).lower() not in _KEYWORDS:
            names.add(match.group(0))
    return names


def promql_labels(expr: str) -> set[str]:
    """Label names an expression matches on or groups by."""
    text = _STRING.sub('""', expr)
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels |= set(_MATCHER_LABEL.findall(matchers))
    for _, group in _GROUPING.findall(text):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels


def substitute_grafana(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES[m.group(1)], expr)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                queries.append((f'panel "{panel["title"]}" {target["refId"]}', target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((?:(.*),\s*)?(\w+)\)", query)
        assert match, f"variable {variable['name']}: unexpected query {query}"
        if match.group(1):
            queries.append((f"variable {variable['name']}", match.group(1)))
    return queries


def rule_expressions() -> list[tuple[str, str]]:
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    return [(rule.get("alert") or rule["record"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus; `make test` unpacks it)")
    return path


# --------------------------------------------------------------------------- the name checks


def test_promql_parser_helpers():
    expr = 'histogram_quantile(0.95, sum by (le, job) (rate(x_bucket{job=~"$job", a="b{c}"}[$__rate_interval]))) / on(job) y > 1e3 and z offset 5m'
    assert promql_metrics(expr) == {"x_bucket", "y", "z"}
    assert promql_labels(expr) == {"le", "job", "a"}


def test_dashboard_queries_name_only_exported_metrics():
    exported = metric_names.series_names()
    queries = dashboard_queries()
    assert len(queries) >= 15
    used = set()
    for where, expr in queries:
        names = promql_metrics(expr)
        assert names, f"{where}: no metric in {expr}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported by the agent"
        allowed = set().union(*(metric_names.labels_of(n) for n in names))
        assert promql_labels(expr) <= allowed, f"{where}: labels {sorted(promql_labels(expr) - allowed)} not on {sorted(names)}"
        used |= names
    # RED by service and route, slow requests, and the agent's health are all on the dashboard.
    assert {metric_names.family_of(n) for n in used} == set(metric_names.METRICS)


def test_alert_rules_name_only_exported_metrics():
    exported = metric_names.series_names() | recorded_names()
    for where, expr in rule_expressions():
        names = promql_metrics(expr)
        assert names and names <= exported, f"{where}: {sorted(names - exported)} not exported by the agent"
        allowed = metric_names.all_labels()
        assert promql_labels(expr) <= allowed, f"{where}: {sorted(promql_labels(expr) - allowed)}"


def test_alerts_are_per_service():
    for where, expr in rule_expressions():
        groupings = [labels for keyword, labels in _GROUPING.findall(expr) if keyword == "by"]
        assert groupings and all(g.replace(" ", "") == "job" for g in groupings), f"{where}: aggregate by (job)"


# --------------------------------------------------------------------------- promtool


def test_promtool_check_rules(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"ferrotel_dashboard:query:{i}", "expr": substitute_grafana(expr)}
                    for i, (_, expr) in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _series(name: str, job: str, per_minute: float, minutes: int, **labels) -> dict:
    all_labels = {"job": job, "instance": f"{job}-0:9464", **labels}
    selector = ", ".join(f'{k}="{v}"' for k, v in all_labels.items())
    return {"series": f"{name}{{{selector}}}", "values": f"0+{per_minute:g}x{minutes}"}


def test_alerts_fire_per_service(promtool, tmp_path):
    route = {"http_request_method": "GET", "http_route": "/users/<int:uid>"}
    ok = {**route, "http_response_status_code": "200", "url_scheme": "http"}
    minutes = 40
    series = [
        # shop: 10 req/s, 10% errors, 2% slow -> error alert only
        _series("http_server_request_duration_seconds_count", "shop", 600, minutes, **ok),
        _series("ferrotel_http_server_error_requests_total", "shop", 60, minutes, **route, error_type="500"),
        _series("ferrotel_http_server_slow_requests_total", "shop", 12, minutes, **route),
        # search: 10 req/s, no errors, 30% slow -> slow alert only
        _series("http_server_request_duration_seconds_count", "search", 600, minutes, **ok),
        _series("ferrotel_http_server_slow_requests_total", "search", 180, minutes, **route),
        # cron: 0.05 req/s, all failing and slow -> below the traffic floor, no alert
        _series("http_server_request_duration_seconds_count", "cron", 3, minutes, **ok),
        _series("ferrotel_http_server_error_requests_total", "cron", 3, minutes, **route, error_type="500"),
        _series("ferrotel_http_server_slow_requests_total", "cron", 3, minutes, **route),
        # agent health: shop's queue overflows
        _series("ferrotel_spans_dropped_total", "shop", 30, minutes, ferrotel_drop_reason="queue_full"),
        _series("ferrotel_spans_dropped_total", "search", 30, minutes, ferrotel_drop_reason="sampled_out"),
        _series("ferrotel_export_failures_total", "search", 2, minutes),
    ]
    for entry in series:
        assert metric_names.family_of(entry["series"].split("{")[0]), entry
    # promtool compares annotations too; their templates are checked by `promtool check rules` above.
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_path = tmp_path / "alert-rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = {
        "rule_files": [str(rules_path)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "FerrotelHighErrorRatio", "exp_alerts": []},  # not before `for`
                    {
                        "eval_time": "30m",
                        "alertname": "FerrotelHighErrorRatio",
                        "exp_alerts": [{"exp_labels": {"job": "shop", "severity": "page"}}],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "FerrotelHighSlowRatio",
                        "exp_alerts": [{"exp_labels": {"job": "search", "severity": "ticket"}}],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "FerrotelSpansDropped",
                        "exp_alerts": [{"exp_labels": {"job": "shop", "severity": "ticket"}}],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "FerrotelExportFailing",
                        "exp_alerts": [{"exp_labels": {"job": "search", "severity": "ticket"}}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "alert-rules.test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
