"""TLS to the collector: ``https://`` endpoints, a private CA, mTLS, and failing open.

The Flask test app runs under gunicorn (one worker) with the agent, exporting to a
`support.otlp_receiver.Receiver` that serves OTLP/HTTP and OTLP/gRPC over TLS with certificates
made at test time (`support.tls_pki`: a CA, a server certificate for 127.0.0.1, a client
certificate, an unrelated CA). Each case runs for both protocols.

- ``test_export_over_tls``: ``OTEL_EXPORTER_OTLP_CERTIFICATE`` names the CA: spans and metrics
  arrive, no export warning.
- ``test_export_with_client_certificate``: the receiver requires a client certificate (mTLS);
  ``OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`` / ``_CLIENT_KEY`` provide it: spans arrive.
- ``test_forked_workers_export_over_tls``: gunicorn ``--preload -w 2`` (the agent starts in the
  master, before the fork): every worker sets up its own TLS exporter and exports over mTLS.
- ``test_tls_failure_fails_open``: the exporter cannot get through -- a CA that did not sign the
  receiver's certificate, no CA variable (the system trust store does not know a self-signed CA),
  mTLS required but no client certificate, a CA file that does not exist. Every request is still
  answered 200, nothing arrives, and the agent says so once (one ``export ... failed`` line with
  the reason, not one per batch), with no traceback.
"""

from __future__ import annotations

import re
import time

import pytest

from support.http_client import http_get
from support.load import send_concurrently
from support.operator import operator_env
from support.otlp_receiver import SPAN_KIND_SERVER, Receiver
from support.tls_pki import Pki

PROTOCOLS = {"http": "http/protobuf", "grpc": "grpc"}
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500"}
# Only traces in the failure cases: each signal's exporter reports its own failure streak once.
TRACES_ONLY = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
EXPORT_FAILED = re.compile(r"^ferrotel: export to .*? failed: (.*)$", re.M)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _start(servers, rel_install, rx: Receiver, protocol: str, extra: dict):
    env = operator_env(rel_install, rx.endpoint(PROTOCOLS[protocol]), PROTOCOLS[protocol], extra=extra)
    app = servers.gunicorn(env, workers=1)
    app.wait_for_workers(1)
    return app


def _requests(port: int, paths) -> list[int]:
    return [http_get(port, p).status for p in paths]


def _export_failures(log: str) -> list[str]:
    return EXPORT_FAILED.findall(log)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_export_over_tls(rel_install, servers, pki, protocol):
    with Receiver(tls=pki.server_tls()) as rx:
        assert rx.endpoint(PROTOCOLS[protocol]).startswith("https://")
        app = _start(servers, rel_install, rx, protocol, {**FAST, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.ca_pem)})
        assert _requests(app.port, [f"/users/{i}" for i in range(3)]) == [200] * 3
        spans = rx.wait_for_spans(3, timeout=15, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
        deadline = time.monotonic() + 10
        while not rx.metrics() and time.monotonic() < deadline:
            time.sleep(0.1)
        app.stop(timeout=30)
        log = app.log_text()
        transports = {r.transport for r in rx.requests()}
    assert sorted(s["attributes"]["url.path"] for s in spans) == ["/users/0", "/users/1", "/users/2"]
    assert rx.metrics(), f"no metrics arrived over TLS\n{rx.summary()}"
    assert transports == {protocol}, transports
    assert _export_failures(log) == [], log[-3000:]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_export_with_client_certificate(rel_install, servers, pki, protocol):
    extra = {**FAST, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.ca_pem), **pki.client_env()}
    with Receiver(tls=pki.server_tls(require_client_cert=True)) as rx:
        app = _start(servers, rel_install, rx, protocol, extra)
        assert _requests(app.port, ["/users/1", "/users/2"]) == [200, 200]
        spans = rx.wait_for_spans(2, timeout=15, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
        app.stop(timeout=30)
        log = app.log_text()
    assert {s["attributes"]["url.path"] for s in spans} == {"/users/1", "/users/2"}
    assert _export_failures(log) == [], log[-3000:]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_forked_workers_export_over_tls(rel_install, servers, pki, protocol):
    extra = {**FAST, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.ca_pem), **pki.client_env()}
    with Receiver(tls=pki.server_tls(require_client_cert=True)) as rx:
        env = operator_env(rel_install, rx.endpoint(PROTOCOLS[protocol]), PROTOCOLS[protocol], extra=extra)
        app = servers.gunicorn(env, workers=2, extra_args=("--preload",))
        workers = set(app.wait_for_workers(2))
        paths = [f"/users/{i}" for i in range(60)]
        statuses = [status for _, status, _ in send_concurrently(app.port, paths, threads=8)]
        assert statuses == [200] * len(paths), statuses
        spans = rx.wait_for_spans(60, timeout=20, predicate=lambda s: s["kind"] == SPAN_KIND_SERVER)
        app.stop(timeout=30)
        log = app.log_text()
    pids = {s["resource"].get("process.pid") for s in spans}
    assert pids == workers, f"spans from pids {pids}, workers {workers}: each worker must export its own over TLS"
    assert sorted(s["attributes"]["url.path"] for s in spans) == sorted(paths)
    assert _export_failures(log) == [], log[-3000:]


