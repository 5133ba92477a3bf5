"""Load, latency and memory helpers for the reliability suite.

- `send_concurrently(port, targets, threads)`: every target once, from a thread pool; returns
  ``(target, status)`` pairs (status None and the error text when the request failed).
- `measure_latencies(port, target, n)`: n sequential GETs, the wall time of each (seconds).
- `percentile(values, q)`; `Latency` summarises a sample (p50, p99).
- `rss_kib(pid)`: resident set size from ``/proc/<pid>/status`` (VmRSS).
"""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from support.http_client import USER_AGENT


def _get(port: int, target: str, headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def send_concurrently(port: int, targets: list[str], threads: int = 8, headers: dict | None = None, timeout: float = 30):
    """GET every target once from `threads` client threads; [(target, status or None, error or body)]."""

    def one(target):
        try:
            status, body = _get(port, target, headers, timeout)
            return target, status, body
        except OSError as exc:  # connection refused/reset, timeout
            return target, None, repr(exc)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, targets))


def measure_latencies(port: int, target: str, n: int, timeout: float = 30) -> list[float]:
    """Wall time (seconds) of `n` sequential GETs of `target` (each on a new connection)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _ = _get(port, target, timeout=timeout)
        out.append(time.perf_counter() - t0)
        assert status == 200, f"GET {target} -> {status}"
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(round(q / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    p50: float
    p99: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Latency":
        return cls(percentile(values, 50), percentile(values, 99), len(values))

    def __str__(self) -> str:
        return f"p50={self.p50 * 1000:.2f}ms p99={self.p99 * 1000:.2f}ms (n={self.n})"


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
