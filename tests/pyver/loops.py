"""In-process request loops, for any CPython 3.9+ with or without the agent (its sitecustomize on
PYTHONPATH or not), used by tests/pyver on CPython 3.14/3.15 and on debug interpreters.

    python loops.py LOOPS N [WARMUP]

LOOPS is a comma-separated list of: wsgi (a plain WSGI app, through ferrotel.wsgi.Middleware when
the agent runs), flask (Flask app, werkzeug's test client, responses closed; every 10th request
raises, every other one carries traceparent and baggage), asgi (a plain ASGI app through
ferrotel.asgi.Middleware), and inside requests of the plain WSGI app: api (a span made with the
OpenTelemetry API), logging (a log record), sqlite (two statements on one connection), threads
(a statement in a thread the request starts);
clients (one call with each HTTP client that imports -- urllib.request, http.client, urllib3,
requests, httpx -- to a server in this process that answers with the traceparent it received).

Prints one JSON line: {"agent": bool, "loops": {name: {"n", "delta", "echo"}}, "spans_started"}.
"delta" is sys.gettotalrefcount()'s change over the N measured iterations (debug interpreters
only; None elsewhere; each loop runs N divided by its SHARE), after WARMUP iterations and a gc.collect() on both ends: a reference
leaked per request shows as N. LOOPS_CAPI_FALLBACKS=1 makes the agent take the fallback of every
C-API function it looks up at run time. "echo" lists what the HTTP server saw, for the clients loop.
"""

import asyncio
import gc
import json
import logging
import os
import sys
import threading
import time

AGENT = "ferrotel._native" in sys.modules  # started by the injected sitecustomize, or not
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def refs():
    return sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None


# --------------------------------------------------------------------------- WSGI


def wsgi_loop(work=None, path="/hello"):
    """A plain WSGI app; `work()`, when given, runs inside each request (under its span)."""
    from wsgiref.util import setup_testing_defaults

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/error":
            raise ValueError("boom")
        if work is not None:
            work()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    if AGENT:
        import ferrotel.wsgi

        app = ferrotel.wsgi.Middleware(app)

    def start_response(status, headers, exc_info=None):
        return None

    def one(i):
        environ = {"PATH_INFO": "/error" if i % 10 == 9 else path, "QUERY_STRING": "a=%d" % i}
        if i % 2:
            environ["HTTP_TRACEPARENT"] = TRACEPARENT
        setup_testing_defaults(environ)
        try:
            body = app(environ, start_response)
        except ValueError:
            return
        b"".join(body)
        if hasattr(body, "close"):
            body.close()

    return one


# --------------------------------------------------------------------------- Flask


def flask_app():
    from flask import Flask

    app = Flask("loops")

    @app.route("/users/<int:uid>")
    def user(uid):
        return {"uid": uid}

    @app.route("/error")
    def error():
        raise ValueError("boom")

    return app


def flask_loop(path=None):
    from werkzeug.test import Client

    client = Client(flask_app())

    def one(i):
        target = path or ("/error" if i % 10 == 9 else "/users/%d" % i)
        headers = {"traceparent": TRACEPARENT, "baggage": "k=v"} if i % 2 else {}
        resp = client.get(target, headers=headers)
        resp.get_data()
        resp.close()

    return one


def api_loop():
    from opentelemetry import trace

    tracer = trace.get_tracer("loops")

    def work():
        with tracer.start_as_current_span("work") as span:
            span.set_attribute("loops.n", 1)

    return wsgi_loop(work, "/api")


def logging_loop():
    # A handler of its own keeps logging's last-resort stderr output away; records still
    # propagate to the root, where the agent's handler is.
    log = logging.getLogger("pyver.loops")
    log.addHandler(logging.NullHandler())
    return wsgi_loop(lambda: log.warning("hello from %s", "loops"), "/log")


def sqlite_loop():
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER, name TEXT)")

    def work():
        conn.execute("SELECT id FROM t WHERE name = 'x' AND id = ?", (1,)).fetchall()
        cur = conn.cursor()
        cur.execute("INSERT INTO t VALUES (?, ?)", (1, "y"))
        cur.close()

    return wsgi_loop(work, "/db")


def threads_loop():
    """A thread started inside a request runs a statement: its span is the request's child."""
    import sqlite3

    def in_thread():
        conn = sqlite3.connect(":memory:")
        conn.execute("SELECT 1").fetchall()
        conn.close()

    def work():
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()

    return wsgi_loop(work, "/threads")


# --------------------------------------------------------------------------- ASGI


