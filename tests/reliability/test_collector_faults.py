"""Collector faults: the application never pays, memory stays bounded, export comes back.

The Flask test app runs under gunicorn (one sync worker) with the agent exporting OTLP/HTTP to a
`FaultCollector` (or OTLP/gRPC to a `GrpcFaultCollector`) on a fixed port. Each fault
(module-scoped `fault_run`) is one run:

1. healthy phase (collector up and answering): latency of 300 sequential ``GET /``;
2. fault phase: latency of 300 requests, then 1,200 more while the worker's RSS is measured
   (after a warm-up); the collector is absent, killed, slow, or answers 429/503/400;
3. the fault ends (collector started / restarted / healthy again): one marker request every
   200 ms until one is exported (within 30 s; spans queued during the outage may legitimately be
   dropped, new ones must flow again).

Faults: ``absent`` (nothing listens at start; the collector comes up later on the same port),
``killed`` (killed mid-run, connections cut, then brought back), ``slow`` (answers after 2 s,
beyond the 500 ms export timeout), ``429`` / ``503`` (``Retry-After: 1``), ``400``. The same over
gRPC: ``grpc-absent``, ``grpc-killed``, ``grpc-slow``, ``grpc-RESOURCE_EXHAUSTED`` /
``grpc-UNAVAILABLE`` (with a ``RetryInfo`` of 1 s, gRPC's ``Retry-After``), ``grpc-INVALID_ARGUMENT``.

Assertions, per fault: p50/p99 latency with the fault within a generous bound of the healthy
figures of the same run (10x + 20 ms: a request that waited for an export would take the export
timeout, 500 ms); RSS growth over 1,200 requests under the fault below 4 MiB (the queue is bounded
at 256 spans); export resumes; retries only for retryable answers (429/503 retried after
``Retry-After``, 400 never retried); with a slow collector the queue fills and the drop counter
``ferrotel.spans.dropped{ferrotel.drop.reason=queue_full}`` says so.

`test_retry_sequence` pins the OTLP retry rules on single spans (in-process driver): 429/503 with
``Retry-After: 1`` twice, then 200 → three attempts a second apart, delivered once; 502/504 without
``Retry-After`` → retried; 400 → one attempt, never again. Over gRPC: UNAVAILABLE /
RESOURCE_EXHAUSTED with ``RetryInfo`` 1 s twice → three attempts a second apart; UNAVAILABLE alone →
retried after a backoff; RESOURCE_EXHAUSTED without ``RetryInfo`` and INVALID_ARGUMENT → one attempt
(the OTLP/gRPC rules).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from support.fault_collector import Fault, fault_collector
from support.load import Latency, measure_latencies, rss_kib
from support.operator import operator_env
from support.servers import ServerLauncher
from support.wsgi_driver import run_driver

EXPORT_TIMEOUT_MS = 500
LATENCY_N = 300
OUTAGE_N = 1200
WARMUP_N = 200
RSS_BOUND_KIB = 4 * 1024
RESUME_TIMEOUT_S = 30

BASE_ENV = {
    "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_MS),
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_BSP_MAX_QUEUE_SIZE": "256",
    "OTEL_METRIC_EXPORT_INTERVAL": "500",
}

RETRY_AFTER_S = 1.0
# Fault id -> what the collector answers trace exports with during the fault phase (absent, killed
# and slow have no answer). ``grpc-`` ids run over OTLP/gRPC.
ANSWERS = {
    "429": Fault(status=429, retry_after="1"),
    "503": Fault(status=503, retry_after="1"),
    "400": Fault(status=400, retry_after="1"),
    "grpc-RESOURCE_EXHAUSTED": Fault(grpc_code="RESOURCE_EXHAUSTED", retry_after="1"),
    "grpc-UNAVAILABLE": Fault(grpc_code="UNAVAILABLE", retry_after="1"),
    "grpc-INVALID_ARGUMENT": Fault(grpc_code="INVALID_ARGUMENT", retry_after="1"),
}
NOT_RETRYABLE = {"400", "grpc-INVALID_ARGUMENT"}
FAULTS = ["absent", "killed", "slow", "429", "503", "400"]
FAULTS += ["grpc-absent", "grpc-killed", "grpc-slow", "grpc-RESOURCE_EXHAUSTED", "grpc-UNAVAILABLE", "grpc-INVALID_ARGUMENT"]


def protocol_of(fault: str) -> str:
    return "grpc" if fault.startswith("grpc-") else "http/protobuf"


def kind_of(fault: str) -> str:
    """absent / killed / slow, or the id of an answer in ANSWERS."""
    return fault.removeprefix("grpc-") if fault.removeprefix("grpc-") in ("absent", "killed", "slow") else fault


def latency_bound_ok(faulty: Latency, healthy: Latency) -> bool:
    return faulty.p99 < 10 * healthy.p99 + 0.020 and faulty.p50 < 10 * healthy.p50 + 0.020


@dataclass
class FaultRun:
    fault: str
    healthy: Latency
    faulty: Latency
    rss_before_kib: int
    rss_after_kib: int
    markers: list
    resumed_spans: list
    resume_error: str | None
    attempts: list
    dropped_queue_full: int | None
    log: str
    notes: dict = field(default_factory=dict)

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_after_kib - self.rss_before_kib

    def failure_sections(self):
        t0 = self.attempts[0].time if self.attempts else 0
        attempts = "\n".join(
            f"  +{a.time - t0:7.3f}s status={a.status} spans={len(a.span_ids)} first={a.span_ids[:1]}" for a in self.attempts[:80]
        )
        return [
            (f"gunicorn log [{self.fault}] (tail)", self.log[-4000:]),
            (
                "figures",
                f"healthy {self.healthy}; with the fault {self.faulty}; RSS {self.rss_before_kib} -> {self.rss_after_kib} KiB "
                f"(+{self.rss_growth_kib}); dropped(queue_full)={self.dropped_queue_full}; resume: {self.resume_error or 'ok'} "
                f"after {self.notes.get('resume_seconds')} s, {len(self.markers)} marker requests",
            ),
            (f"trace export attempts ({len(self.attempts)})", attempts),
        ]


def _send(port: int, n: int, target: str = "/"):
    measure_latencies(port, target, n)


def _dropped_queue_full(collector) -> int | None:
    """Latest cumulative ferrotel.spans.dropped{ferrotel.drop.reason=queue_full} the agent pushed, if any."""
    value = None
    for m in collector.metrics():
        if m["name"] == "ferrotel.spans.dropped":
            for dp in m["data_points"]:
                if dp["attributes"].get("ferrotel.drop.reason") == "queue_full":
                    value = dp["value"] if value is None else max(value, dp["value"])
    return value


@pytest.fixture(scope="module", params=FAULTS)
def fault_run(request, rel_install, tmp_path_factory) -> FaultRun:
    fault = request.param
    protocol, kind = protocol_of(fault), kind_of(fault)
    launcher = ServerLauncher(tmp_path_factory.mktemp(f"fault-{fault}"))
    collector = fault_collector(protocol)
    extra = dict(BASE_ENV)
    if kind == "slow":
        extra["OTEL_BSP_MAX_QUEUE_SIZE"] = "64"  # the export thread is blocked: the queue must fill and drop
    if kind in ANSWERS:
        # The export timeout bounds an export *with its retries* (OTEL_EXPORTER_OTLP_TIMEOUT): it
        # must exceed Retry-After (1 s) for a retry to fit in it.
        extra["OTEL_EXPORTER_OTLP_TIMEOUT"] = "3000"
    env = operator_env(rel_install, collector.endpoint(protocol), protocol, extra=extra)
    try:
        if kind != "absent":
            collector.start()
        app = launcher.gunicorn(env, workers=1)
        worker = app.wait_for_workers(1)[0]
        port = app.port

        def healthy_phase() -> Latency:
            _send(port, 50)
            return Latency.of(measure_latencies(port, "/", LATENCY_N))

        def fault_phase() -> tuple[Latency, int, int]:
            _send(port, WARMUP_N)
            before = rss_kib(worker)
            faulty = Latency.of(measure_latencies(port, "/", LATENCY_N))
            _send(port, OUTAGE_N)
            return faulty, before, rss_kib(worker)

        if kind == "absent":
            faulty, before, after = fault_phase()
            collector.start()  # the collector comes up late, on the endpoint's port
            healthy = healthy_phase()
        else:
            healthy = healthy_phase()
            collector.wait_for_spans(1, timeout=10)  # export works before the fault
            if kind == "killed":
                collector.kill()
            elif kind == "slow":
                collector.set_fault(Fault(delay=2.0))
            else:
                collector.set_fault(ANSWERS[fault])
            faulty, before, after = fault_phase()
            if kind == "killed":
                collector.start()
            else:
                collector.clear_fault()
        # Export resumes: new requests are exported again. The queue may still be full of spans from
        # the outage when the fault ends (those are dropped and counted), so keep sending one marker
        # request every 200 ms until one of them arrives.
        markers, resume_error, resumed = [], None, []
        ended = time.monotonic()
        while True:
            marker = f"/users/{900_000 + len(markers)}"
            markers.append(marker)
            _send(port, 1, marker)
            resumed = [s for s in collector.spans() if s["attributes"].get("url.path") in markers]
            if resumed:
                break
            if time.monotonic() - ended > RESUME_TIMEOUT_S:
                resume_error = f"no span of {len(markers)} requests sent over {RESUME_TIMEOUT_S} s after the fault ended arrived"
                break
            time.sleep(0.2)
        resume_seconds = time.monotonic() - ended
        dropped = None
        if kind == "slow":
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not dropped:
                dropped = _dropped_queue_full(collector)
                time.sleep(0.2)
        time.sleep(RETRY_AFTER_S + 0.5)  # retries still under way show up in the attempts
        app.stop(timeout=30)
        return FaultRun(
            fault,
            healthy,
            faulty,
            before,
            after,
            markers,
            resumed,
            resume_error,
            collector.trace_attempts(),
            dropped,
            app.log_text(),
            {"resume_seconds": round(resume_seconds, 2)},
        )
    finally:
        launcher.kill_all()
        collector.kill()


def test_latency_unaffected(fault_run):
    assert latency_bound_ok(fault_run.faulty, fault_run.healthy), (
        f"collector {fault_run.fault}: request latency {fault_run.faulty} vs healthy {fault_run.healthy} "
        "(bound: 10x + 20 ms)"
    )


def test_memory_bounded(fault_run):
    assert fault_run.rss_growth_kib < RSS_BOUND_KIB, (
        f"collector {fault_run.fault}: worker RSS grew by {fault_run.rss_growth_kib} KiB over {LATENCY_N + OUTAGE_N} requests "
        f"({fault_run.rss_before_kib} -> {fault_run.rss_after_kib} KiB; bound {RSS_BOUND_KIB} KiB, queue 256)"
    )


def test_export_resumes(fault_run):
    assert fault_run.resume_error is None, f"collector {fault_run.fault}: export did not resume: {fault_run.resume_error}"
    paths = [s["attributes"]["url.path"] for s in fault_run.resumed_spans]
    assert len(paths) == len(set(paths)), f"marker spans exported twice: {paths}"


def _retries(attempts) -> list[tuple]:
    """(failed attempt, the next attempt carrying any of its spans) pairs."""
    pairs = []
    for i, a in enumerate(attempts):
        if a.ok or not a.span_ids:
            continue
        ids = set(a.span_ids)
        for b in attempts[i + 1 :]:
            if ids & set(b.span_ids):
                pairs.append((a, b))
                break
    return pairs


@pytest.mark.parametrize("fault_run", list(ANSWERS), indirect=True)
def test_retries_follow_spec(fault_run):
    fault = fault_run.fault
    attempts = fault_run.attempts
    answer = ANSWERS[fault].status or ANSWERS[fault].grpc_code
    failed = [a for a in attempts if a.status == answer]
    assert failed, f"no export was answered {answer}: the test proves nothing"
    pairs = _retries(attempts)
    if fault in NOT_RETRYABLE:
        assert pairs == [], (
            f"{len(pairs)} batches answered {answer} were sent again ({answer} is not retryable), "
            f"e.g. +{pairs[0][1].time - pairs[0][0].time:.2f}s later"
        )
        return
    assert pairs, f"no batch answered {answer} was ever sent again: {answer} is retryable (OTLP)"
    early = [(a, b) for a, b in pairs if b.time - a.time < RETRY_AFTER_S - 0.1]
    assert early == [], (
        f"{len(early)} retries came before Retry-After / RetryInfo 1 s had passed, "
        f"e.g. after {early[0][1].time - early[0][0].time:.3f}s"
    )


@pytest.mark.parametrize("fault_run", ["slow", "grpc-slow"], indirect=True)
def test_slow_collector_drops_are_counted(fault_run):
    assert fault_run.dropped_queue_full, (
        "the queue (64) must have overflowed while each export waited 500 ms, and the drop be counted in "
        f"ferrotel.spans.dropped{{ferrotel.drop.reason=queue_full}}; got {fault_run.dropped_queue_full}"
    )


# ---------------------------------------------------------------------------------------------
# The retry rules on a single span, in-process
# ---------------------------------------------------------------------------------------------

RETRY_MAIN = r"""
import time
request("/users/9")
release = os.environ["RELEASE_FILE"]
deadline = time.monotonic() + 40
while time.monotonic() < deadline and not os.path.exists(release):
    time.sleep(0.05)
