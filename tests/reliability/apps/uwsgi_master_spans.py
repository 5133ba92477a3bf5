"""The Flask test app for uwsgi, after making MASTER_SPANS_PER_FORK spans at import.

Without ``--lazy-apps`` uwsgi imports this in the master, before forking the workers from C: the
agent is initialised, has an export thread and queued spans in the master when the fork happens
(only ``pthread_atfork`` handlers run in the children). With ``--lazy-apps`` each worker imports
it after the fork, so the spans are each worker's own.
"""

import os
import sys

import ferrotel._native as _native

for _i in range(int(os.environ.get("MASTER_SPANS_PER_FORK", "300"))):
    _native.start_span("master.import", attributes={"i": _i}).end()

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "app"))

from app import app  # noqa: E402,F401  (tests/app/app.py)
