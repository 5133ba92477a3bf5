"""The Prometheus endpoint under worker churn (issue 18): ``gunicorn -w 2 --max-requests 5`` under
2,000 requests, so about 400 workers come and go (and pids get recycled).

- the scraped totals equal the requests served, and never go down from one scrape to the next
  (an exited worker's counts are kept; a recycled pid is not a counter reset);
- the shared directory holds at most workers + 1 snapshot files (exited workers are folded into
  one retained total and their files removed);
- `promtool check metrics` accepts every scrape taken during the run;
- 8 scrapes at once are all answered, with the same totals.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.http_client import http_get
from support.operator import operator_env
from support.processes import free_port

from test_metrics_prometheus import samples, scrape, shared_snapshots

REQUESTS = 2000
CLIENTS = 4
WORKERS = 2


def _count(text: str) -> int:
    return int(sum(v for _, v in samples(text).get("http_server_request_duration_seconds_count", [])))


def test_totals_files_and_scrapes_under_max_requests(operator_install, receiver, gunicorn):
    promtool = shutil.which("promtool")
    port = free_port()
    env = operator_env(
        operator_install,
        receiver.http_endpoint,
        extra={"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1"},
    )
    app = gunicorn.start(env, workers=WORKERS, extra_args=("--max-requests", "5"))
    app.wait_for_workers(WORKERS)

    scrapes: list[str] = []
    stop = threading.Event()

    def scraper():
        while not stop.is_set():
            try:
                scrapes.append(scrape(port))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            stop.wait(0.25)

    served = 0
    lock = threading.Lock()

    def client(n: int):
        nonlocal served
        for _ in range(n):
            if http_get(app.port, "/").status == 200:
                with lock:
                    served += 1

    watcher = threading.Thread(target=scraper, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, [REQUESTS // CLIENTS] * CLIENTS))
    finally:
        stop.set()
        watcher.join(10)
    assert served == REQUESTS

    # Every request counted once (the last workers publish within half a second).
    deadline = time.monotonic() + 20
    text = scrape(port)
    while _count(text) != served and time.monotonic() < deadline:
        time.sleep(0.25)
        text = scrape(port)
    assert _count(text) == served, f"scraped {_count(text)} requests, served {served}"
    assert int(sum(v for _, v in samples(text)["ferrotel_spans_started_total"])) == served

    counts = [_count(t) for t in scrapes] + [_count(text)]
    assert len(scrapes) >= 5, "the run was scraped while the workers churned"
    assert all(a <= b for a, b in zip(counts, counts[1:])), f"a total went down between scrapes: {counts}"

    files = shared_snapshots(app.pid, port)
    assert len(files) <= WORKERS + 1, f"{len(files)} snapshot files for {WORKERS} workers: {files}"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: scrape(port), range(8)))
    assert [_count(a) for a in answers] == [served] * 8

    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; `make deploy-tools` installs it)")
    for t in set(scrapes + answers + [text]):
        result = subprocess.run([promtool, "check", "metrics"], input=t, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr + "\n" + t[:2000]
    assert app.stop() == 0