# case -> (receiver requires a client certificate, agent variables, what the warning must say)
FAILURES = {
    "wrong-ca": (False, lambda pki: {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.other_ca_pem)}, r"TLS: invalid peer certificate"),
    # No CA variable: the system trust store is used, and it does not know the test CA (or is
    # empty on a bare image: then the exporter says so).
    "system-roots": (False, lambda pki: {}, r"TLS: invalid peer certificate|no CA certificate to trust"),
    # TLS 1.3: the client's handshake is done before the receiver checks for a certificate; the
    # refusal comes as an alert (Python's ssl) or a closed connection (gRPC's BoringSSL; seen
    # mid-handshake or by HTTP/2 afterwards).
    "no-client-cert": (
        True,
        lambda pki: {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.ca_pem)},
        # TLS 1.3: the client finishes its side of the handshake before the server rejects it, so
        # the rejection may instead reach the client as a broken pipe or reset while it sends (tonic
        # words it "stream closed because of a broken pipe").
        r"TLS: received fatal alert|without sending TLS close_notify|connection closed|[Bb]roken pipe|[Cc]onnection reset",
    ),
    "missing-ca-file": (
        False,
        lambda pki: {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki.dir / "absent.pem")},
        r"TLS setup failed: cannot read OTEL_EXPORTER_OTLP_CERTIFICATE .*absent\.pem",
    ),
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("case", list(FAILURES))
def test_tls_failure_fails_open(rel_install, servers, pki, case, protocol):
    mtls, variables, reason = FAILURES[case]
    with Receiver(tls=pki.server_tls(require_client_cert=mtls)) as rx:
        app = _start(servers, rel_install, rx, protocol, {**TRACES_ONLY, **variables(pki)})
        statuses = _requests(app.port, [f"/users/{i}" for i in range(10)])
        deadline = time.monotonic() + 15
        while not _export_failures(app.log_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        statuses += _requests(app.port, [f"/users/{i}" for i in range(10, 20)])
        time.sleep(0.5)  # several more schedule delays: more batches fail, without new warnings
        assert app.stop(timeout=30) == 0, app.log_text()[-3000:]
        log = app.log_text()
        spans, tls_errors = rx.spans(), rx.tls_errors()
    assert statuses == [200] * 20, statuses
    assert spans == [], f"{case}: {len(spans)} spans got through"
    failures = _export_failures(log)
    assert len(failures) == 1, f"{case}: expected one export warning, got {len(failures)}:\n{log[-3000:]}"
    assert re.search(reason, failures[0]), f"{case}: the warning does not say why: {failures[0]!r}"
    assert "Traceback" not in log and "panicked" not in log, log[-3000:]
    if protocol == "http" and case in ("wrong-ca", "system-roots", "no-client-cert"):
        assert tls_errors, f"{case}: the receiver saw no TLS handshake: the exporter never tried"
