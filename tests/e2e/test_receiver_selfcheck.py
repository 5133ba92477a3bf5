"""Self-check of the OTLP test receiver, without the agent: hand-built exports over HTTP and gRPC."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from support.otlp_receiver import SPAN_KIND_SERVER, STATUS_ERROR

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SPAN_ID = "a1b2c3d4e5f60718"


def kv(key, value):
    return common_pb2.KeyValue(key=key, value=to_any(value))


def to_any(value):
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[to_any(v) for v in value]))
    return common_pb2.AnyValue(string_value=value)


def trace_request(name="GET /users/<int:uid>") -> trace_service_pb2.ExportTraceServiceRequest:
    span = trace_pb2.Span(
        trace_id=bytes.fromhex(TRACE_ID),
        span_id=bytes.fromhex(SPAN_ID),
        parent_span_id=bytes.fromhex(PARENT_ID),
        name=name,
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_000,
        end_time_unix_nano=2_000,
        attributes=[
            kv("http.request.method", "GET"),
            kv("http.response.status_code", 500),
            kv("ratio", 0.5),
            kv("flag", True),
            kv("tags", ["a", "b"]),
            kv("secret.marker", "s3cr3t-value"),
        ],
        events=[trace_pb2.Span.Event(name="exception", time_unix_nano=1_500, attributes=[kv("exception.message", "boom")], dropped_attributes_count=2)],
        dropped_attributes_count=3,
        dropped_events_count=4,
        dropped_links_count=5,
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
    )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[kv("service.name", "selfcheck"), kv("process.pid", 42)]),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="ferrotel.flask", version="0.1.0"), spans=[span]
                    )
                ],
            )
        ]
    )


def post(url, body: bytes, headers: dict) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def assert_flattened(span):
    assert span == {
        "name": "GET /users/<int:uid>",
        "kind": SPAN_KIND_SERVER,
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "parent_span_id": PARENT_ID,
        "trace_state": "",
        "flags": 0,
        "start_ns": 1_000,
        "end_ns": 2_000,
        "attributes": {
            "http.request.method": "GET",
            "http.response.status_code": 500,
            "ratio": 0.5,
            "flag": True,
            "tags": ["a", "b"],
            "secret.marker": "s3cr3t-value",
        },
        "status_code": STATUS_ERROR,
        "status_message": "boom",
        "events": [{"name": "exception", "time_ns": 1_500, "attributes": {"exception.message": "boom"}, "dropped_attributes_count": 2}],
        "links": [],
        "dropped_attributes_count": 3,
        "dropped_events_count": 4,
        "dropped_links_count": 5,
        "resource": {"service.name": "selfcheck", "process.pid": 42},
        "scope_name": "ferrotel.flask",
        "scope_version": "0.1.0",
    }


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_http_traces(receiver, compress):
    body = trace_request().SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "X-Api-Key": "k-123"}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"

    status, reply, content_type = post(receiver.http_endpoint + "/v1/traces", body, headers)

    assert status == 200
    assert content_type == "application/x-protobuf"
    trace_service_pb2.ExportTraceServiceResponse.FromString(reply)
    [span] = receiver.wait_for_spans(1)
    assert_flattened(span)
    [req] = receiver.requests("traces")
    assert (req.transport, req.headers["x-api-key"]) == ("http", "k-123")
    assert receiver.raw_payloads() == [trace_request().SerializeToString()]
    assert b"s3cr3t-value" in receiver.raw_payloads()[0]
    assert receiver.errors() == []


def test_grpc_traces(receiver):
    target = receiver.grpc_endpoint.removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(trace_request(), metadata=[("x-api-key", "k-456")], timeout=10, compression=grpc.Compression.Gzip)

    [span] = receiver.wait_for_spans(1)
    assert_flattened(span)
    [req] = receiver.requests("traces")
    assert (req.transport, req.headers["x-api-key"]) == ("grpc", "k-456")
    assert b"s3cr3t-value" in receiver.raw_payloads("traces")[0]


def test_http_metrics_and_logs(receiver):
    metrics = metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        metrics=[
                            metrics_pb2.Metric(
                                name="http.server.request.duration",
                                unit="s",
                                histogram=metrics_pb2.Histogram(
                                    data_points=[
                                        metrics_pb2.HistogramDataPoint(
                                            count=2, sum=0.3, bucket_counts=[1, 1], explicit_bounds=[0.1]
                                        )
                                    ]
                                ),
                            )
                        ]
                    )
                ]
            )
        ]
    )
    logs = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                scope_logs=[logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(body=to_any("hi"), severity_text="INFO")])]
            )
        ]
    )
    headers = {"Content-Type": "application/x-protobuf"}
    assert post(receiver.http_endpoint + "/v1/metrics", metrics.SerializeToString(), headers)[0] == 200
    assert post(receiver.http_endpoint + "/v1/logs", logs.SerializeToString(), headers)[0] == 200

    [metric] = receiver.metrics()
    assert (metric["name"], metric["type"]) == ("http.server.request.duration", "histogram")
    assert metric["data_points"][0]["count"] == 2
    assert metric["data_points"][0]["bucket_counts"] == [1, 1]
    [record] = receiver.log_records()
    assert (record["body"], record["severity_text"]) == ("hi", "INFO")
    assert receiver.spans() == []


def test_grpc_logs(receiver):
    request = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(body=to_any("x"))])])]
    )
    with grpc.insecure_channel(receiver.grpc_endpoint.removeprefix("http://")) as channel:
        logs_service_pb2_grpc.LogsServiceStub(channel).Export(request, timeout=10)
    assert [r["body"] for r in receiver.log_records()] == ["x"]


def test_rejects_unknown_path_and_bad_payload(receiver):
    headers = {"Content-Type": "application/x-protobuf"}
    assert post(receiver.http_endpoint + "/v1/nope", b"", headers)[0] == 404
    assert post(receiver.http_endpoint + "/v1/traces", b"\xff\xff\xff", headers)[0] == 400
    assert len(receiver.errors()) == 2
    assert receiver.requests() == []


def test_wait_for_spans_predicate_timeout_and_clear(receiver):
    headers = {"Content-Type": "application/x-protobuf"}
    post(receiver.http_endpoint + "/v1/traces", trace_request("a").SerializeToString(), headers)
    post(receiver.http_endpoint + "/v1/traces", trace_request("b").SerializeToString(), headers)

    assert [s["name"] for s in receiver.wait_for_spans(1, predicate=lambda s: s["name"] == "b")] == ["b"]
    with pytest.raises(AssertionError, match="expected at least 3 matching spans"):
        receiver.wait_for_spans(3, timeout=0.3)
    receiver.clear()
    assert receiver.spans() == [] and receiver.raw_payloads() == []
