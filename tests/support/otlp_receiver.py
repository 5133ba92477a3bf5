"""A real OTLP receiver (HTTP/protobuf and gRPC) built on the upstream opentelemetry-proto package.

Usage::

    with Receiver() as rx:
        ...  # point an exporter at rx.http_endpoint or rx.grpc_endpoint
        spans = rx.wait_for_spans(3, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)

``Receiver(tls=ServerTls(...))`` serves both transports over TLS instead (the endpoints are then
``https://``), optionally requiring a client certificate (mTLS); see `support.tls_pki`.

``rx.stall("traces", 30)`` makes the receiver hold every export request of that signal (both
transports) for up to 30 s before answering and recording it (``rx.release()`` ends it early),
as a hanging collector pipeline for one signal would; the other signals are served as usual.
"""

from __future__ import annotations

import gzip
import ssl
import sys
import tempfile
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

# opentelemetry.proto.trace.v1.Span.SpanKind / Status.StatusCode enum values.
SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

# signal -> (request class, response class)
_MESSAGES = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}
_HTTP_PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}


@dataclass(frozen=True)
class ServerTls:
    """The receiver's TLS identity: its certificate chain and key (PEM); with `client_ca_pem`, a
    client certificate issued by that CA is required (mTLS)."""

    cert_chain_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None = None

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:  # the ssl module loads chains from files only
            chain, key = f"{tmp}/chain.pem", f"{tmp}/key.pem"
            with open(chain, "wb") as f:
                f.write(self.cert_chain_pem)
            with open(key, "wb") as f:
                f.write(self.key_pem)
            ctx.load_cert_chain(chain, key)
        if self.client_ca_pem is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.client_ca_pem.decode())
        return ctx

    def grpc_credentials(self):
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_chain_pem)],
            root_certificates=self.client_ca_pem,
            require_client_auth=self.client_ca_pem is not None,
        )


@dataclass(frozen=True)
class ReceivedRequest:
    """One export request as it arrived."""

    signal: str  # "traces" | "metrics" | "logs"
    transport: str  # "http" | "grpc"
    headers: dict  # lower-cased header / gRPC metadata name -> value
    body: bytes  # the (decompressed) protobuf payload
    decoded: object  # the decoded Export*ServiceRequest; None until first read (lazy receiver)
    path: str = ""  # HTTP request target as sent (e.g. "/v1/traces"); "" for gRPC

    @property
    def message(self):
        """The decoded Export*ServiceRequest."""
        if self.decoded is None:
            object.__setattr__(self, "decoded", _MESSAGES[self.signal][0].FromString(self.body))  # frozen: a cache
        return self.decoded


# ---------------------------------------------------------------------------
# proto -> plain python
# ---------------------------------------------------------------------------


