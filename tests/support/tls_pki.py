"""Throwaway certificates for the TLS tests, made at test time with `trustme` (a CA, a server
certificate for 127.0.0.1 / localhost, a client certificate for mTLS, and an unrelated CA).

`Pki(directory)` writes the files the agent is pointed at (its ``OTEL_EXPORTER_OTLP_*`` variables
take paths) and hands the receiver its side as a `support.otlp_receiver.ServerTls`.
"""

from __future__ import annotations

from pathlib import Path

import trustme

from support.otlp_receiver import ServerTls


class Pki:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client = self.ca.issue_cert("client.ferrotel.test")
        self.other_ca = trustme.CA()  # signed nothing the receiver presents
        # What the agent reads.
        self.ca_pem = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.other_ca_pem = self._write("other-ca.pem", self.other_ca.cert_pem.bytes())
        self.client_cert_pem = self._write("client.pem", b"".join(p.bytes() for p in self.client.cert_chain_pems))
        self.client_key_pem = self._write("client.key", self.client.private_key_pem.bytes())

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def server_tls(self, require_client_cert: bool = False) -> ServerTls:
        """The receiver's side; with `require_client_cert`, only clients with a certificate from
        this CA get through."""
        return ServerTls(
            cert_chain_pem=b"".join(p.bytes() for p in self.server.cert_chain_pems),
            key_pem=self.server.private_key_pem.bytes(),
            client_ca_pem=self.ca.cert_pem.bytes() if require_client_cert else None,
        )

    def client_env(self) -> dict:
        """The mTLS client certificate variables."""
        return {
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(self.client_cert_pem),
            "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(self.client_key_pem),
        }
