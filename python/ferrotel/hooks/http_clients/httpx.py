"""httpx, sync and async. httpx sends through httpcore, not ``http.client``, so it has its own hook: the
network transports' ``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request``,
one call per request on the wire (each redirect httpx follows is another). The native ``HttpxHook``
starts the span and adds the propagation headers the request lacks; the span ends when the
transport returns the response (headers received) or raises. The sync method is replaced by the
hook itself (``HttpxHook.wrap``: no Python frame of the agent's), the async one by a coroutine
function of a few lines around the same native calls.

The headers: over HTTP/1.1, httpcore's connections (``instrument_httpcore``) get an
``h11.Connection`` subclass whose ``send`` (a Python method, cheaper to call from httpcore than a
native one, with a native ``splice``) writes them into the request head h11 serialised (a
header through httpx's API costs more than the span: httpcore and h11 check and copy every header
in Python). Otherwise (HTTP/2 enabled, an httpcore without that layout) they go into
``request.headers`` while the transport sends it, and out again when it returns. Other transports (``MockTransport``,
``WSGITransport``, ``ASGITransport``) send nothing over the network and are not traced.
"""

from ferrotel import _native


def instrument(httpx):
    from ferrotel.hooks.http_clients.http_client import excluder

    enabled, excluded = _native.instrumentation("httpx")
    if not enabled:
        return
    sync_transport, async_transport = httpx.HTTPTransport, httpx.AsyncHTTPTransport
    if isinstance(sync_transport.__dict__.get("handle_request"), _native.MethodHook):
        return
    hook = _native.HttpxHook("ferrotel.httpx", excluder(excluded, "httpx"))
    start, finish, fail = hook.functions()
    original_async = async_transport.handle_async_request

    async def handle_async_request(self, request):
        call = start(self, request)
        if call is None:
            return await original_async(self, request)
        try:
            response = await original_async(self, request)
        except BaseException as exc:
            fail(call, exc)
            raise
        finish(call, response)
        return response

    handle_async_request.__doc__ = original_async.__doc__
    handle_async_request.__wrapped__ = original_async
    handle_async_request._ferrotel = True
    sync_transport.handle_request = hook.wrap(sync_transport.handle_request)
    async_transport.handle_async_request = handle_async_request


def instrument_httpcore(httpcore):
    """Give httpcore's HTTP/1.1 connections (sync and async) the ``h11.Connection`` subclass whose
    ``send`` writes the propagation headers of the httpx request being sent into its head. Only
    those connections: they build their h11 state through their module's global ``h11``, which
    becomes a copy of the module with ``Connection`` replaced; h11 itself, and every other user of
    it (an h11 server, say), are left alone."""
    if not _native.instrumentation("httpx")[0]:
        return
    import sys
    import types

    from ferrotel.hooks.http_clients.http_client import parameters

    h11 = sys.modules.get("h11")
    if h11 is None or not callable(getattr(getattr(h11, "Connection", None), "send", None)):
        return
    base = h11.Connection
    base_send = base.send
    if parameters(base_send) != (("self", "event"), 2, 0, None, None):
        return  # not the h11 this was written for: headers go through the request
    var, splice = _native.HttpxHook.h11_functions()
    pending = var.get
    request_event = h11.Request

    def send(self, event):
        data = base_send(self, event)
        if type(event) is not request_event:
            return data
        out = pending(None)
        if out is None:
            return data
        return splice(out, data)

    send.__doc__ = base_send.__doc__
    send.__wrapped__ = base_send
    send.__qualname__ = base_send.__qualname__
    connection = type(base.__name__, (base,), {"__module__": base.__module__, "__qualname__": base.__qualname__, "__doc__": base.__doc__, "send": send})
    shim = types.ModuleType(h11.__name__, h11.__doc__)
    shim.__dict__.update(h11.__dict__)
    shim.Connection = connection
    for name, asynchronous in (("httpcore._sync.http11", False), ("httpcore._async.http11", True)):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "h11", None) is h11:
            module.h11 = shim
            _native.HttpxHook.h11_ready(asynchronous)