def asgi_loop():
    async def app(scope, receive, send):
        await receive()
        if scope["path"] == "/error":
            raise ValueError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    if AGENT:
        import ferrotel.asgi

        app = ferrotel.asgi.Middleware(app)
    loop = asyncio.new_event_loop()

    async def call(i):
        headers = [(b"host", b"localhost")]
        if i % 2:
            headers.append((b"traceparent", TRACEPARENT.encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": "/error" if i % 10 == 9 else "/items/%d" % i, "raw_path": b"/items", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
        }

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            return None

        try:
            await app(scope, receive, send)
        except ValueError:
            pass

    def one(i):
        loop.run_until_complete(call(i))

    return one


# --------------------------------------------------------------------------- HTTP clients

ECHO = []


def echo_server():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            tp = self.headers.get("traceparent", "")
            if len(ECHO) < 50:
                ECHO.append({"path": self.path, "traceparent": tp})
            body = tp.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def clients_loop():
    import http.client
    import urllib.request

    port = echo_server()
    base = "http://127.0.0.1:%d" % port
    calls = []

    def with_urllib(i):
        with urllib.request.urlopen(base + "/urllib") as r:
            r.read()

    def with_http_client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/http.client")
        conn.getresponse().read()
        conn.close()

    calls += [with_urllib, with_http_client]
    try:
        import urllib3

        pool = urllib3.PoolManager()

        def with_urllib3(i):
            pool.request("GET", base + "/urllib3").data

        calls.append(with_urllib3)
    except ImportError:
        pass
    try:
        import requests

        session = requests.Session()

        def with_requests(i):
            session.get(base + "/requests").content

        calls.append(with_requests)
    except ImportError:
        pass
    try:
        import httpx

        hclient = httpx.Client()

        def with_httpx(i):
            hclient.get(base + "/httpx").content

        calls.append(with_httpx)
    except ImportError:
        pass

    def one(i):
        for call in calls:
            call(i)

    return one


LOOPS = {
    "wsgi": wsgi_loop, "flask": flask_loop, "asgi": asgi_loop, "api": api_loop,
    "logging": logging_loop, "sqlite": sqlite_loop, "clients": clients_loop, "threads": threads_loop,
}
# The share of N each loop runs (a debug interpreter is slow: Flask's own request handling and
# real loopback calls cost far more than the hooks they exercise).
SHARE = {"flask": 10, "api": 4, "logging": 4, "sqlite": 4, "threads": 10, "clients": 50}


def settled(known=None, timeout=5.0):
    """Wait, at most `timeout` s, for the threads the iterations started to end (the echo server
    answers each connection on a thread of its own): a thread still ending when the count is taken
    holds its frames', socket's and handler's references, a few hundred, which would read as moved
    (seen once under load: 292 over 400 client rounds, 702 without the agent). `known` None: until
    the set of threads stays the same for 0.2 s; else until no thread outside `known` is left
    (threads alive before the measured iterations, such as keep-alive connections', may stay).
    Returns the threads alive then."""
    deadline = time.monotonic() + timeout
    last, since = set(threading.enumerate()), time.monotonic()
    while time.monotonic() < deadline:
        now = set(threading.enumerate())
        if known is not None and now <= known:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif known is None and time.monotonic() - since >= 0.2:
            return now
        time.sleep(0.01)
    return set(threading.enumerate())


def main():
    names = sys.argv[1].split(",")
    n = int(sys.argv[2])
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    out = {"agent": AGENT, "python": "%d.%d" % sys.version_info[:2], "loops": {}}
    if AGENT and os.environ.get("LOOPS_CAPI_FALLBACKS") == "1":
        from ferrotel import _native

        _native._capi_fallbacks(True)  # every C-API function looked up at run time: its fallback
    for name in names:
        one = LOOPS[name]()
        n_loop = max(n // SHARE.get(name, 1), 1) if n > 10 else n
        warm = max(warmup // SHARE.get(name, 1), 0)
        for i in range(warm):
            one(i)
        known = settled()
        gc.collect()
        before = refs()
        for i in range(n_loop):
            one(i)
        settled(known)
        gc.collect()
        after = refs()
        out["loops"][name] = {"n": n_loop, "delta": None if before is None else after - before, "echo": list(ECHO)}
        del ECHO[:]
    if AGENT:
        from ferrotel import _native

        out["spans_started"] = _native.stats()["spans_started"]
        out["capi"] = dict(_native._capi())
    print("LOOPS-REPORT " + json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
