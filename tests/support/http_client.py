"""Minimal HTTP/1.1 client for driving the test app (no exceptions on 4xx/5xx)."""

from __future__ import annotations

import http.client
from dataclasses import dataclass

USER_AGENT = "ferrotel-test/1.0"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict  # lower-cased names
    body: bytes


def http_get(port: int, target: str, headers: dict | None = None, timeout: float = 30) -> HttpResponse:
    """GET http://127.0.0.1:<port><target> with User-Agent ferrotel-test/1.0 (overridable)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, **(headers or {})})
        resp = conn.getresponse()
        body = resp.read()
        return HttpResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()
