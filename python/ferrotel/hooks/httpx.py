"""httpx, sync and async. httpx sends through httpcore, not ``http.client``, so it has its own hook: the
network transports' ``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request``,
one call per request on the wire (each redirect httpx follows is another). The native ``HttpxHook``
starts the span and adds the propagation headers the request lacks; the span ends when the
transport returns the response (headers received) or raises. Other transports (``MockTransport``,
``WSGITransport``, ``ASGITransport``) send nothing over the network and are not traced.
"""

from ferrotel import _native


def instrument(httpx):
    from ferrotel.hooks.http_client import excluder

    enabled, excluded = _native.instrumentation("httpx")
    if not enabled:
        return
    sync_transport, async_transport = httpx.HTTPTransport, httpx.AsyncHTTPTransport
    if getattr(sync_transport.handle_request, "_ferrotel", False):
        return
    hook = _native.HttpxHook("ferrotel.httpx", excluder(excluded, "httpx"))
    start, finish, fail = hook.start, hook.finish, hook.fail
    original_sync = sync_transport.handle_request
    original_async = async_transport.handle_async_request

    def handle_request(self, request):
        span = start(request)
        if span is None:
            return original_sync(self, request)
        try:
            response = original_sync(self, request)
        except BaseException as exc:
            fail(span, exc)
            raise
        finish(span, response)
        return response

    async def handle_async_request(self, request):
        span = start(request)
        if span is None:
            return await original_async(self, request)
        try:
            response = await original_async(self, request)
        except BaseException as exc:
            fail(span, exc)
            raise
        finish(span, response)
        return response

    for wrapper, original in ((handle_request, original_sync), (handle_async_request, original_async)):
        wrapper.__doc__ = original.__doc__
        wrapper.__wrapped__ = original
        wrapper._ferrotel = True
    sync_transport.handle_request = handle_request
    async_transport.handle_async_request = handle_async_request
