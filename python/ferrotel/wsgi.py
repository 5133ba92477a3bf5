"""WSGI middleware for any WSGI application: ``app = Middleware(app)``.

Each request becomes one SERVER span; the work is done natively. The agent starts on first use
if the bootstrap has not started it (configuration comes from the ``OTEL_*`` environment).
"""

from ferrotel import _native, start as _start

__all__ = ["Middleware"]


def Middleware(app, scope="ferrotel.wsgi"):
    """`app`, traced; `app` itself when ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names ``wsgi``.
    ``OTEL_PYTHON_EXCLUDED_URLS`` leaves matching requests untraced."""
    _start()
    enabled, excluded = _native.instrumentation("wsgi")
    if not enabled:
        return app
    from ferrotel.hooks._urls import excluder

    return _native.WsgiMiddleware(app, scope, False, excluder(excluded, "wsgi"))
