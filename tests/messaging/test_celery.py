"""Celery end to end (issue 16): a real broker (Redis; RabbitMQ too where Debian's package is
installed), a real worker in the prefork pool (``celery worker -P prefork -c 2``), a Flask view
under gunicorn that queues a task, and driver processes, every one injected the Operator's way
(PYTHONPATH to the agent tree, OTEL_* variables) and exporting to the real OTLP receiver.

What is asserted, span by span: the incoming request -> the PRODUCER ``send jobs`` span -> the
worker's CONSUMER ``process jobs`` span (its child, in another process) -> the task's HTTP call
and query -> the downstream service, which receives the HTTP span's context; a failing task
(ERROR, ``error.type``, the ``exception`` event, the exception the client gets unchanged); a
retried task (each attempt a span, each retry sent from the attempt before it); canvas
primitives; eager mode; warm shutdown loses nothing; the switch by name."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET

HERE = Path(__file__).resolve().parent
SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5
QUEUE = "jobs"


# ---- the parts: broker, downstream service, worker ----------------------------------------------


@pytest.fixture(scope="module")
def install(dist_dir, tmp_path_factory):
    return install_like_operator(dist_dir, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def broker(request, redis_server):
    """(broker URL, result backend URL): results always in Redis (database 1)."""
    backend = redis_server.url.rsplit("/", 1)[0] + "/1"
    if request.param == "redis":
        return redis_server.url, backend
    rabbit = request.getfixturevalue("rabbitmq_server")
    return rabbit.url, backend


class Downstream:
    """The service the task calls: a plain HTTP server that keeps the traceparent it received."""

    def __init__(self):
        seen = self.seen = {}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                seen[self.path] = self.headers.get("traceparent")
                self.send_response(200)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"pong")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def downstream():
    d = Downstream()
    yield d
    d.close()


def app_env(install, receiver, broker, service, **extra):
    broker_url, backend_url = broker
    return operator_env(
        install,
        receiver.http_endpoint,
        app_pythonpath=str(HERE),
        extra={
            "OTEL_SERVICE_NAME": service,
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": backend_url,
            **extra,
        },
    )


class Worker:
    """``celery -A tasks worker -P prefork -c 2``, in its own process group, log in a file."""

    def __init__(self, env, log_path: Path, queue=QUEUE):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-P", "prefork", "-c", "2", "-Q", queue, "--loglevel=INFO",
                 "-n", "%s-%d@localhost" % (queue, os.getpid()), "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=str(HERE), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while " ready." not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("the Celery worker did not start\n" + self.log())
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=60) -> int:
        """Warm shutdown (SIGTERM): running tasks finish, the pool's children exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the worker did not stop within %ss\n%s" % (timeout, self.log())) from None

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)


@pytest.fixture(scope="module")
def worker(install, module_receiver, broker, tmp_path_factory):
    w = Worker(app_env(install, module_receiver, broker, "celery-worker"), tmp_path_factory.mktemp("worker") / "worker.log")
    yield w
    code = w.stop()
    log = w.log()
    assert code == 0, log
    assert not re.search(r"^ferrotel", log, re.M), log  # the agent said nothing: no fault, no warning