def any_value(value):
    """Convert an opentelemetry.proto.common.v1.AnyValue to a python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(key_values):
    """Convert repeated KeyValue to a dict."""
    return {kv.key: any_value(kv.value) for kv in key_values}


def _hex(raw: bytes) -> str:
    return raw.hex() if raw else ""


def _flatten_span(span, resource, scope):
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": _hex(span.trace_id),
        "span_id": _hex(span.span_id),
        "parent_span_id": _hex(span.parent_span_id),
        "trace_state": span.trace_state,
        "flags": span.flags,
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": attributes(span.attributes),
        "status_code": span.status.code,
        "status_message": span.status.message,
        "events": [
            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": attributes(e.attributes), "dropped_attributes_count": e.dropped_attributes_count}
            for e in span.events
        ],
        "links": [
            {"trace_id": _hex(link.trace_id), "span_id": _hex(link.span_id), "attributes": attributes(link.attributes), "dropped_attributes_count": link.dropped_attributes_count}
            for link in span.links
        ],
        "dropped_attributes_count": span.dropped_attributes_count,
        "dropped_events_count": span.dropped_events_count,
        "dropped_links_count": span.dropped_links_count,
        "resource": attributes(resource.attributes),
        "scope_name": scope.name,
        "scope_version": scope.version,
    }


def flatten_traces(request) -> list:
    """ExportTraceServiceRequest -> list of flat span dicts."""
    return [
        _flatten_span(span, rs.resource, ss.scope)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def _flatten_data_point(dp):
    fields = dp.DESCRIPTOR.fields_by_name
    out = {"attributes": attributes(dp.attributes), "time_ns": dp.time_unix_nano}
    if "value" in dp.DESCRIPTOR.oneofs_by_name:  # NumberDataPoint: as_int | as_double
        kind = dp.WhichOneof("value")
        out["value"] = getattr(dp, kind) if kind else None
    for name in ("count", "sum"):  # histograms / summaries
        if name in fields:
            out[name] = getattr(dp, name)
    if "bucket_counts" in fields:
        out["bucket_counts"] = list(dp.bucket_counts)
        out["explicit_bounds"] = list(getattr(dp, "explicit_bounds", []))
    return out


def flatten_metrics(request) -> list:
    """ExportMetricsServiceRequest -> list of flat metric dicts."""
    out = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data_kind = metric.WhichOneof("data")
                points = getattr(metric, data_kind).data_points if data_kind else []
                out.append(
                    {
                        "name": metric.name,
                        "description": metric.description,
                        "unit": metric.unit,
                        "type": data_kind,
                        "data_points": [_flatten_data_point(dp) for dp in points],
                        "resource": attributes(rm.resource.attributes),
                        "scope_name": sm.scope.name,
                        "scope_version": sm.scope.version,
                    }
                )
    return out


def flatten_logs(request) -> list:
    """ExportLogsServiceRequest -> list of flat log record dicts."""
    return [
        {
            "body": any_value(rec.body),
            "severity_number": rec.severity_number,
            "severity_text": rec.severity_text,
            "time_ns": rec.time_unix_nano,
            "attributes": attributes(rec.attributes),
            "trace_id": _hex(rec.trace_id),
            "span_id": _hex(rec.span_id),
            "resource": attributes(rl.resource.attributes),
            "scope_name": sl.scope.name,
            "scope_version": sl.scope.version,
        }
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for rec in sl.log_records
    ]


# ---------------------------------------------------------------------------
# transports
# ---------------------------------------------------------------------------


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real collector
    timeout = 60  # idle keep-alive connections do not pin threads forever
    server: "_HttpServer"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, code: int, body: bytes, content_type: str):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, in the request's thread, not in accept()

    def do_POST(self):
        wire = self._read_body()
        signal = _HTTP_PATHS.get(self.path.split("?")[0])
        if signal is None:
            self.server.receiver._record_error(f"HTTP POST to unknown path {self.path!r}")
            return self._reply(404, b"not found", "text/plain")
        headers = {k.lower(): v for k, v in self.headers.items()}
        request_cls, response_cls = _MESSAGES[signal]
        try:
            body = _decompress(wire, headers.get("content-encoding", ""))
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/x-protobuf":
                raise ValueError(f"unsupported Content-Type {content_type!r}")
            # A lazy receiver (benchmarks) decodes when the message is first read, after the
            # measurement: on a 2-core machine its decoding would compete with what is measured.
            message = None if self.server.receiver.lazy else request_cls.FromString(body)
        except Exception as exc:  # noqa: BLE001 - report any decode failure to the client and the test
            self.server.receiver._record_error(f"HTTP {self.path}: {exc!r}")
            return self._reply(400, str(exc).encode(), "text/plain")
        self.server.receiver._hold(signal)
        self.server.receiver._record(ReceivedRequest(signal, "http", headers, body, message, path=self.path))
        self._reply(200, response_cls().SerializeToString(), "application/x-protobuf")


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: "Receiver", ssl_context: ssl.SSLContext | None = None):
        self.receiver = receiver
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _HttpHandler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError):  # a refused handshake: expected in the TLS tests
            self.receiver._record_tls_error(f"{exc.__class__.__name__}: {exc}")
        else:
            super().handle_error(request, client_address)


def _grpc_servicer(base, signal: str, response_cls, receiver: "Receiver"):
    def Export(self, request, context):  # noqa: N802 - gRPC method name
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        receiver._hold(signal)
        receiver._record(ReceivedRequest(signal, "grpc", headers, request.SerializeToString(), request))
        return response_cls()

    return type(f"_{signal.capitalize()}Servicer", (base,), {"Export": Export})()


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


class Receiver:
    """OTLP receiver listening on 127.0.0.1 over HTTP/protobuf and gRPC (free ports)."""

    def __init__(self, tls: ServerTls | None = None, lazy: bool = False):
        self.tls = tls
        self.lazy = lazy
        self._cond = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._stalls: dict[str, float] = {}  # signal -> monotonic time the stall ends
        self._errors: list[str] = []
        self._tls_errors: list[str] = []
        self._http = None
        self._http_thread = None
        self._grpc = None
        self.http_port = None
        self.grpc_port = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "Receiver":
        self._http = _HttpServer(self, self.tls.ssl_context() if self.tls else None)
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-http", daemon=True
        )
        self._http_thread.start()

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _grpc_servicer(trace_service_pb2_grpc.TraceServiceServicer, "traces", _MESSAGES["traces"][1], self),
            self._grpc,
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _grpc_servicer(metrics_service_pb2_grpc.MetricsServiceServicer, "metrics", _MESSAGES["metrics"][1], self),
            self._grpc,
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            _grpc_servicer(logs_service_pb2_grpc.LogsServiceServicer, "logs", _MESSAGES["logs"][1], self),
            self._grpc,
        )
        if self.tls:
            self.grpc_port = self._grpc.add_secure_port("127.0.0.1:0", self.tls.grpc_credentials())
        else:
            self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        if not self.grpc_port:
            raise RuntimeError("could not bind the gRPC receiver")
        self._grpc.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(5)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http_thread.join(5)
            self._http = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def http_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.grpc_port}"

    def endpoint(self, protocol: str) -> str:
        """Endpoint for an OTEL_EXPORTER_OTLP_PROTOCOL value ("grpc", "http/protobuf")."""
        return self.grpc_endpoint if protocol == "grpc" else self.http_endpoint

    # -- stall switch ------------------------------------------------------

    def stall(self, signal: str, seconds: float) -> None:
        """Hold export requests of `signal` for up to `seconds` from now (see the module doc)."""
        with self._cond:
            self._stalls[signal] = time.monotonic() + seconds

    def release(self) -> None:
        """End every stall now: held requests are answered and recorded."""
        with self._cond:
            self._stalls.clear()
            self._cond.notify_all()

    def _hold(self, signal: str) -> None:
        with self._cond:
            while True:
                remaining = self._stalls.get(signal, 0) - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(min(remaining, 0.5))

    # -- storage -----------------------------------------------------------

    def _record(self, request: ReceivedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _record_error(self, error: str) -> None:
        with self._cond:
            self._errors.append(error)

    def _record_tls_error(self, error: str) -> None:
        with self._cond:
            self._tls_errors.append(error)

    def tls_errors(self) -> list[str]:
        """TLS handshakes the HTTP receiver saw fail (gRPC's are not visible to Python)."""
        with self._cond:
            return list(self._tls_errors)

    def clear(self) -> None:
        with self._cond:
            self._requests.clear()
            self._errors.clear()

    def requests(self, signal: str | None = None) -> list[ReceivedRequest]:
        """All stored export requests, optionally only one signal ("traces", "metrics", "logs")."""
        with self._cond:
            return [r for r in self._requests if signal is None or r.signal == signal]

    def errors(self) -> list[str]:
        """Requests the receiver rejected (bad path, encoding, content type or payload)."""
        with self._cond:
            return list(self._errors)

    def raw_payloads(self, signal: str | None = None) -> list[bytes]:
        """Decompressed protobuf bodies, in arrival order (for grepping)."""
        return [r.body for r in self.requests(signal)]

    # -- flattened views ---------------------------------------------------

    def spans(self) -> list[dict]:
        return [s for r in self.requests("traces") for s in flatten_traces(r.message)]

    def metrics(self) -> list[dict]:
        return [m for r in self.requests("metrics") for m in flatten_metrics(r.message)]

    def log_records(self) -> list[dict]:
        return [rec for r in self.requests("logs") for rec in flatten_logs(r.message)]

    def wait_for_spans(self, n: int, timeout: float = 10, predicate=None) -> list[dict]:
        """Wait until at least `n` spans (matching `predicate`) arrived; return the matching spans.

        Raises AssertionError on timeout, listing what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [s for s in self.spans() if predicate is None or predicate(s)]
                if len(matching) >= n:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected at least {n} matching spans within {timeout}s, got {len(matching)}\n"
                        + self.summary()
                    )
                self._cond.wait(min(remaining, 0.5))

    def summary(self) -> str:
        """Human-readable dump of what arrived, for failure messages."""
        lines = [f"receiver: {len(self.requests())} requests, errors: {self.errors()}, TLS errors: {self.tls_errors()[:5]}"]
        for s in self.spans():
            lines.append(
                f"  span {s['name']!r} kind={s['kind']} trace={s['trace_id']} span={s['span_id']} "
                f"parent={s['parent_span_id'] or '-'} status={s['status_code']} attrs={s['attributes']}"
            )
        return "\n".join(lines)

    def failure_sections(self) -> list[tuple[str, str]]:
        """Extra report sections shown by conftest when a test using this object fails."""
        return [("OTLP receiver", self.summary())]
