"""aiohttp's client: a CLIENT span per request (``ClientSession.request``/``get``/..., redirects
it follows included), with the propagation headers added to the request.

aiohttp's own extension point does it: every ``ClientSession`` gets one more ``TraceConfig``
(appended to the ``trace_configs`` the application passes, so its own run first). Its
``on_request_start`` starts the span (a child of the current span) and writes ``traceparent``
and the other configured headers into the request's headers, where the request has not set
them; ``on_request_end`` ends it when the response headers arrived (status 400 and up is an
error), ``on_request_exception`` when the request failed (the exception recorded).
"""

from ferrotel import _native


def instrument(client):
    enabled, excluded = _native.instrumentation("aiohttp_client")
    if not enabled:
        return
    session = client.ClientSession
    original_init = session.__dict__.get("__init__")
    if original_init is None or getattr(original_init, "_ferrotel", False):
        return
    from aiohttp.tracing import TraceConfig

    from ferrotel.hooks.http_clients.http_client import excluder

    exclude = excluder(excluded, "aiohttp_client")
    client_start, _server_start, end, fail = _native.RpcHook("ferrotel.aiohttp.client", "http").functions()

    async def on_request_start(session, ctx, params):
        url = str(params.url)
        if exclude is not None and exclude(url):
            return
        started = client_start(params.method, url)
        if started is None:
            return
        span, entries = started
        ctx.ferrotel_span = span
        headers = params.headers
        for name, value in entries:
            if name not in headers:
                headers[name] = value

    async def on_request_end(session, ctx, params):
        span = getattr(ctx, "ferrotel_span", None)
        if span is not None:
            ctx.ferrotel_span = None
            response = params.response
            end(span, response.status, response.version)

    async def on_request_exception(session, ctx, params):
        span = getattr(ctx, "ferrotel_span", None)
        if span is not None:
            ctx.ferrotel_span = None
            fail(span, params.exception, None)

    config = TraceConfig()
    config.on_request_start.append(on_request_start)
    config.on_request_end.append(on_request_end)
    config.on_request_exception.append(on_request_exception)
    config.freeze()

    def __init__(self, *args, **kwargs):
        try:
            configs = kwargs.get("trace_configs")
            kwargs["trace_configs"] = list(configs or ()) + [config]
        except Exception:
            pass
        original_init(self, *args, **kwargs)

    __init__.__doc__ = original_init.__doc__
    __init__.__wrapped__ = original_init
    __init__.__qualname__ = original_init.__qualname__
    __init__._ferrotel = True
    session.__init__ = __init__
