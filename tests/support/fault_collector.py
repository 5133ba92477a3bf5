"""OTLP collectors for fault tests (OTLP/HTTP: `FaultCollector`, OTLP/gRPC: `GrpcFaultCollector`):
a fixed port, killable and restartable, and able to misbehave on trace exports (answer slowly, or
with a chosen HTTP status and ``Retry-After`` / gRPC status and ``RetryInfo``).

Each is a `support.otlp_receiver.Receiver` (same storage and views: `spans()`, `wait_for_spans()`,
`metrics()`, ...) for one transport, plus:

- `port`: fixed for the collector's life, so the agent can be started against it before it
  listens (``FaultCollector(port=p)`` without `start()`), and it can come back on the same port.
  `protocol` and ``endpoint(protocol)``: what to give the agent.
- `kill()`: stop listening *and* close every open connection, as a dying collector process does
  (a plain ``shutdown()`` of Python's HTTP server would leave keep-alive connections served).
- `set_fault(Fault(...))` / `clear_fault()`: what the next trace exports get. `Fault.count` limits
  it to the next N trace export requests (then the collector is healthy again).
- `attempts`: every trace export that arrived, accepted or not: `Attempt(time, status, span_ids,
  delayed)` (`status`: the HTTP status, or the gRPC code's name), so tests can see retries (the
  same span ids again), their spacing, and that a non-retryable answer is not retried.

Only trace exports are subject to faults; metrics and logs are always accepted.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from support.otlp_receiver import (
    _MESSAGES,
    ReceivedRequest,
    Receiver,
    _decompress,
    _grpc_servicer,
    _HttpHandler,
    flatten_traces,
)
from support.processes import free_port


@dataclass(frozen=True)
class Fault:
    """How to answer trace exports: wait `delay` seconds, then answer `status` (HTTP) or
    `grpc_code` (gRPC, a `grpc.StatusCode` name) -- None: accept the data normally after the
    delay -- with ``Retry-After: retry_after`` (HTTP) or a ``RetryInfo`` of that many seconds in
    the status details (gRPC) when given."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    count: int | None = None  # only the next `count` trace export requests; None: until cleared
    grpc_code: str | None = None


@dataclass(frozen=True)
class Attempt:
    time: float  # time.monotonic() when the request body had been read
    status: int | str  # what the collector answered (HTTP status or gRPC code name), or was about to when the client had gone
    span_ids: tuple  # hex span ids in the request
    delayed: bool = False
    headers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (200, "OK")


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


class _Faults(Receiver):
    """What both collectors share: the fault to apply and the attempts seen."""

    protocol = ""

    def __init__(self):
        super().__init__()
        self._fault: Fault | None = None
        self._fault_left: int | None = None
        self.attempts: list[Attempt] = []

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
        lines = [f"collector ({self.protocol}): {len(self.requests())} requests accepted, {len(spans)} spans, errors: {self.errors()}"]
        lines += [f"  span {s['name']!r} span={s['span_id']} pid={s['resource'].get('process.pid')}" for s in spans[:20]]
        lines.append(f"trace export attempts: {len(self.attempts)}")
        t0 = self.attempts[0].time if self.attempts else 0
        for a in self.trace_attempts()[:50]:
            lines.append(f"  +{a.time - t0:.3f}s status={a.status} delayed={a.delayed} spans={len(a.span_ids)} {a.span_ids[:3]}")
        return "\n".join(lines)


class FaultCollector(_Faults):
    """OTLP/HTTP receiver on a fixed 127.0.0.1 port; see the module docstring."""

    protocol = "http/protobuf"

    def __init__(self, port: int | None = None):
        super().__init__()
        self.http_port = port or free_port()

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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def status_details(code: grpc.StatusCode, message: str, retry_delay_s: int) -> bytes:
    """``grpc-status-details-bin``: a google.rpc.Status carrying a google.rpc.RetryInfo (the OTLP/gRPC
    throttling signal), encoded by hand (the google.rpc protos are not a test dependency)."""
    duration = _varint(1 << 3 | 0) + _varint(retry_delay_s)  # google.protobuf.Duration.seconds
    retry_info = _field(1, duration)  # RetryInfo.retry_delay
    any_ = _field(1, b"type.googleapis.com/google.rpc.RetryInfo") + _field(2, retry_info)
    return _varint(1 << 3 | 0) + _varint(code.value[0]) + _field(2, message.encode()) + _field(3, any_)


class GrpcFaultCollector(_Faults):
    """OTLP/gRPC receiver on a fixed 127.0.0.1 port; see the module docstring. `kill()` stops the
    server without grace: calls in flight are cancelled and connections closed."""

    protocol = "grpc"

    def __init__(self, port: int | None = None):
        super().__init__()
        self.grpc_port = port or free_port()

    def _export_traces(self, request, context):
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        span_ids = tuple(s["span_id"] for s in flatten_traces(request))
        fault = self._take_fault()
        code = fault.grpc_code if fault and fault.grpc_code else "OK"
        self._attempt(Attempt(time.monotonic(), code, span_ids, bool(fault and fault.delay), headers))
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.grpc_code:
            status = getattr(grpc.StatusCode, fault.grpc_code)
            message = "fault injected by the test collector"
            if fault.retry_after is not None:
                details = status_details(status, message, int(fault.retry_after))
                context.set_trailing_metadata((("grpc-status-details-bin", details),))
            context.abort(status, message)
        if not (fault and fault.delay):  # a slow answer: the client has given up, nothing was delivered
            self._record(ReceivedRequest("traces", "grpc", headers, request.SerializeToString(), request))
        return _MESSAGES["traces"][1]()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "GrpcFaultCollector":
        if self._grpc is not None:
            return self
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        traces = type("_FaultTraces", (trace_service_pb2_grpc.TraceServiceServicer,), {"Export": lambda _, r, c: self._export_traces(r, c)})
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(traces(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _grpc_servicer(metrics_service_pb2_grpc.MetricsServiceServicer, "metrics", _MESSAGES["metrics"][1], self), server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            _grpc_servicer(logs_service_pb2_grpc.LogsServiceServicer, "logs", _MESSAGES["logs"][1], self), server
        )
        if server.add_insecure_port(f"127.0.0.1:{self.grpc_port}") != self.grpc_port:
            raise RuntimeError(f"could not bind the gRPC fault collector to port {self.grpc_port}")
        server.start()
        self._grpc = server
        return self

    def kill(self) -> None:
        if self._grpc is None:
            return
        server, self._grpc = self._grpc, None
        server.stop(grace=None).wait(5)

    def stop(self) -> None:
        self.kill()

    @property
    def running(self) -> bool:
        return self._grpc is not None


def fault_collector(protocol: str, port: int | None = None) -> _Faults:
    """The fault collector for an OTEL_EXPORTER_OTLP_PROTOCOL value ("http/protobuf", "grpc")."""
    return GrpcFaultCollector(port) if protocol == "grpc" else FaultCollector(port)

__all__ = ["Attempt", "Fault", "FaultCollector", "GrpcFaultCollector", "fault_collector", "status_details"]
