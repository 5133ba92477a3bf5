"""ASGI middleware for servers ferrotel does not hook itself: ``app = Middleware(app)``.

uvicorn (and gunicorn's uvicorn workers), hypercorn, and any Starlette/FastAPI application are
traced without it. Under daphne, granian or another server, wrap a plain ASGI app (or Django's
``get_asgi_application()``) with this. A request already traced passes through, so wrapping an
app that is also hooked never yields two spans.

``Middleware`` is a class with an ``async def __call__`` so that servers that inspect the app
(ASGI 2 or 3?) recognise it as ASGI 3; the request work itself is native.
"""

from ferrotel import _native, start as _start

__all__ = ["Middleware"]


class Middleware:
    def __init__(self, app, scope="ferrotel.asgi"):
        _start()
        self.app = app
        enabled, excluded = _native.instrumentation("asgi")
        if enabled:  # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=asgi: the app, untraced
            from ferrotel.hooks._urls import excluder

            self._traced = _native.AsgiMiddleware(app, scope, excluder(excluded, "asgi"))
        else:
            self._traced = app

    async def __call__(self, scope, receive, send):
        await self._traced(scope, receive, send)
