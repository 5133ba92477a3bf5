"""A Flask app whose `/work` route uses one of each library ferrotel can hook without a database
server: outgoing calls with urllib, http.client, urllib3, requests and httpx (to a small local
server, started on the first request), a sqlite3 query, a log record and a thread. It reports
what the app saw (the log record's correlation fields, the span the thread ran under) for the
tests of OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (`gunicorn app_switches:app`)."""

import http.client
import json
import logging
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flask import Flask, request

app = Flask(__name__)
_target = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("X-Resp-Id", "s1")
        self.send_header("X-Other", "o")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _base():
    if not _target:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _target.append(server.server_address[1])
    return "http://127.0.0.1:%d" % _target[0]


# headers every outgoing call sends (for the header-capture tests)
SENT = {"X-Req-Id": "r1", "X-Secret-Token": "hunter2"}


@app.route("/work")
def work():
    base = _base()
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(base + "/by/urllib", headers=SENT)).read()
    conn = http.client.HTTPConnection("127.0.0.1", _target[0])
    conn.request("GET", "/by/http_client", headers=SENT)
    conn.getresponse().read()
    conn.close()
    import urllib3

    urllib3.PoolManager().request("GET", base + "/by/urllib3", headers=SENT)
    import requests

    requests.get(base + "/by/requests", headers=SENT)
    import httpx

    httpx.get(base + "/by/httpx", headers=SENT)
    db = sqlite3.connect(":memory:")
    db.execute("SELECT 1").fetchall()
    db.close()

    seen = {}

    class Keep(logging.Handler):
        def emit(self, record):
            seen["log"] = {k: getattr(record, k, None) for k in ("otelTraceID", "otelSpanID")}

    log = logging.getLogger("test.app.switches")
    keep = Keep()
    log.addHandler(keep)
    log.warning("working")
    log.removeHandler(keep)

    def in_thread():
        c = sqlite3.connect(":memory:")
        c.execute("SELECT 2").fetchall()
        c.close()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    return json.dumps({"log": seen.get("log"), "query": request.args.get("q")})
