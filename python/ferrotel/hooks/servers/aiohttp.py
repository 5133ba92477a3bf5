"""``aiohttp.web`` applications: a SERVER span per request, under aiohttp's own runner
(``web.run_app``, ``AppRunner``) and under gunicorn's ``aiohttp.GunicornWebWorker`` alike: both
hand every request to the root application's ``Application._handle``, which this hook wraps (a
coroutine function of a few lines around native calls).

The span's parent comes from the request headers (``OTEL_PROPAGATORS``); the span is current
while the handler and the middlewares run, so calls they make, and tasks they start, are its
children. ``http.route`` is the matched resource's template (``/users/{id}``; a sub-application's
prefix included); a request no route matches has none. The status is the response's, or the
``HTTPException``'s the handler raised; any other exception is recorded and counted as the 500
aiohttp answers. The span ends when the handler returns its response (a ``StreamResponse`` the
handler writes itself is sent by then; a plain ``Response``'s body is written right after).
"""

from ferrotel import _native


def instrument(web_app):
    enabled, excluded = _native.instrumentation("aiohttp_server")
    if not enabled:
        return
    application = web_app.Application
    original = application.__dict__.get("_handle")
    if original is None or getattr(original, "_ferrotel", False):
        return
    from aiohttp.web_exceptions import HTTPException

    from ferrotel.hooks.http_clients.http_client import excluder

    exclude = excluder(excluded, "aiohttp_server")
    _client_start, server_start, end, fail = _native.RpcHook("ferrotel.aiohttp.server", "http").functions()
    set_current, reset_current = _native.set_current, _native.reset_current

    def route(span, request):
        try:
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else None
            if template:
                span.set_attribute("http.route", template)
        except Exception:
            pass

    async def _handle(self, request):
        if exclude is not None and exclude(str(request.url)):
            return await original(self, request)
        version = request.version
        span = server_start(
            request.method,
            request.scheme,
            request.host,
            request.path,
            request.query_string,
            request.headers,
            request.remote,
            "%d.%d" % (version[0], version[1]) if version[0] < 2 else str(version[0]),
        )
        if span is None:
            return await original(self, request)
        token = set_current(span)
        try:
            response = await original(self, request)
        except HTTPException as exc:
            route(span, request)
            end(span, exc.status)
            raise
        except Exception as exc:
            route(span, request)
            fail(span, exc, 500)
            raise
        except BaseException:  # cancelled (the client went away): not an application error
            route(span, request)
            end(span, None)
            raise
        finally:
            reset_current(token)
        route(span, request)
        end(span, getattr(response, "status", None))
        return response

    _handle.__doc__ = original.__doc__
    _handle.__wrapped__ = original
    _handle.__qualname__ = original.__qualname__
    _handle._ferrotel = True
    application._handle = _handle