def drive(install, receiver, broker, mode, **extra):
    done = subprocess.run(
        [sys.executable, str(HERE / "driver.py"), mode],
        cwd=str(HERE), env=app_env(install, receiver, broker, "celery-client", **extra), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not re.search(r"^ferrotel", done.stderr, re.M), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- span helpers -------------------------------------------------------------------------------


def trace_of(receiver, root_pred, celery_count, timeout=30):
    """The root span matching `root_pred` and its whole trace, once `celery_count` Celery spans
    arrived in it (a task's own spans end before its process span, so they are there by then)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.spans()
        roots = [s for s in spans if root_pred(s)]
        if roots:
            trace = [s for s in spans if s["trace_id"] == roots[-1]["trace_id"]]
            if sum(s["scope_name"] == "ferrotel.celery" for s in trace) >= celery_count or time.monotonic() > deadline:
                return roots[-1], trace
        elif time.monotonic() > deadline:
            raise AssertionError("no root span: " + ", ".join(s["name"] for s in spans))
        time.sleep(0.1)


def celery_spans(trace, kind):
    return [s for s in trace if s["kind"] == kind and s["scope_name"] == "ferrotel.celery"]


def is_job(s):
    return s["name"] == "job" and s["resource"].get("service.name") == "celery-client"


def check_messaging(span, operation, task, task_id=None):
    a = span["attributes"]
    assert span["name"] == "%s %s" % (operation, QUEUE)
    assert a["messaging.system"] == "celery"
    assert a["messaging.operation.type"] == operation
    assert a["messaging.operation.name"] == operation
    assert a["messaging.destination.name"] == QUEUE
    assert a["ferrotel.celery.task.name"] == task
    if task_id is not None:
        assert a["messaging.message.id"] == task_id
    assert span["start_ns"] <= span["end_ns"]


def only(spans, what):
    assert len(spans) == 1, (what, [(s["name"], s["kind"], s["attributes"].get("ferrotel.celery.task.name")) for s in spans])
    return spans[0]


# ---- the tests ----------------------------------------------------------------------------------


def test_flask_view_to_worker_to_downstream(install, module_receiver, broker, worker, downstream, gunicorn, tmp_path):
    """One trace: GET /orders/{order} -> send -> process (another process) -> HTTP call and query
    -> the downstream service."""
    db = tmp_path / "tasks.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    web = gunicorn.start(app_env(install, module_receiver, broker, "celery-web", TASKS_DB=str(db)), app_dir=HERE, app="web_app:app")
    import urllib.request

    order = int(time.time() * 1000) % 10**9  # this run's own: the receiver outlives one broker's run
    with urllib.request.urlopen("http://127.0.0.1:%d/orders/%d?downstream=%s/stock" % (web.port, order, downstream.url), timeout=30) as resp:
        task_id = json.loads(resp.read())["task_id"]

    def is_request(s):
        return s["kind"] == SPAN_KIND_SERVER and s["attributes"].get("url.path") == "/orders/%d" % order

    # request, send, process, HTTP call, query, and the broker and result backend clients' own spans
    server, trace = trace_of(module_receiver, is_request, 2)
    assert server["name"] == "GET /orders/<int:order>"
    send = only(celery_spans(trace, SPAN_KIND_PRODUCER), "send")
    process = only(celery_spans(trace, SPAN_KIND_CONSUMER), "process")
    check_messaging(send, "send", "tasks.work", task_id)
    check_messaging(process, "process", "tasks.work", task_id)
    assert send["parent_span_id"] == server["span_id"]
    assert send["resource"]["service.name"] == "celery-web"
    # The worker's span is the send span's child (and links to it, the conventions' correlation).
    assert process["parent_span_id"] == send["span_id"]
    assert [(l["trace_id"], l["span_id"]) for l in process["links"]] == [(send["trace_id"], send["span_id"])]
    assert process["resource"]["service.name"] == "celery-worker"
    assert process["resource"]["process.pid"] != send["resource"]["process.pid"]
    assert process["status_code"] == STATUS_UNSET
    # The task's own work is the process span's child.
    (call,) = [s for s in trace if s["kind"] == SPAN_KIND_CLIENT and s["attributes"].get("url.full", "").endswith("/stock")]
    (query,) = [s for s in trace if s["kind"] == SPAN_KIND_CLIENT and s["attributes"].get("db.system.name") == "sqlite"]
    assert call["parent_span_id"] == process["span_id"]
    assert query["parent_span_id"] == process["span_id"]
    # ... and the downstream service received the HTTP call's context.
    assert downstream.seen["/stock"] == "00-%s-%s-01" % (call["trace_id"], call["span_id"])
    by_id = {s["span_id"]: s for s in trace}
    assert all(s["parent_span_id"] in by_id for s in trace if s is not server)


def test_failing_task(install, module_receiver, broker, worker):
    got = drive(install, module_receiver, broker, "failure")
    # The client sees the task's exception as without the agent.
    assert (got["state"], got["type"], got["message"]) == ("FAILURE", "PaymentDeclined", "declined: 7")
    job, trace = trace_of(module_receiver, is_job, 2)
    send = only(celery_spans(trace, SPAN_KIND_PRODUCER), "send")
    process = only(celery_spans(trace, SPAN_KIND_CONSUMER), "process")
    check_messaging(send, "send", "tasks.fail", got["task_id"])
    check_messaging(process, "process", "tasks.fail", got["task_id"])
    assert send["parent_span_id"] == job["span_id"] and process["parent_span_id"] == send["span_id"]
    assert send["status_code"] == STATUS_UNSET
    assert process["status_code"] == STATUS_ERROR
    assert process["attributes"]["error.type"] == "tasks.PaymentDeclined"
    (event,) = process["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "tasks.PaymentDeclined"
    assert event["attributes"]["exception.message"] == "declined: 7"
    assert "raise PaymentDeclined" in event["attributes"]["exception.stacktrace"]


def test_retried_task(install, module_receiver, broker, worker):
    """Three attempts: each a process span; each retry is sent from inside the attempt before it,
    so attempt n+1's parent is the send span under attempt n."""
    got = drive(install, module_receiver, broker, "retry")
    assert got["result"] == 3
    job, trace = trace_of(module_receiver, is_job, 6)
    sends = celery_spans(trace, SPAN_KIND_PRODUCER)
    processes = celery_spans(trace, SPAN_KIND_CONSUMER)
    assert len(sends) == 3 and len(processes) == 3, [(s["name"], s["kind"]) for s in trace]
    for s in sends + processes:
        check_messaging(s, "send" if s["kind"] == SPAN_KIND_PRODUCER else "process", "tasks.flaky", got["task_id"])
    by_id = {s["span_id"]: s for s in trace}
    parent = job
    for attempt in range(3):
        (send,) = [s for s in sends if s["parent_span_id"] == parent["span_id"]]
        (process,) = [s for s in processes if s["parent_span_id"] == send["span_id"]]
        if attempt < 2:  # retried: the attempt failed with the exception given to retry()
            assert process["status_code"] == STATUS_ERROR
            assert process["attributes"]["error.type"] == "ConnectionError"
            assert process["events"][0]["attributes"]["exception.message"] == "attempt %d failed" % (attempt + 1)
        else:
            assert process["status_code"] == STATUS_UNSET and not process["events"]
        parent = process
    assert all(s["parent_span_id"] in by_id for s in trace if s is not job)


def test_canvas_primitives(install, module_receiver, broker, worker):
    """chain, group, chord, send_task: every task sent has its send span, every run its process
    span as that send's child, all in the driver's trace (the chain's next link and the chord's
    body are sent by the worker, from the task before them)."""
    got = drive(install, module_receiver, broker, "canvas")
    assert got == {"chain": 6, "group": [0, 2, 4], "chord": 6, "send_task": 42}
    # chain 2 + group 3 + chord 3 + send_task 1 = 9 tasks: 9 sends and 9 runs
    job, trace = trace_of(module_receiver, is_job, 18)
    sends = celery_spans(trace, SPAN_KIND_PRODUCER)
    processes = celery_spans(trace, SPAN_KIND_CONSUMER)
    assert len(sends) == 9 and len(processes) == 9, sorted((s["name"], s["attributes"].get("ferrotel.celery.task.name")) for s in trace)
    by_id = {s["span_id"]: s for s in trace}
    for p in processes:
        send = by_id[p["parent_span_id"]]
        assert send["kind"] == SPAN_KIND_PRODUCER
        assert send["attributes"]["messaging.message.id"] == p["attributes"]["messaging.message.id"]
    # The chain's second link is sent by the first one's run; the chord's body by the last header task's.
    names = {p["span_id"]: p["attributes"]["ferrotel.celery.task.name"] for p in processes}
    from_worker = [s for s in sends if s["parent_span_id"] in names]
    assert sorted(s["attributes"]["ferrotel.celery.task.name"] for s in from_worker) == ["tasks.add", "tasks.total"]
    assert sorted(s["attributes"]["ferrotel.celery.task.name"] for s in processes) == ["tasks.add"] * 8 + ["tasks.total"]


def test_eager_mode(install, module_receiver, broker):
    """task_always_eager: the task runs inline; its process span is the caller's span's child (no
    message, no send span, no destination), results and exceptions as without the agent."""
    got = drive(install, module_receiver, broker, "eager")
    assert got == {"result": 5, "failed": "PaymentDeclined"}
    job, trace = trace_of(module_receiver, is_job, 2)
    assert not celery_spans(trace, SPAN_KIND_PRODUCER)
    processes = celery_spans(trace, SPAN_KIND_CONSUMER)
    assert sorted(p["attributes"]["ferrotel.celery.task.name"] for p in processes) == ["tasks.add", "tasks.fail"]
    for p in processes:
        assert p["parent_span_id"] == job["span_id"] and p["name"] == "process" and not p["links"]
        assert "messaging.destination.name" not in p["attributes"]
    (failed,) = [p for p in processes if p["attributes"]["ferrotel.celery.task.name"] == "tasks.fail"]
    assert failed["status_code"] == STATUS_ERROR and failed["attributes"]["error.type"] == "tasks.PaymentDeclined"


def test_warm_shutdown_loses_nothing(install, receiver, broker, tmp_path):
    """A task still running when the worker is told to stop (SIGTERM): the worker waits for it,
    the pool's children exit, and the task's span has been exported by then."""
    # its own queue: the module's worker must not take the task
    worker = Worker(app_env(install, receiver, broker, "celery-worker"), tmp_path / "worker.log", queue="slow")
    try:
        marker = tmp_path / "started"
        code = (
            "import json, tasks\n"
            "r = tasks.slow.apply_async((%r, 1.5), queue='slow')\n"
            "print(json.dumps({'task_id': r.id}))\n"
            "from ferrotel import _native; _native.flush()\n" % str(marker)
        )
        done = subprocess.run([sys.executable, "-c", code], cwd=str(HERE), env=app_env(install, receiver, broker, "celery-client"), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        task_id = json.loads(done.stdout.strip().splitlines()[-1])["task_id"]
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        assert worker.stop() == 0, worker.log()
    finally:
        worker.kill()
    log = worker.log()
    assert "Task tasks.slow[%s] succeeded" % task_id in log, log
    # Everything was exported before the worker's processes exited: no waiting here.
    (process,) = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_CONSUMER and s["attributes"].get("messaging.message.id") == task_id]
    assert process["resource"]["process.pid"] == int(marker.read_text())
    (send,) = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_PRODUCER and s["attributes"].get("messaging.message.id") == task_id]
    assert process["parent_span_id"] == send["span_id"]
    assert process["name"] == send["name"].replace("send", "process") == "process slow"


