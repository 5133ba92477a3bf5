"""Pre-fork and threaded servers running the Flask test app with the agent, as the Operator injects it.

One run per server configuration (module-scoped `server_run`): start the server, send N requests
(``/users/<i>``, each target once) from 8 client threads, then SIGTERM it at once (as kubelet does)
and collect what the receiver got. The schedule delay is 30 s, so nearly everything a worker
traced is still queued at SIGTERM: the exit flush has to deliver it.

| configuration | what it proves |
|---|---|
| gunicorn -w 4 (sync) | 2,000 requests over 4 forked workers: each exports its own spans, every id unique |
| gunicorn -k gthread --threads 8 -w 2 | concurrent requests inside a worker |
| gunicorn --preload -w 4, a master that makes spans before every fork, --max-requests | the agent started and exporting in the master before the fork; workers forked while the master's exporter is busy, and recycled workers |
| waitress --threads 8 | one process, a thread pool |
| uwsgi --master -p 4, with and without --lazy-apps, spans made at app import | workers forked from C (only pthread_atfork handlers run) by a master that has the agent running and spans queued |

Without ``service.instance.id`` in ``OTEL_RESOURCE_ATTRIBUTES`` (gthread, uwsgi), every worker is a
distinct instance and must say so; with it (the Operator sets one per pod), the value is kept.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.load import send_concurrently
from support.operator import RESOURCE_ATTRIBUTES, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER, Receiver
from support.processes import child_pids
from support.servers import ServerLauncher, uwsgi_unavailable, waitress_unavailable

APPS_DIR = Path(__file__).resolve().parent / "apps"
MASTER_CONF = APPS_DIR / "gunicorn_master_spans.py"
MASTER_SPANS_PER_FORK = 300
UWSGI_APP = {"app_dir": APPS_DIR, "app": "uwsgi_master_spans:app"}  # spans at import (in the master unless lazy)

RESOURCE_WITHOUT_INSTANCE_ID = ",".join(f"{k}={v}" for k, v in RESOURCE_ATTRIBUTES.items() if k != "service.instance.id")


@dataclass(frozen=True)
class Scenario:
    server: str  # gunicorn | waitress | uwsgi
    requests: int
    workers: int = 1  # processes serving requests
    kwargs: dict = field(default_factory=dict)
    instance_id_set: bool = True  # OTEL_RESOURCE_ATTRIBUTES carries service.instance.id
    master_spans: bool = False


SCENARIOS = {
    "gunicorn-sync-w4": Scenario("gunicorn", 2000, 4, {"workers": 4}),
    "gunicorn-gthread": Scenario(
        "gunicorn", 800, 2, {"workers": 2, "extra_args": ("-k", "gthread", "--threads", "8")}, instance_id_set=False
    ),
    "gunicorn-preload-master-spans": Scenario(
        "gunicorn",
        2000,
        4,
        {
            "workers": 4,
            "extra_args": ("--preload", "-c", str(MASTER_CONF), "--max-requests", "150", "--max-requests-jitter", "50"),
        },
        master_spans=True,
    ),
    "waitress": Scenario("waitress", 800, 1, {"threads": 8}),
    "uwsgi": Scenario("uwsgi", 800, 4, {"workers": 4, **UWSGI_APP}, instance_id_set=False, master_spans=True),
    "uwsgi-lazy-apps": Scenario(
        "uwsgi", 800, 4, {"workers": 4, "lazy_apps": True, **UWSGI_APP}, instance_id_set=False, master_spans=True
    ),
}


def _params():
    out = []
    for name, sc in SCENARIOS.items():
        reason = uwsgi_unavailable() if sc.server == "uwsgi" else waitress_unavailable() if sc.server == "waitress" else None
        out.append(pytest.param(name, marks=pytest.mark.skip(reason=reason)) if reason else name)
    return out


@dataclass
class ServerRun:
    name: str
    scenario: Scenario
    master_pid: int
    seen_pids: set  # every process that was a worker (or the server process) during the run
    targets: list
    responses: list  # (target, status, body)
    spans: list
    exit_code: int
    stop_seconds: float
    log: str

    @property
    def request_spans(self) -> list:
        return [s for s in self.spans if s["kind"] == SPAN_KIND_SERVER]

    @property
    def master_spans(self) -> list:
        return [s for s in self.spans if s["name"].startswith("master.")]

    def failure_sections(self):
        pids = Counter(s["resource"].get("process.pid") for s in self.spans)
        return [
            (f"{self.name} log (tail)", self.log[-5000:]),
            (
                "run",
                f"master={self.master_pid} workers seen={sorted(self.seen_pids)} spans={len(self.spans)} "
                f"by pid={dict(pids)} exit={self.exit_code} stop took {self.stop_seconds:.1f}s",
            ),
        ]


class _PidWatcher:
    """Samples the server's children every 50 ms (workers come and go with --max-requests)."""

    def __init__(self, master_pid: int, include_master: bool):
        self.master_pid = master_pid
        self.pids: set = {master_pid} if include_master else set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.pids.update(child_pids(self.master_pid))
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def _wait_for_count(rx: Receiver, n: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(rx.spans()) >= n:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # anything extra (duplicates) that was on its way
    return rx.spans()


@pytest.fixture(scope="module", params=_params())
def server_run(request, rel_install, tmp_path_factory) -> ServerRun:
    name = request.param
    sc = SCENARIOS[name]
    launcher = ServerLauncher(tmp_path_factory.mktemp(f"servers-{name}"))
    with Receiver() as rx:
        extra = {
            "OTEL_BSP_SCHEDULE_DELAY": "30000",  # spans wait in the queue: the exit flush must deliver them
            "OTEL_METRICS_EXPORTER": "none",
            "MASTER_SPANS_PER_FORK": str(MASTER_SPANS_PER_FORK),
        }
        if not sc.instance_id_set:
            extra["OTEL_RESOURCE_ATTRIBUTES"] = RESOURCE_WITHOUT_INSTANCE_ID
        env = operator_env(rel_install, rx.http_endpoint, extra=extra)
        try:
            app = getattr(launcher, sc.server)(env, **sc.kwargs)
            targets = [f"/users/{i}" for i in range(sc.requests)]
            with _PidWatcher(app.pid, include_master=sc.server == "waitress") as watcher:
                time.sleep(0.3)  # let the workers boot (and be seen)
                responses = send_concurrently(app.port, targets, threads=8)
            t0 = time.monotonic()
            exit_code = app.stop(timeout=60)
            stop_seconds = time.monotonic() - t0
            expected = sc.requests + (1 if sc.master_spans else 0)
            spans = _wait_for_count(rx, expected, timeout=5)
            log = app.log_text()
            # The watcher samples; a worker that lived briefly between samples (a --max-requests
            # restart) is still named in the server's own log.
            booted = {int(gunicorn or uwsgi) for gunicorn, uwsgi in re.findall(r"Booting worker with pid: (\d+)|\(pid: (\d+)", log)}
            return ServerRun(name, sc, app.pid, watcher.pids | booted, targets, responses, spans, exit_code, stop_seconds, log)
        finally:
            launcher.kill_all()


def test_requests_succeed(server_run):
    bad = [(t, s, b) for t, s, b in server_run.responses if s != 200]
    assert bad == [], f"{len(bad)} requests failed, e.g. {bad[:5]}"
    for target, _, body in server_run.responses[:50]:
        assert json.loads(body) == {"uid": int(target.rsplit("/", 1)[1])}


def test_each_request_exported_exactly_once(server_run):
    spans = server_run.request_spans
    ids = Counter(s["span_id"] for s in server_run.spans)
    repeated = {k: v for k, v in ids.items() if v > 1}
    assert repeated == {}, f"{len(repeated)} span ids exported more than once, e.g. {list(repeated.items())[:5]}"
    paths = Counter(s["attributes"].get("url.path") for s in spans)
    twice = {p: n for p, n in paths.items() if n > 1}
    assert twice == {}, f"requests with more than one span: {list(twice.items())[:10]}"


def test_none_lost_at_graceful_stop(server_run):
    got = {s["attributes"].get("url.path") for s in server_run.request_spans}
    missing = [t for t in server_run.targets if t not in got]
    pids = Counter(s["resource"].get("process.pid") for s in server_run.request_spans)
    # waitress has no graceful stop: SIGTERM kills it (after the agent's flush) while a worker
    # thread may still be between sending a response and closing its body, where the span ends.
    # At most one request per thread can be caught there; every completed span must arrive.
    in_flight = server_run.scenario.kwargs.get("threads", 8) if server_run.scenario.server == "waitress" else 0
    assert len(missing) <= in_flight, (
        f"{len(missing)} of {len(server_run.targets)} requests have no span after SIGTERM "
        f"(exit code {server_run.exit_code}, stop took {server_run.stop_seconds:.1f}s; spans by pid {dict(pids)}; "
        f"workers seen {sorted(server_run.seen_pids)}), e.g. {missing[:5]}"
    )


def test_every_worker_exports_its_own_spans(server_run):
    sc = server_run.scenario
    pids = Counter(s["resource"].get("process.pid") for s in server_run.request_spans)
    strangers = set(pids) - server_run.seen_pids
    assert not strangers, f"spans from processes that were not workers: {strangers} (workers {server_run.seen_pids})"
    if sc.server != "waitress":
        assert server_run.master_pid not in pids, "the master exported request spans"
    if sc.workers > 1:
        assert len(pids) >= 2, f"{sc.workers} workers, but spans from {len(pids)} process(es): {dict(pids)}"
    # a resource's process.pid is the process that made the span: one resource per pid, each its own
    for s in server_run.request_spans[:200]:
        assert s["resource"].get("process.pid") in server_run.seen_pids


def test_trace_and_span_ids_unique(server_run):
    spans = server_run.spans
    for s in spans:
        assert re.fullmatch(r"[0-9a-f]{32}", s["trace_id"]) and set(s["trace_id"]) != {"0"}, s["trace_id"]
        assert re.fullmatch(r"[0-9a-f]{16}", s["span_id"]) and set(s["span_id"]) != {"0"}, s["span_id"]
    # every request is a root: one trace each; master spans are roots too
    traces = Counter(s["trace_id"] for s in spans)
    repeated = {k: v for k, v in traces.items() if v > 1}
    assert repeated == {}, f"{len(repeated)} trace ids used by more than one root span, e.g. {list(repeated.items())[:5]}"
    span_ids = Counter(s["span_id"] for s in spans)
    assert max(span_ids.values(), default=1) == 1


def test_service_instance_id(server_run):
    sc = server_run.scenario
    by_pid: dict = {}
    for s in server_run.request_spans:
        by_pid.setdefault(s["resource"].get("process.pid"), set()).add(s["resource"].get("service.instance.id"))
    assert by_pid, "no request spans: nothing to check the instance ids of"
    if sc.instance_id_set:
        expected = RESOURCE_ATTRIBUTES["service.instance.id"]
        assert all(ids == {expected} for ids in by_pid.values()), f"the configured service.instance.id was not kept: {by_pid}"
        return
    missing = [pid for pid, ids in by_pid.items() if None in ids]
    assert missing == [], (
        f"no service.instance.id configured: each worker must report its own, but workers {missing} report none "
        f"(ids by pid: {by_pid})"
    )
    assert all(len(ids) == 1 for ids in by_pid.values()), f"one process, several instance ids: {by_pid}"
    all_ids = [next(iter(ids)) for ids in by_pid.values()]
    assert len(set(all_ids)) == len(all_ids), f"workers share a service.instance.id: {by_pid}"


@pytest.mark.parametrize("server_run", ["gunicorn-preload-master-spans", "uwsgi", "uwsgi-lazy-apps"], indirect=True)
def test_master_spans_before_fork(server_run):
    """Spans made before the fork are exported once each, by the process that made them.

    gunicorn --preload: the master makes spans when ready and before every fork (workers are
    recycled by --max-requests). uwsgi: the app module makes spans at import, in the master
    (forked from C afterwards) or, with --lazy-apps, in each worker.
    """
    master = server_run.master_spans
    pids = Counter(s["resource"].get("process.pid") for s in master)
    if server_run.name == "uwsgi-lazy-apps":
        workers = {s["resource"].get("process.pid") for s in server_run.request_spans}
        assert workers and pids, f"no request or import spans (import spans by pid: {dict(pids)})"
        assert all(n == MASTER_SPANS_PER_FORK for n in pids.values()), f"import spans by pid: {dict(pids)}"
        assert workers <= set(pids), f"workers {workers} did not export their import spans ({dict(pids)})"
        return
    if server_run.name == "uwsgi":
        expected = MASTER_SPANS_PER_FORK
    else:
        forks = len(re.findall(r"Booting worker with pid", server_run.log))
        assert forks > server_run.scenario.workers, "no worker was recycled: --max-requests did not apply"
        expected = 1 + MASTER_SPANS_PER_FORK * forks
    assert len(master) == expected, f"expected {expected} spans made in the master, got {len(master)} (by pid {dict(pids)})"
    assert set(pids) == {server_run.master_pid}, f"spans made in the master exported by {dict(pids)}"
