"""An OTLP/HTTP collector for fault tests: a fixed port, killable and restartable, and able to
misbehave on trace exports (answer slowly, or with a chosen status code and ``Retry-After``).

It is a `support.otlp_receiver.Receiver` (same storage and views: `spans()`, `wait_for_spans()`,
`metrics()`, ...), HTTP only, plus:

- `port`: fixed for the collector's life, so the agent can be started against it before it
  listens (`FaultCollector(port=p)` without `start()`), and it can come back on the same port.
- `kill()`: stop listening *and* close every open connection, as a dying collector process does
  (a plain ``shutdown()`` of Python's HTTP server would leave keep-alive connections served).
- `set_fault(Fault(...))` / `clear_fault()`: what the next trace exports get. `Fault.count` limits
  it to the next N trace export requests (then the collector is healthy again).
- `attempts`: every POST /v1/traces that arrived, accepted or not: `Attempt(time, status,
  span_ids, delayed)`, so tests can see retries (the same span ids again), their spacing, and that
  a non-retryable answer is not retried.

Only ``/v1/traces`` requests are subject to faults; metrics and logs are always accepted.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from support.otlp_receiver import (
    _MESSAGES,
    ReceivedRequest,
    Receiver,
    _decompress,
    _HttpHandler,
    flatten_traces,
)
from support.processes import free_port


@dataclass(frozen=True)
class Fault:
    """How to answer trace exports: wait `delay` seconds, then answer `status` (None: accept the
    data normally after the delay), with ``Retry-After: retry_after`` when given."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    count: int | None = None  # only the next `count` trace export requests; None: until cleared


@dataclass(frozen=True)
class Attempt:
    time: float  # time.monotonic() when the request body had been read
    status: int  # what the collector answered (or was about to answer when the client had gone)
    span_ids: tuple  # hex span ids in the request
    delayed: bool = False
    headers: dict = field(default_factory=dict)


class _FaultHandler(_HttpHandler):
    server: "_FaultServer"

    def do_POST(self):  # noqa: N802 - http.server naming
        collector = self.server.receiver
        path = self.path.split("?")[0]
        if path != "/v1/traces":
            return super().do_POST()
        wire = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        request_cls, response_cls = _MESSAGES["traces"]
        try:
            body = _decompress(wire, headers.get("content-encoding", ""))
            message = request_cls.FromString(body)
        except Exception as exc:  # noqa: BLE001 - any decode failure is the client's bug: report it
            collector._record_error(f"HTTP {self.path}: {exc!r}")
            return self._reply(400, str(exc).encode(), "text/plain")
        span_ids = tuple(s["span_id"] for s in flatten_traces(message))
        fault = collector._take_fault()
        status = fault.status if fault and fault.status else 200
        collector._attempt(Attempt(time.monotonic(), status, span_ids, bool(fault and fault.delay), headers))
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status:
            self.send_response(fault.status)
            if fault.retry_after is not None:
                self.send_header("Retry-After", fault.retry_after)
            payload = b"fault injected by the test collector"
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if not (fault and fault.delay):  # a slow answer: the client has given up, nothing was delivered
            collector._record(ReceivedRequest("traces", "http", headers, body, message, path=self.path))
        self._reply(200, response_cls().SerializeToString(), "application/x-protobuf")


class _FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, collector: "FaultCollector", port: int):
        self.receiver = collector
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _FaultHandler)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # a killed connection is expected here
        pass

    def drop_connections(self):
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conn.close()
            except OSError:
                pass


class FaultCollector(Receiver):
    """OTLP/HTTP receiver on a fixed 127.0.0.1 port; see the module docstring."""

    def __init__(self, port: int | None = None):
        super().__init__()
        self.http_port = port or free_port()
        self._fault: Fault | None = None
        self._fault_left: int | None = None
        self.attempts: list[Attempt] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "FaultCollector":
        if self._http is not None:
            return self
        self._http = _FaultServer(self, self.http_port)
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-collector", daemon=True
        )
        self._http_thread.start()
        return self

    def kill(self) -> None:
        """Stop listening and cut every open connection (the collector process died)."""
        if self._http is None:
            return
        server, self._http = self._http, None
        server.shutdown()
        server.server_close()
        server.drop_connections()
        self._http_thread.join(5)

    def stop(self) -> None:
        self.kill()

    @property
    def running(self) -> bool:
        return self._http is not None

    # -- faults ------------------------------------------------------------

    def set_fault(self, fault: Fault) -> None:
        with self._cond:
            self._fault = fault
            self._fault_left = fault.count

    def clear_fault(self) -> None:
        with self._cond:
            self._fault = None
            self._fault_left = None

    def _take_fault(self) -> Fault | None:
        with self._cond:
            fault = self._fault
            if fault is None:
                return None
            if self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._fault = None
                    self._fault_left = None
            return fault

    def _attempt(self, attempt: Attempt) -> None:
        with self._cond:
            self.attempts.append(attempt)
            self._cond.notify_all()

    def trace_attempts(self) -> list[Attempt]:
        with self._cond:
            return list(self.attempts)

    def summary(self) -> str:
        spans = self.spans()
        lines = [f"collector: {len(self.requests())} requests accepted, {len(spans)} spans, errors: {self.errors()}"]
        lines += [f"  span {s['name']!r} span={s['span_id']} pid={s['resource'].get('process.pid')}" for s in spans[:20]]
        lines.append(f"trace export attempts: {len(self.attempts)}")
        t0 = self.attempts[0].time if self.attempts else 0
        for a in self.trace_attempts()[:50]:
            lines.append(f"  +{a.time - t0:.3f}s status={a.status} delayed={a.delayed} spans={len(a.span_ids)} {a.span_ids[:3]}")
        return "\n".join(lines)


__all__ = ["Attempt", "Fault", "FaultCollector"]