def test_link_only_opt_in(install, receiver, redis_server, tmp_path):
    """FERROTEL_CELERY_LINK_ONLY=true on the worker: the task run's span starts its own trace and
    links to the send span (the conventions' default shape) instead of being its child."""
    broker = (redis_server.url, redis_server.url.rsplit("/", 1)[0] + "/1")
    worker = Worker(app_env(install, receiver, broker, "celery-worker", FERROTEL_CELERY_LINK_ONLY="true"), tmp_path / "worker.log", queue="linked")
    try:
        code = "import tasks\nassert tasks.add.apply_async((2, 2), queue='linked').get(timeout=60) == 4\nfrom ferrotel import _native; _native.flush()\n"
        done = subprocess.run([sys.executable, "-c", code], cwd=str(HERE), env=app_env(install, receiver, broker, "celery-client"), capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        spans = receiver.wait_for_spans(1, timeout=30, predicate=lambda s: s["kind"] == SPAN_KIND_CONSUMER and s["scope_name"] == "ferrotel.celery")
    finally:
        assert worker.stop() == 0, worker.log()
    (process,) = [s for s in spans if s["kind"] == SPAN_KIND_CONSUMER and s["scope_name"] == "ferrotel.celery"]
    (send,) = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_PRODUCER and s["scope_name"] == "ferrotel.celery"]
    assert process["parent_span_id"] == "" and process["trace_id"] != send["trace_id"]
    assert [(l["trace_id"], l["span_id"]) for l in process["links"]] == [(send["trace_id"], send["span_id"])]
    assert process["name"] == "process linked" and send["name"] == "send linked"


