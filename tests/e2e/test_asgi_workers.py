"""End-to-end: gunicorn with uvicorn workers (`-k uvicorn_worker.UvicornWorker -w 2`), the FastAPI
app, injected the Operator's way: every request is exported exactly once, by the worker that
served it (its own `process.pid`), and nothing is exported by the master."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from support.asgi_servers import FASTAPI_DIR, GunicornUvicornApp, ServerLauncher
from support.http_client import http_get
from support.operator import install_like_operator, operator_env
from support.otlp_receiver import SPAN_KIND_SERVER

REQUESTS = 60


def test_two_uvicorn_workers_export_every_request_once(dist_dir, receiver, tmp_path):
    launcher = ServerLauncher(tmp_path)
    try:
        install = install_like_operator(dist_dir, tmp_path)
        app = launcher.start(
            GunicornUvicornApp, operator_env(install, receiver.endpoint("http/protobuf")), app_dir=FASTAPI_DIR, app="app:app", workers=2
        )
        # /block/{n} holds its worker's event loop for 20 ms, so with 4 requests in flight the
        # other worker accepts meanwhile: both workers serve.
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda n: http_get(app.port, f"/block/{n}"), range(REQUESTS)))
        assert [r.status for r in responses] == [200] * REQUESTS
        served_by = Counter(int(r.body.split(b'"pid":')[1].rstrip(b"}")) for r in responses)
        workers = set(app.worker_pids())
        is_block = lambda s: s["kind"] == SPAN_KIND_SERVER and s["attributes"]["url.path"].startswith("/block/")  # noqa: E731
        receiver.wait_for_spans(REQUESTS, timeout=15, predicate=is_block)
        assert app.stop() == 0, app.log_text()
        spans = [s for s in receiver.spans() if s["kind"] == SPAN_KIND_SERVER]
    finally:
        launcher.kill_all()

    # Exactly once each, after the graceful stop's final flush too.
    assert Counter(s["attributes"]["url.path"] for s in spans) == Counter(f"/block/{n}" for n in range(REQUESTS))
    assert all(s["name"] == "GET /block/{n}" for s in spans)
    # Each span carries the pid of the worker that answered; both workers served, the master none.
    by_pid = Counter(s["resource"]["process.pid"] for s in spans)
    assert by_pid == served_by
    assert set(by_pid) == workers and len(workers) == 2, (by_pid, workers)
    assert app.pid not in by_pid
    assert len({s["trace_id"] for s in spans}) == REQUESTS  # no shared ID sequence across workers
