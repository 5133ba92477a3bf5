"""A Flask service that calls S3 and SQS with boto3, for tests/aws/test_botocore.py.

The endpoint, region and credentials come from the standard AWS variables the test sets
(``AWS_ENDPOINT_URL`` is the local moto server). ``/s3`` creates a bucket, puts an object, reads
it back and reads a missing key (``NoSuchKey``, caught as the application catches it); ``/sqs``
creates a queue, sends a message and receives it; ``/dynamodb`` creates a table, puts an item and
reads it back with ``BatchGetItem``; ``/plain`` makes one ordinary requests call
after an AWS call (that one is traced by the urllib3 hook as usual); ``/denied`` makes a call
with a wrong secret key (the server must refuse its signature).
"""

import os
import uuid

import boto3
import requests
from botocore.exceptions import ClientError
from flask import Flask, jsonify

app = Flask(__name__)
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
_s3 = boto3.client("s3")
_sqs = boto3.client("sqs")
_dynamodb = boto3.client("dynamodb")


@app.route("/s3/<name>")
def s3(name):
    bucket = "bucket-" + name
    _s3.create_bucket(Bucket=bucket)
    _s3.put_object(Bucket=bucket, Key="greeting.txt", Body=b"hello " + name.encode())
    body = _s3.get_object(Bucket=bucket, Key="greeting.txt")["Body"].read().decode()
    try:
        _s3.get_object(Bucket=bucket, Key="missing.txt")
        missing = None
    except _s3.exceptions.NoSuchKey as exc:  # the modelled exception class, as botocore raises it
        missing = [type(exc).__name__, exc.response["Error"]["Code"], isinstance(exc, ClientError)]
    return jsonify(body=body, missing=missing)


@app.route("/sqs/<name>")
def sqs(name):
    url = _sqs.create_queue(QueueName="queue-" + name)["QueueUrl"]
    sent = _sqs.send_message(QueueUrl=url, MessageBody="hello " + name)
    got = _sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
    messages = got.get("Messages", [])
    return jsonify(url=url, sent=sent["MessageId"], received=[m["Body"] for m in messages], attributes=[m.get("MessageAttributes") for m in messages])


@app.route("/dynamodb/<name>")
def dynamodb(name):
    table = "table-" + name
    _dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    _dynamodb.put_item(TableName=table, Item={"id": {"S": "1"}, "name": {"S": name}})
    got = _dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"id": {"S": "1"}}]}})
    return jsonify(items=[i["name"]["S"] for i in got["Responses"][table]])


@app.route("/plain")
def plain():
    _s3.list_buckets()
    status = requests.get(ENDPOINT + "/moto-api/", timeout=30).status_code
    return jsonify(status=status)


@app.route("/denied")
def denied():
    bad = boto3.client("s3", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="not-the-secret-" + uuid.uuid4().hex)
    try:
        bad.list_buckets()
        return jsonify(code=None)
    except ClientError as exc:
        return jsonify(code=exc.response["Error"]["Code"])
