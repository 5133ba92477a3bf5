"""Unmodified Flask test application (no ferrotel import): `gunicorn app:app`."""

import time

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return "hello"


@app.route("/slow")
def slow():
    time.sleep(0.15)
    return "slow"


@app.route("/error")
def error():
    raise ValueError("boom")


@app.route("/users/<int:uid>")
def user(uid):
    return jsonify({"uid": uid})


@app.route("/orders/<int:oid>")
def order(oid):
    """Two statements on the standard library's sqlite3: two database spans under the request."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
    row = db.execute("SELECT id, total FROM orders WHERE customer = 'alice@example.com' AND id = ?", (oid,)).fetchone()
    db.close()
    return jsonify({"order": oid, "found": row is not None})


@app.route("/stream")
def stream():
    def gen():
        for i in range(3):
            if i:
                time.sleep(0.05)
            yield f"chunk{i}\n"

    return Response(gen())


# ---- Outgoing calls (issue 9): this app calling a second instance of itself. ----------------------
# DOWNSTREAM_URL: the other instance's base URL; UNREACHABLE_URL: a URL nothing listens on.
# The clients are imported inside the routes, so the agent's hooks meet them mid-request.

import os  # noqa: E402

from flask import request  # noqa: E402

PROPAGATION_HEADERS = ("traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")


@app.route("/headers")
def headers():
    """The propagation headers this request arrived with."""
    return jsonify({h: request.headers[h] for h in PROPAGATION_HEADERS if h in request.headers})


def _get(client, url):
    """GET `url` through `client`; (status, parsed JSON body or None)."""
    if client == "urllib":
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
    if client == "http_client":
        import http.client
        import urllib.parse

        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request("GET", u.path + ("?" + u.query if u.query else ""))
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()
    if client == "requests":
        import requests

        r = requests.get(url, timeout=10)
        return r.status_code, r.content
    if client == "urllib3":
        import urllib3

        r = urllib3.request("GET", url, timeout=10, retries=False)
        return r.status, r.data
    if client == "httpx":
        import httpx

        r = httpx.get(url, timeout=10)
        return r.status_code, r.content
    if client == "httpx_async":
        import asyncio

        import httpx

        async def call():
            async with httpx.AsyncClient(timeout=10) as c:
                return await c.get(url)

        r = asyncio.run(call())
        return r.status_code, r.content
    raise ValueError(client)


@app.route("/downstream/<client>")
def downstream(client):
    """Call DOWNSTREAM_URL/headers through `client` (or UNREACHABLE_URL with ?unreachable=1) and
    report what happened; a failed call is caught here, as an application would."""
    if request.args.get("unreachable"):
        url = os.environ.get("UNREACHABLE_URL", "http://127.0.0.1:9") + "/headers"
    else:
        url = os.environ["DOWNSTREAM_URL"].rstrip("/") + "/headers?via=" + client
    try:
        status, body = _get(client, url)
    except Exception as exc:  # noqa: BLE001 - the app handles its own failure
        return jsonify({"client": client, "error": f"{type(exc).__module__}.{type(exc).__qualname__}"})
    try:
        received = __import__("json").loads(body)
    except ValueError:
        received = None
    return jsonify({"client": client, "status": status, "received": received})


# ---- The OpenTelemetry API and logging (issue 10). ---------------------------------------------------
# The app's own manual instrumentation, as an app written against opentelemetry-api does it; in an
# environment without the API it only logs. It reports what it saw, for the tests to compare with
# what was exported.


@app.route("/otel")
def otel_api():
    import logging
    import sys

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    log = logging.getLogger("test.app.otel")
    keep = Keep()
    log.addHandler(keep)
    try:
        try:
            from opentelemetry import propagate, trace
        except ImportError:
            log.warning("no API here")
            return jsonify({"api": False, "log": _otel_fields(seen[-1]), "modules": _otel_modules(sys)})
        server = trace.get_current_span().get_span_context()
        tracer = trace.get_tracer("test.app.manual", "1.2.3")
        with tracer.start_as_current_span("manual-work", attributes={"work.items": 3, "work.kind": "test"}) as span:
            span.add_event("checkpoint", {"step": 1})
            try:
                raise KeyError("missing-item")
            except KeyError as exc:
                span.record_exception(exc)
                log.error("manual work failed", exc_info=True)
            log.info("below the root logger's level: not exported")
            log.warning("manual work done: %s", "ok")
            current = trace.get_current_span().get_span_context()
            carrier = {}
            propagate.inject(carrier)
        return jsonify(
            {
                "api": True,
                "server_span": {"trace_id": "%032x" % server.trace_id, "span_id": "%016x" % server.span_id},
                "manual_span": {"trace_id": "%032x" % current.trace_id, "span_id": "%016x" % current.span_id},
                "traceparent": carrier.get("traceparent"),
                "log": _otel_fields(seen[-1]),
                "modules": _otel_modules(sys),
            }
        )
    finally:
        log.removeHandler(keep)


def _otel_fields(record):
    return {k: getattr(record, k, None) for k in ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")}


def _otel_modules(sys):
    return sorted(m for m in sys.modules if m.startswith("opentelemetry") or m.startswith("ferrotel.hooks.otel.otel_api"))
