"""Plain WSGI applications with the awkward behaviours PEP 3333 allows, for the reliability suite.

``application`` dispatches on PATH_INFO. When the agent tree is importable (the Operator's
PYTHONPATH), it is wrapped with ``ferrotel.wsgi.Middleware``; without it (the no-agent baseline
run), the raw app is served. Every response the app itself produces carries ``X-App: 1``, so a
test can tell the app's answers from the server's own error pages.
"""

import sys

TEXT = [("Content-Type", "text/plain"), ("X-App", "1")]


class Boom(Exception):
    pass


class NoCloseIterable:
    """An iterable (not an iterator) without close()."""

    def __init__(self, chunks):
        self._chunks = list(chunks)

    def __iter__(self):
        return iter(self._chunks)


class ClosingIterator:
    """An iterator with close(), as PEP 3333 lets apps return."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    def close(self):
        self.closed = True


def _generator(chunks):
    for chunk in chunks:
        yield chunk


def _generator_raises():
    yield b"first\n"
    raise Boom("raised from the body")


def _late_exc_info(start_response):
    # Headers are sent with the first chunk; an error after that, reported with exc_info, must be
    # re-raised by the server's start_response (PEP 3333), which then aborts the response.
    yield b"partial\n"
    try:
        raise Boom("after the headers were sent")
    except Boom:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    yield b"never sent\n"


def raw_app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/list":
        start_response("200 OK", TEXT)
        return [b"one\n", b"two\n"]
    if path == "/single":  # one-element list without Content-Length: servers may compute it
        start_response("200 OK", TEXT)
        return [b"single body"]
    if path == "/generator":
        start_response("200 OK", TEXT)
        return _generator([b"g1\n", b"g2\n", b"g3\n"])
    if path == "/generator-raises":
        start_response("200 OK", TEXT)
        return _generator_raises()
    if path == "/raise-before":
        raise Boom("raised before start_response")
    if path == "/raise-after":
        start_response("200 OK", TEXT)
        raise Boom("raised after start_response")
    if path == "/exc-info":
        start_response("200 OK", TEXT)
        try:
            raise Boom("failed after start_response, before the body")
        except Boom:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        return [b"error page\n"]
    if path == "/exc-info-late":
        start_response("200 OK", TEXT)
        return _late_exc_info(start_response)
    if path == "/write":
        write = start_response("200 OK", TEXT)
        write(b"written, ")
        write(b"then ")
        return [b"returned\n"]
    if path == "/write-only":
        write = start_response("200 OK", TEXT)
        write(b"only written\n")
        return []
    if path == "/no-close":
        start_response("200 OK", TEXT)
        return NoCloseIterable([b"no ", b"close\n"])
    if path == "/closing":
        start_response("200 OK", TEXT)
        return ClosingIterator([b"closing ", b"iterator\n"])
    if path == "/file":  # the server's file wrapper (sendfile, Content-Length from the file's size)
        start_response("200 OK", TEXT)
        f = open(__file__, "rb")
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(f, 8192) if wrapper is not None else iter(lambda: f.read(8192), b"")
    if path == "/empty":
        start_response("204 No Content", [("X-App", "1")])
        return []
    # anything else: echo what the app saw (latin-1 code points carrying the request's bytes)
    start_response("200 OK", TEXT)
    seen = "%s %s ? %s | headers=%d" % (
        environ.get("REQUEST_METHOD", ""),
        path,
        environ.get("QUERY_STRING", ""),
        sum(1 for k in environ if k.startswith("HTTP_")),
    )
    return [seen.encode("latin-1", "replace")]


try:
    from ferrotel.wsgi import Middleware
except ImportError:  # the no-agent baseline
    Middleware = None

application = Middleware(raw_app) if Middleware is not None else raw_app