report({"released": os.path.exists(release)})
"""

RETRY_CASES = {
    # id -> (fault, expected statuses of the attempts carrying the span, Retry-After seconds or None)
    "429-retry-after": (Fault(status=429, retry_after="1", count=2), [429, 429, 200], 1.0),
    "503-retry-after": (Fault(status=503, retry_after="1", count=2), [503, 503, 200], 1.0),
    "502-backoff": (Fault(status=502, count=1), [502, 200], None),
    "504-backoff": (Fault(status=504, count=1), [504, 200], None),
    "400-not-retried": (Fault(status=400, count=1), [400], None),
    "404-not-retried": (Fault(status=404, count=1), [404], None),
    "grpc-UNAVAILABLE-retry-info": (Fault(grpc_code="UNAVAILABLE", retry_after="1", count=2), ["UNAVAILABLE"] * 2 + ["OK"], 1.0),
    "grpc-RESOURCE_EXHAUSTED-retry-info": (
        Fault(grpc_code="RESOURCE_EXHAUSTED", retry_after="1", count=2),
        ["RESOURCE_EXHAUSTED"] * 2 + ["OK"],
        1.0,
    ),
    "grpc-UNAVAILABLE-backoff": (Fault(grpc_code="UNAVAILABLE", count=1), ["UNAVAILABLE", "OK"], None),
    # Without RetryInfo the collector does not say recovery is possible: not retryable (OTLP/gRPC).
    "grpc-RESOURCE_EXHAUSTED-not-retried": (Fault(grpc_code="RESOURCE_EXHAUSTED", count=1), ["RESOURCE_EXHAUSTED"], None),
    "grpc-INVALID_ARGUMENT-not-retried": (Fault(grpc_code="INVALID_ARGUMENT", count=1), ["INVALID_ARGUMENT"], None),
}


@pytest.mark.parametrize("case", list(RETRY_CASES))
def test_retry_sequence(rel_install, tmp_path, case):
    fault, expected, retry_after = RETRY_CASES[case]
    protocol = protocol_of(case)
    delivered = expected[-1] in (200, "OK")
    release = tmp_path / "release"
    collector = fault_collector(protocol).start()
    try:
        collector.set_fault(fault)
        extra = {
            # Bounds the export with its retries: room for two 1 s Retry-After waits.
            "OTEL_EXPORTER_OTLP_TIMEOUT": "10000",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_METRICS_EXPORTER": "none",
            "RELEASE_FILE": str(release),
        }
        env = operator_env(rel_install, collector.endpoint(protocol), protocol, extra=extra)
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(run_driver, env, RETRY_MAIN, 60)
            try:
                if delivered:
                    collector.wait_for_spans(1, timeout=30)
                    time.sleep(0.5)  # a duplicate would be on its way
                else:
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and not collector.trace_attempts():
                        time.sleep(0.05)
                    time.sleep(2.5)  # long enough for any (wrong) retry: a first backoff is well under 1 s
            except AssertionError:
                pass
            finally:
                release.touch()
            run = future.result()
    finally:
        collector.kill()
    assert run.returncode == 0, run.describe()
    attempts = collector.trace_attempts()
    assert attempts, f"no export reached the collector\n{run.describe()}"
    span_id = attempts[0].span_ids[0]
    mine = [a for a in attempts if span_id in a.span_ids]
    statuses = [a.status for a in mine]
    gaps = [round(b.time - a.time, 3) for a, b in zip(mine, mine[1:])]
    assert statuses == expected, f"{case}: attempts answered {statuses} (gaps {gaps} s), expected {expected}"
    if retry_after:
        assert all(g >= retry_after - 0.1 for g in gaps), f"{case}: retried after {gaps} s, before Retry-After {retry_after} s"
    accepted = [s for s in collector.spans() if s["span_id"] == span_id]
    assert len(accepted) == (1 if delivered else 0), f"{case}: the span was accepted {len(accepted)} times"
