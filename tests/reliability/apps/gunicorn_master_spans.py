"""gunicorn config (``-c``) that makes the pre-fork master create spans through the agent.

``when_ready`` (the master, after the app was preloaded) ends one ``master.when_ready`` span;
``pre_fork`` (the master, right before each worker is forked, also for workers replacing recycled
ones) ends MASTER_SPANS_PER_FORK ``master.pre_fork`` spans, so the master's export thread is busy
encoding and sending while the fork happens. The agent is on sys.path (the Operator's PYTHONPATH),
so ``ferrotel._native`` imports here.
"""

import os

MASTER_SPANS_PER_FORK = int(os.environ.get("MASTER_SPANS_PER_FORK", "300"))


def _native():
    import ferrotel._native as native

    return native


def when_ready(server):
    _native().start_span("master.when_ready").end()


def pre_fork(server, worker):
    native = _native()
    for i in range(MASTER_SPANS_PER_FORK):
        native.start_span("master.pre_fork", attributes={"i": i}).end()