def test_send_that_raises(install, receiver):
    """A broker that refuses the connection: the send span records the exception, the app gets
    it as it was."""
    from support.processes import free_port

    got = drive(install, receiver, ("redis://127.0.0.1:%d/0" % free_port(), ""), "unreachable")
    job, trace = trace_of(receiver, is_job, 1)
    send = only(celery_spans(trace, SPAN_KIND_PRODUCER), "send")
    assert send["parent_span_id"] == job["span_id"]
    assert send["status_code"] == STATUS_ERROR
    assert got["raised"] == send["attributes"]["error.type"] == send["events"][0]["attributes"]["exception.type"]
    assert got["raised"].startswith("kombu.exceptions.")


@pytest.mark.parametrize("disabled", ["", "celery"])
def test_switched_off_by_name(install, receiver, disabled):
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=celery: no Celery spans and no headers added (the
    memory:// transport keeps the message in the process); the app's own headers as they were."""
    broker = ("memory://", "")
    extra = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled}
    sent = drive(install, receiver, broker, "memory", **extra)
    assert sent["id"] == sent["task_id"] and sent["app-header"] == "kept"
    eager = drive(install, receiver, broker, "eager", **extra)
    assert eager == {"result": 5, "failed": "PaymentDeclined"}
    receiver.wait_for_spans(2, predicate=is_job)
    ours = [s for s in receiver.spans() if s["scope_name"] == "ferrotel.celery"]
    if disabled:
        assert sent["traceparent"] is None and ours == []
    else:
        (send,) = [s for s in ours if s["kind"] == SPAN_KIND_PRODUCER]
        assert sent["traceparent"] == "00-%s-%s-01" % (send["trace_id"], send["span_id"])
        assert sorted(s["attributes"]["ferrotel.celery.task.name"] for s in ours if s["kind"] == SPAN_KIND_CONSUMER) == ["tasks.add", "tasks.fail"]
