"""urllib3 (1.26 and 2.x), and so requests, which sends every request through it.

One wrapper on ``HTTPConnectionPool._make_request``: one call per request on the wire (a retry or a
redirect urllib3 follows is a new request, and a new span, as the HTTP conventions ask). Connect
errors happen inside it too. The native ``Urllib3Hook`` starts the span, puts the propagation
headers into a copy of the request's headers, and ends the span with the response or the error.

urllib3's connections subclass ``http.client.HTTPConnection``; ``_ferrotel_span = False`` on their
class keeps the standard-library hook out of them (one span per request, not one per layer).

Upstream has two instrumentations here, ``urllib3`` and ``requests``. When both are configured
alike (the default) nothing tells them apart at run time. When they differ (one disabled, or other
excluded URLs), a marker on requests' ``HTTPAdapter.send`` says which settings apply.
"""

from ferrotel import _native

#: Set while requests' adapter sends, when requests and urllib3 are configured differently.
marker = None


def instrument(urllib3):
    global marker
    from ferrotel.hooks.http_client import excluder

    connection = urllib3.connection.HTTPConnection
    if connection.__dict__.get("_ferrotel_span", None) is False:
        return
    connection._ferrotel_span = False  # traced here (or not at all), never by the http.client hook
    direct_on, direct_excluded = _native.instrumentation("urllib3")
    requests_on, requests_excluded = _native.instrumentation("requests")
    if not (direct_on or requests_on):
        return
    if (direct_on, direct_excluded) != (requests_on, requests_excluded):
        import contextvars

        marker = contextvars.ContextVar("ferrotel_via_requests", default=False)
    hook = _native.Urllib3Hook(
        direct_on, excluder(direct_excluded, "urllib3"), requests_on, excluder(requests_excluded, "requests"), marker
    )
    start, finish, fail = hook.start, hook.finish, hook.fail
    pool = urllib3.connectionpool.HTTPConnectionPool
    original = pool._make_request

    def _make_request(self, conn, method, url, *args, **kwargs):
        # urllib3 passes everything after the url by keyword; headers given by position are left alone.
        span = start(self, method, url, None if args else kwargs)
        if span is None:
            return original(self, conn, method, url, *args, **kwargs)
        try:
            response = original(self, conn, method, url, *args, **kwargs)
        except BaseException as exc:
            fail(span, exc)
            raise
        finish(span, response)
        return response

    _make_request.__doc__ = original.__doc__
    _make_request.__wrapped__ = original
    pool._make_request = _make_request


def instrument_requests(requests):
    """Only when requests and urllib3 are configured differently: mark requests' sends."""
    var = marker
    if var is None:
        return
    adapter = requests.adapters.HTTPAdapter
    if getattr(adapter.send, "_ferrotel", False):
        return
    original = adapter.send

    def send(self, request, *args, **kwargs):
        token = var.set(True)
        try:
            return original(self, request, *args, **kwargs)
        finally:
            var.reset(token)

    send.__doc__ = original.__doc__
    send.__wrapped__ = original
    send._ferrotel = True
    adapter.send = send
