"""End-to-end: `http.client.request.duration` (issue 21). Service A (the test app under gunicorn,
instrumented the Operator's way) calls service B through requests and httpx, and a closed port
through requests; at exit A pushes its metrics to the suite's OTLP receiver. Checked: one point per
distinct outcome (not per call) with the semantic conventions' client attributes and their types,
the failed call with `error.type` and no status code; and `network.protocol.version` on the
server duration's points."""

from __future__ import annotations

import json

from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.processes import GunicornLauncher, free_port

CALLS = [("requests", False), ("requests", False), ("httpx", False), ("requests", True)]


def test_client_duration_metric(dist_dir, module_receiver, tmp_path):
    receiver = module_receiver
    receiver.clear()
    launcher = GunicornLauncher(tmp_path)
    try:
        install = install_like_operator(dist_dir, tmp_path)
        endpoint = receiver.endpoint("http/protobuf")
        common = {"OTEL_LOGS_EXPORTER": "none"}
        b = launcher.start(operator_env(install, endpoint, extra={**common, "OTEL_SERVICE_NAME": "svc-b", "OTEL_METRICS_EXPORTER": "none"}))
        closed = free_port()
        extra = {**common, "OTEL_SERVICE_NAME": "svc-a", "DOWNSTREAM_URL": f"http://127.0.0.1:{b.port}",
                 "UNREACHABLE_URL": f"http://127.0.0.1:{closed}"}
        a = launcher.start(operator_env(install, endpoint, extra=extra))
        for client, refused in CALLS:
            r = http_get(a.port, f"/downstream/{client}" + ("?unreachable=1" if refused else ""))
            assert r.status == 200 and ("error" in json.loads(r.body)) == refused, r.body[:300]
        assert a.stop() == 0
        b.stop()
    finally:
        launcher.kill_all()
    pushes = [m for m in receiver.metrics() if m["name"] == "http.client.request.duration"]
    assert pushes, receiver.summary()
    # Cumulative: what each worker pushed last holds all its calls.
    last = {}
    for m in pushes:
        for dp in m["data_points"]:
            last[json.dumps(dp["attributes"], sort_keys=True)] = dp
    points = list(last.values())
    assert pushes[-1]["unit"] == "s" and pushes[-1]["type"] == "histogram"
    assert sum(dp["count"] for dp in points) == len(CALLS)
    ok = [dp for dp in points if "error.type" not in dp["attributes"]]
    assert sum(dp["count"] for dp in ok) == 3
    for dp in ok:
        assert dp["attributes"] == {
            "http.request.method": "GET",
            "server.address": "127.0.0.1",
            "server.port": b.port,
            "http.response.status_code": 200,
            "network.protocol.version": "1.1",
            "url.scheme": "http",
        }
        assert type(dp["attributes"]["server.port"]) is int and type(dp["attributes"]["http.response.status_code"]) is int
    [failed] = [dp for dp in points if "error.type" in dp["attributes"]]
    assert failed["count"] == 1 and "http.response.status_code" not in failed["attributes"]
    assert failed["attributes"]["server.port"] == closed and failed["attributes"]["error.type"]
    server = [m for m in receiver.metrics() if m["name"] == "http.server.request.duration"][-1]
    versions = {dp["attributes"].get("network.protocol.version") for dp in server["data_points"]}
    assert versions == {"1.1"}
