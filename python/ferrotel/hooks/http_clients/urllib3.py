"""urllib3 (1.26 and 2.x), and so requests, which sends every request through it.

One native hook on ``HTTPConnectionPool._make_request`` (``_native.Urllib3Hook.wrap``): one call
per request on the wire (a retry or a redirect urllib3 follows is a new request, and a new span, as
the HTTP conventions ask). Connect errors happen inside it too. It starts the span, hands it to the
connection (``_ferrotel_out``) for the ``http.client`` ``endheaders`` hook to write its propagation
headers into the request (or, for a connection class without that hook, puts them into a copy of
the request's headers), and ends the span with the response or the error.

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
    from ferrotel.hooks.http_clients.http_client import excluder

    connection = urllib3.connection.HTTPConnection
    if connection.__dict__.get("_ferrotel_span", None) is False:
        return
    connection._ferrotel_span = False  # traced here (or not at all), never by the http.client hook
    connection._ferrotel_out = None  # the span whose headers http.client's endheaders hook writes
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
    pool = urllib3.connectionpool.HTTPConnectionPool
    pool._make_request = hook.wrap(pool._make_request)


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
