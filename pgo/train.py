"""The training run of the profile-guided build (pgo/build.sh): the agent's hot paths, exercised
by an instrumented build of it, so that the compiler lays out and optimises the code that runs
per request and per span, and treats the rest as cold.

    python pgo/train.py TREE     # TREE: an unpacked instrumented build (the dist layout)

The parent runs a sink for OTLP/HTTP (accepts every export, keeps nothing) and starts one child
with the agent injected the way the Operator does (PYTHONPATH). The child runs, weighted roughly
as a service does: Flask requests through WSGI (most of the profile), plain WSGI, FastAPI through
ASGI, outgoing calls through every client the agent hooks, the OpenTelemetry API bridge and log
records; spans, metrics and logs export to the sink. A workload whose packages are missing is
skipped with a line saying so (the profile then just lacks it). Standard library only in the
parent; the child uses the project venv's test packages.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCALE = int(os.environ.get("PGO_TRAIN_SCALE", "1"))


class Sink(http.server.BaseHTTPRequestHandler):
    """OTLP/HTTP: read the body, answer 200 with an empty (valid) protobuf response."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST  # noqa: N815 - also the target of the child's outgoing calls

    def log_message(self, *args):
        pass


def serve() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def parent(tree: Path) -> int:
    sink = serve()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON", "FERROTEL_"))}
    env.update(
        PYTHONPATH=f"{tree}/opentelemetry/instrumentation/auto_instrumentation{os.pathsep}{tree}",
        PYTHONWARNINGS="ignore",
        OTEL_SERVICE_NAME="ferrotel-pgo-training",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BSP_MAX_QUEUE_SIZE="65536",
        OTEL_BLRP_MAX_QUEUE_SIZE="65536",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        OTEL_LOGS_EXPORTER="otlp",
        FERROTEL_LOG_LEVEL="warning",
    )
    run = subprocess.run([sys.executable, __file__, "--child", endpoint], env=env)
    sink.shutdown()
    return run.returncode


# ---- the child: runs with the (instrumented) agent loaded by sitecustomize ----------------------


def skip(name: str, exc: BaseException) -> None:
    print(f"pgo/train: {name} skipped ({type(exc).__name__}: {exc})", file=sys.stderr)


def wsgi_requests(app, paths, n: int, headers=None) -> None:
    from werkzeug.test import EnvironBuilder

    environs = []
    for path in paths:
        builder = EnvironBuilder(path=path, base_url="http://127.0.0.1:8000", headers=headers or {})
        environs.append(builder.get_environ())
        builder.close()

    def start_response(status, response_headers, exc_info=None):
        return None

    for i in range(n):
        body = app(environs[i % len(environs)].copy(), start_response)
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()


def flask_app(n: int) -> None:
    sys.path.insert(0, str(REPO / "tests" / "app"))
    from app import app

    wsgi_requests(app, ["/", "/users/42", "/", "/users/7?q=1"], n, {"User-Agent": "pgo/1"})
    wsgi_requests(app, ["/", "/error", "/missing"], n // 10,
                  {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage": "k=v"})


def plain_wsgi(n: int) -> None:
    from ferrotel.wsgi import Middleware

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"hello"

    wsgi_requests(Middleware(app), ["/plain", "/plain?x=1"], n)


def asgi_app(n: int) -> None:
    import importlib.util

    from starlette.testclient import TestClient

    # Loaded by path: the Flask test app is also a module called "app".
    spec = importlib.util.spec_from_file_location("pgo_fastapi_app", REPO / "tests" / "app_fastapi" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app

    with TestClient(app) as client:
        for i in range(n):
            client.get("/" if i % 2 else "/items/5?q=x")


def clients(n: int, base: str) -> None:
    import http.client
    import urllib.request

    host, port = base.split("//")[1].split(":")
    for _ in range(n):
        with urllib.request.urlopen(base + "/x", timeout=10) as r:
            r.read()
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/y")
        conn.getresponse().read()
        conn.close()
    for name, call in (("urllib3", lambda m: m.PoolManager().request), ("requests", lambda m: m.Session().get),
                       ("httpx", lambda m: m.Client().get)):
        try:
            get = call(__import__(name))
            for _ in range(n):
                get("GET", base + "/z") if name == "urllib3" else get(base + "/z")
        except Exception as exc:  # noqa: BLE001 - a missing package only shortens the profile
            skip(name, exc)


def otel_api_and_logs(n: int) -> None:
    import logging

    log = logging.getLogger("pgo")
    try:
        from opentelemetry import trace
    except ImportError as exc:
        skip("the OpenTelemetry API", exc)
        for i in range(n):
            log.warning("record %d", i)
        return
    tracer = trace.get_tracer("pgo")
    for i in range(n):
        with tracer.start_as_current_span("manual", attributes={"i": i}) as span:
            span.set_attribute("k", "v")
            log.warning("record %d", i)


def child(endpoint: str) -> int:
    import ferrotel._native  # noqa: F401 - proves the agent loaded (fails the build if not)

    for name, work in (
        ("Flask", lambda: flask_app(30000 * SCALE)),
        ("plain WSGI", lambda: plain_wsgi(5000 * SCALE)),
        ("FastAPI", lambda: asgi_app(3000 * SCALE)),
        ("clients", lambda: clients(300 * SCALE, endpoint)),
        ("API and logging", lambda: otel_api_and_logs(5000 * SCALE)),
    ):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - see skip()
            skip(name, exc)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2]))
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(parent(Path(sys.argv[1]).resolve()))
