"""A raw-socket HTTP/1.x client: sends exactly the bytes given (non-UTF-8 paths, invalid methods,
100 KB headers) and returns what the server wrote, parsed just enough to compare two servers.

`raw_request(port, data)` sends `data` and reads until the server closes the connection (or
`timeout`). `RawResponse.comparable()` is what "the same response" means in the reliability
suite: the status line, the header names (minus ``Date`` and ``Server``, which differ between any
two runs), the de-chunked body, and whether the body was complete.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

VOLATILE_HEADERS = {"date", "server"}


@dataclass(frozen=True)
class RawResponse:
    raw: bytes
    error: str | None = None  # the client's socket error, if any (reset by peer, timeout)

    @property
    def head(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[0]

    @property
    def status_line(self) -> str:
        if not self.raw:
            return ""
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def headers(self) -> list[tuple[str, str]]:
        lines = self.head.split(b"\r\n")[1:]
        out = []
        for line in lines:
            name, _, value = line.decode("latin-1").partition(":")
            out.append((name.strip().lower(), value.strip()))
        return out

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    @property
    def raw_body(self) -> bytes:
        parts = self.raw.split(b"\r\n\r\n", 1)
        return parts[1] if len(parts) == 2 else b""

    def body_and_complete(self) -> tuple[bytes, bool]:
        """The body (de-chunked when chunked) and whether it was complete."""
        raw = self.raw_body
        if "chunked" in (self.header("transfer-encoding") or "").lower():
            out, pos = bytearray(), 0
            while True:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    return bytes(out), False
                try:
                    size = int(raw[pos:end].split(b";")[0].strip() or b"x", 16)
                except ValueError:
                    return bytes(out), False
                if size == 0:
                    return bytes(out), True
                chunk = raw[end + 2 : end + 2 + size]
                out += chunk
                if len(chunk) < size:
                    return bytes(out), False
                pos = end + 2 + size + 2
        length = self.header("content-length")
        if length is not None and length.isdigit():
            return raw[: int(length)], len(raw) >= int(length)
        return raw, True

    @property
    def body(self) -> bytes:
        return self.body_and_complete()[0]

    def comparable(self) -> dict:
        body, complete = self.body_and_complete()
        return {
            "status_line": self.status_line,
            "header_names": sorted({k for k, _ in self.headers if k not in VOLATILE_HEADERS}),
            "body": body,
            "complete": complete,
        }


def raw_request(port: int, data: bytes, timeout: float = 15) -> RawResponse:
    """Send `data` to 127.0.0.1:`port` and read until the server closes (or `timeout`)."""
    chunks = []
    error = None
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            try:
                sock.sendall(data)
            except OSError as exc:  # the server may answer and close before reading everything
                error = f"send: {exc!r}"
            while True:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    error = (error or "") + " timeout"
                    break
                except OSError as exc:
                    error = (error or "") + f" recv: {exc!r}"
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        error = f"connect: {exc!r}"
    return RawResponse(b"".join(chunks), error)


def request_bytes(method: bytes, target: bytes, headers: list | None = None, version: bytes = b"HTTP/1.1") -> bytes:
    """A request with ``Host`` and ``Connection: close`` (unless given) and no body."""
    headers = list(headers or [])
    names = {h[0].lower() for h in headers}
    if b"host" not in names and version == b"HTTP/1.1":
        headers.insert(0, (b"Host", b"127.0.0.1"))
    if b"connection" not in names:
        headers.append((b"Connection", b"close"))
    lines = [method + b" " + target + b" " + version] + [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"
