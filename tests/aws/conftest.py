"""A local AWS-compatible server for the botocore suite: moto's server (``moto_server``, from
``moto[server]``) on a loopback port, one per session, with request authentication on.

moto checks signatures only once IAM authentication is enabled
(``INITIAL_NO_AUTH_ACTION_COUNT``: that many actions pass unchecked, every later one must be
signed with a known access key). The fixture spends those on making a user, its access key and
an allow-all policy; from then on a request whose SigV4 signature does not match is refused
(``SignatureDoesNotMatch``), so every call the instrumented app makes successfully is proof that
its signature was left intact."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.processes import VENV_BIN, free_port

REGION = "us-east-1"


class Moto:
    def __init__(self, port: int, key_id: str, secret: str):
        self.port = port
        self.endpoint = "http://127.0.0.1:%d" % port
        self.key_id = key_id
        self.secret = secret

    def env(self) -> dict:
        """The standard AWS variables an application reads (botocore: ``AWS_ENDPOINT_URL``...)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("moto_server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not listen on %d" % port)


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    pytest.importorskip("boto3", reason="boto3 not installed (tests/requirements.txt installs it)")
    binary = Path(VENV_BIN) / "moto_server"
    if not binary.exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_", "PYTHONPATH"))}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        _wait_listening(port, proc)
        iam = boto3.client(
            "iam", endpoint_url="http://127.0.0.1:%d" % port, region_name=REGION, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap"
        )
        iam.create_user(UserName="app")
        key = iam.create_access_key(UserName="app")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="app", PolicyName="all", PolicyDocument=json.dumps(policy))
        yield Moto(port, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
