"""The Celery application of the messaging suite (issue 16): the worker runs it
(``celery -A tasks worker -P prefork -c 2``), the Flask app and the drivers send its tasks.

Broker and result backend come from the environment (``CELERY_BROKER_URL``,
``CELERY_RESULT_BACKEND``). Nothing here knows of ferrotel: the agent is injected the
Operator's way."""

import os
import sqlite3
import time
import urllib.request

from celery import Celery

app = Celery("tasks", broker=os.environ.get("CELERY_BROKER_URL", "memory://"), backend=os.environ.get("CELERY_RESULT_BACKEND") or None)
app.conf.update(
    task_default_queue="jobs",
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_extended=True,
)


@app.task(name="tasks.work")
def work(url, db_path):
    """A call to the downstream service and a query."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
    with sqlite3.connect(db_path) as conn:
        (n,) = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = ?", ("table",)).fetchone()
    return {"downstream": body, "tables": n}


class PaymentDeclined(Exception):
    pass


@app.task(name="tasks.fail")
def fail(amount):
    raise PaymentDeclined("declined: %d" % amount)


@app.task(name="tasks.flaky", bind=True, max_retries=3)
def flaky(self, attempts_wanted):
    """Fails with ConnectionError and retries until attempt `attempts_wanted` (1-based)."""
    if self.request.retries + 1 < attempts_wanted:
        raise self.retry(exc=ConnectionError("attempt %d failed" % (self.request.retries + 1)), countdown=0)
    return self.request.retries + 1


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.total")
def total(numbers):
    return sum(numbers)


@app.task(name="tasks.slow")
def slow(marker, seconds):
    """Announces it started (a file), then works `seconds`: the warm-shutdown test stops the
    worker meanwhile."""
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return "finished"
