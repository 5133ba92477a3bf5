"""WSGI middleware for any WSGI application: ``app = Middleware(app)``.

Each request becomes one SERVER span; the work is done natively. The agent starts on first use
if the bootstrap has not started it (configuration comes from the ``OTEL_*`` environment).
"""

from ferrotel import _native, start as _start

__all__ = ["Middleware"]


def Middleware(app, scope="ferrotel.wsgi"):
    _start()
    return _native.WsgiMiddleware(app, scope)
