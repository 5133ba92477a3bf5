"""The short soak (tests/reliability/soak.py with 20,000 requests): resident memory of a process
serving requests in-process with the agent on does not grow after warm-up, and every span the
agent counted as exported reached the receiver. The long run (1,000,000 requests) is the same
script by hand: ``.venv/bin/python tests/reliability/soak.py --requests 1000000``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak  # noqa: E402

REQUESTS = 20_000
WARMUP = 5_000
GROWTH_BOUND_KIB = 8 * 1024


def test_soak_short(dist_dir):
    result = soak.run(REQUESTS, WARMUP, REQUESTS // 4, dist_dir)
    assert result["agent_loaded"], "the agent did not load in the soak process"
    stats = result["stats"]
    figures = (
        f"RSS {result['rss_after_warmup_kib']} -> {result['rss_end_kib']} KiB (+{result['growth_kib']}), "
        f"samples {result['samples']}, {result['requests_per_second']:.0f} req/s, stats {stats}, "
        f"sink {result['sink_spans']} spans; agent lines {result['agent_stderr']}"
    )
    assert result["growth_kib"] < GROWTH_BOUND_KIB, figures
    assert stats["spans_started"] == REQUESTS + WARMUP, figures
    assert stats["spans_exported"] + stats["dropped_queue_full"] == stats["spans_started"], figures
    assert result["sink_spans"] == stats["spans_exported"], figures
    assert result["agent_stderr"] == [], figures
