"""Flask services for tests/gevent/test_gevent.py, run under gevent.

    gunicorn -k gevent gevent_app:app          # gunicorn's gevent worker (monkey-patches itself)
    python gevent_app.py PORT                  # patch_all() first, then gevent.pywsgi.WSGIServer

``/users/<uid>`` (the backend) sleeps a little (``time.sleep``, patched: the greenlets
interleave) and answers. The frontend (``BACKEND_URL`` set) has:

- ``/orders/<oid>``: a call to the backend with requests (urllib3), then a sqlite3 query, in
  the request's own greenlet;
- ``/fanout/<oid>``: the same call made from greenlets the view starts itself: ``gevent.spawn``,
  ``gevent.pool.Pool.spawn`` and a (patched) ``threading.Thread``, joined before answering.
"""

import os
import sys

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import sqlite3  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import requests  # noqa: E402
from flask import Flask, jsonify  # noqa: E402

BACKEND = os.environ.get("BACKEND_URL")
app = Flask(__name__)
_session = requests.Session()


def _call(path):
    return _session.get(BACKEND + path, timeout=30).status_code


def _query(oid):
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute("SELECT ? + 1", (oid,)).fetchone()[0]
    finally:
        conn.close()


@app.route("/users/<int:uid>")
def user(uid):
    time.sleep(0.05)
    return jsonify(user=uid)


@app.route("/orders/<int:oid>")
def order(oid):
    status = _call("/users/%d" % oid)
    return jsonify(order=oid, calls=[status], query=_query(oid))


@app.route("/fanout/<int:oid>")
def fanout(oid):
    results = {}
    spawned = gevent.spawn(_call, "/users/%d?via=spawn" % oid)
    pooled = gevent.pool.Pool(2).spawn(_call, "/users/%d?via=pool" % oid)
    thread = threading.Thread(target=lambda: results.setdefault("thread", _call("/users/%d?via=thread" % oid)))
    thread.start()
    gevent.joinall([spawned, pooled])
    thread.join()
    return jsonify(order=oid, calls=[spawned.value, pooled.value, results.get("thread")])


if __name__ == "__main__":
    from gevent.pywsgi import WSGIServer

    WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None).serve_forever()
