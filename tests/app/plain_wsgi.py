"""A plain WSGI application (no framework) traced with ``ferrotel.wsgi.Middleware``.

Run as ``gunicorn plain_wsgi:application`` with only the agent tree on PYTHONPATH (no
sitecustomize): the middleware starts the agent on first use. Set ``CLOSE_LOG`` to a file path
to record every ``close()`` the server makes on a ``/closing`` response body.
"""

import os

from ferrotel.wsgi import Middleware

TEXT = [("Content-Type", "text/plain")]


class ClosingBody:
    """A generator-like response body (iterator with ``close()``) that logs each close call."""

    def __init__(self, chunks, tag):
        self._chunks = iter(chunks)
        self._tag = tag

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._chunks)

    def close(self):
        with open(os.environ["CLOSE_LOG"], "a") as f:
            f.write(f"close {self._tag}\n")


class AppError(Exception):
    pass


def failing_body():
    yield b"first\n"
    raise RuntimeError("body boom")


def raw_app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/":
        start_response("200 OK", TEXT)
        return [b"hello"]
    if path == "/raise":
        raise AppError("raised before any response")
    if path == "/body-error":
        start_response("200 OK", TEXT)
        return failing_body()
    if path == "/closing":
        start_response("200 OK", TEXT)
        return ClosingBody([b"a\n", b"b\n"], environ.get("QUERY_STRING", ""))
    if path == "/unavailable":
        start_response("503 Service Unavailable", TEXT)
        return [b"down"]
    # anything else: echo the path (PEP 3333: latin-1 code points carrying the URL's bytes)
    start_response("200 OK", TEXT)
    return [path.encode("latin-1")]


application = Middleware(raw_app)
