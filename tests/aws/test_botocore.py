"""botocore / boto3 end to end (issue 16): a Flask app under gunicorn, injected the Operator's
way, calls S3 and SQS on a local moto server that checks every request's SigV4 signature
(conftest). Each AWS API call is one CLIENT span, ``Service.Operation``, a child of the request's
server span, with the AWS SDK conventions' attributes; the HTTP request underneath makes no
second span; a service error is an ERROR span with the service's code and the application gets
botocore's own exception; the signatures stay valid (the server refuses a bad one)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("boto3")

from support.operator import operator_env  # noqa: E402
from support.otlp_receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, STATUS_UNSET  # noqa: E402

HERE = Path(__file__).resolve().parent


def _env(operator_install, receiver, moto, **extra):
    return operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_SERVICE_NAME": "shop", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **moto.env(), **extra},
    )


def _get(port, path, traceparent):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers={"traceparent": traceparent})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, json.loads(resp.read())


def _trace():
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, parent, "00-%s-%s-01" % (trace_id, parent)


def _app(gunicorn, operator_install, receiver, moto, **extra):
    return gunicorn.start(_env(operator_install, receiver, moto, **extra), app_dir=HERE, app="aws_app:app")


def test_s3_calls(operator_install, receiver, gunicorn, moto):
    app = _app(gunicorn, operator_install, receiver, moto)
    trace_id, parent, tp = _trace()
    status, body = _get(app.port, "/s3/one", tp)
    assert status == 200
    assert body == {"body": "hello one", "missing": ["NoSuchKey", "NoSuchKey", True]}
    spans = receiver.wait_for_spans(5, timeout=30, predicate=lambda s: s["trace_id"] == trace_id)
    (server,) = [s for s in spans if s["kind"] == SPAN_KIND_SERVER]
    assert server["parent_span_id"] == parent and server["name"] == "GET /s3/<name>"
    calls = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT]
    # One span per API call, nothing for the HTTP requests under them (urllib3, http.client).
    assert [s["name"] for s in sorted(calls, key=lambda s: s["start_ns"])] == ["S3.CreateBucket", "S3.PutObject", "S3.GetObject", "S3.GetObject"]
    for span in calls:
        a = span["attributes"]
        assert span["parent_span_id"] == server["span_id"]
        assert span["scope_name"] == "ferrotel.botocore"
        assert a["rpc.system.name"] == "aws-api" and "rpc.service" not in a  # deprecated: in rpc.method
        assert a["rpc.method"] == "S3/" + span["name"].split(".", 1)[1]
        assert a["cloud.region"] == "us-east-1"
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == moto.port
        assert a["aws.s3.bucket"] == "bucket-one"
        assert a["aws.request_id"]
        assert "url.full" not in a
    put = [s for s in calls if s["name"] == "S3.PutObject"][0]
    assert put["attributes"]["aws.s3.key"] == "greeting.txt" and put["attributes"]["http.response.status_code"] == 200
    assert put["status_code"] == STATUS_UNSET and "error.type" not in put["attributes"]
    ok_get, missing = sorted([s for s in calls if s["name"] == "S3.GetObject"], key=lambda s: s["start_ns"])
    assert ok_get["status_code"] == STATUS_UNSET
    assert missing["attributes"]["aws.s3.key"] == "missing.txt"
    assert missing["status_code"] == STATUS_ERROR
    assert missing["attributes"]["error.type"] == "NoSuchKey"
    assert missing["attributes"]["http.response.status_code"] == 404
    (event,) = missing["events"]
    assert event["name"] == "exception" and event["attributes"]["exception.type"].endswith("NoSuchKey")
    assert server["status_code"] == STATUS_UNSET
    assert "ferrotel: " not in app.log_text(), app.log_text()


def test_sqs_calls(operator_install, receiver, gunicorn, moto):
    app = _app(gunicorn, operator_install, receiver, moto)
    trace_id, _, tp = _trace()
    status, body = _get(app.port, "/sqs/two", tp)
    assert status == 200 and body["received"] == ["hello two"]
    assert body["attributes"] == [None], "nothing may be added to the application's messages"
    spans = receiver.wait_for_spans(4, timeout=30, predicate=lambda s: s["trace_id"] == trace_id)
    (server,) = [s for s in spans if s["kind"] == SPAN_KIND_SERVER]
    calls = sorted([s for s in spans if s["kind"] == SPAN_KIND_CLIENT], key=lambda s: s["start_ns"])
    assert [s["name"] for s in calls] == ["SQS.CreateQueue", "SQS.SendMessage", "SQS.ReceiveMessage"]
    for span in calls:
        assert span["parent_span_id"] == server["span_id"]
        assert span["attributes"]["rpc.method"].startswith("SQS/") and span["attributes"]["rpc.system.name"] == "aws-api"
    for span in calls[1:]:
        a = span["attributes"]
        assert a["aws.sqs.queue.url"] == body["url"]
        assert a["messaging.system"] == "aws_sqs" and a["messaging.destination.name"] == "queue-two"
    assert "aws.sqs.queue.url" not in calls[0]["attributes"]  # CreateQueue names the queue, no URL yet


def test_dynamodb_calls(operator_install, receiver, gunicorn, moto):
    app = _app(gunicorn, operator_install, receiver, moto)
    trace_id, _, tp = _trace()
    status, body = _get(app.port, "/dynamodb/four", tp)
    assert status == 200 and body["items"] == ["four"]
    spans = receiver.wait_for_spans(4, timeout=30, predicate=lambda s: s["trace_id"] == trace_id)
    calls = sorted([s for s in spans if s["kind"] == SPAN_KIND_CLIENT], key=lambda s: s["start_ns"])
    assert [s["name"] for s in calls] == ["DynamoDB.CreateTable", "DynamoDB.PutItem", "DynamoDB.BatchGetItem"]
    for span in calls:
        a = span["attributes"]
        assert a["db.system.name"] == "aws.dynamodb" and a["rpc.method"] == "DynamoDB/" + span["name"].split(".", 1)[1]
        # From TableName, or from the RequestItems of a batch call.
        assert a["aws.dynamodb.table_names"] == ["table-four"]


def test_http_calls_after_an_aws_call_are_traced_again(operator_install, receiver, gunicorn, moto):
    """The AWS span stops being current when its call returns: the app's own requests call
    afterwards is an ordinary urllib3 CLIENT span with its propagation headers."""
    app = _app(gunicorn, operator_install, receiver, moto)
    trace_id, _, tp = _trace()
    status, body = _get(app.port, "/plain", tp)
    assert status == 200 and body["status"] == 200
    spans = receiver.wait_for_spans(3, timeout=30, predicate=lambda s: s["trace_id"] == trace_id)
    (server,) = [s for s in spans if s["kind"] == SPAN_KIND_SERVER]
    aws, http = sorted([s for s in spans if s["kind"] == SPAN_KIND_CLIENT], key=lambda s: s["start_ns"])
    assert aws["name"] == "S3.ListBuckets" and "aws.s3.bucket" not in aws["attributes"]
    assert http["name"] == "GET" and http["attributes"]["url.full"].endswith("/moto-api/")
    assert aws["parent_span_id"] == http["parent_span_id"] == server["span_id"]


def test_the_server_checks_signatures(operator_install, receiver, gunicorn, moto):
    """The suite's proof is only as good as the server's check: a wrong secret is refused."""
    app = _app(gunicorn, operator_install, receiver, moto)
    trace_id, _, tp = _trace()
    status, body = _get(app.port, "/denied", tp)
    assert status == 200 and body["code"] == "SignatureDoesNotMatch"
    spans = receiver.wait_for_spans(2, timeout=30, predicate=lambda s: s["trace_id"] == trace_id)
    (call,) = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT]
    assert call["status_code"] == STATUS_ERROR and call["attributes"]["error.type"] == "SignatureDoesNotMatch"
    assert call["attributes"]["http.response.status_code"] == 403


def test_switched_off_by_name(operator_install, receiver, gunicorn, moto):
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=botocore``: the app answers the same and no AWS
    span is made (the HTTP requests underneath are then the urllib3 hook's, as they would be
    with any other library sending through urllib3)."""
    app = _app(gunicorn, operator_install, receiver, moto, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="botocore")
    trace_id, _, tp = _trace()
    status, body = _get(app.port, "/s3/three", tp)
    assert status == 200 and body == {"body": "hello three", "missing": ["NoSuchKey", "NoSuchKey", True]}
    spans = receiver.wait_for_spans(5, timeout=30, predicate=lambda s: s["trace_id"] == trace_id)
    assert not [s for s in spans if "rpc.system.name" in s["attributes"]]
    assert all(s["scope_name"] != "ferrotel.botocore" for s in spans)
