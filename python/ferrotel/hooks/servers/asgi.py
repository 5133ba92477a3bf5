"""ASGI: every HTTP request an ASGI server hands to the application becomes one SERVER span.

The servers are hooked where they hold the final application object, after their own
ASGI2/ASGI3/WSGI detection (a native callable is not a coroutine function, so it must not be
what they inspect):

- uvicorn (also gunicorn's ``uvicorn_worker.UvicornWorker``): ``Config.load`` wraps
  ``config.loaded_app``;
- hypercorn: ``ASGIWrapper`` wraps the application it is given.

Starlette and FastAPI applications are also traced under any other server: their middleware
stack (built lazily on the first request) is wrapped, inside ``Starlette.__call__``. A request
already traced by an outer wrapper passes straight through (the span is kept in
``scope["ferrotel.span"]``), so an app served by uvicorn gets one span, not two, and mounted
sub-applications add none.

All per-request work is native (``_native.AsgiMiddleware``): no Python frame is added.
"""

from ferrotel import _native

_Native = _native.AsgiMiddleware


def wrap(app, scope="ferrotel.asgi"):
    """`app` under the native ASGI middleware (once)."""
    if isinstance(app, _Native):
        return app
    return _Native(app, scope)


def instrument_uvicorn(config_module):
    cls = config_module.Config
    if getattr(cls, "_ferrotel_instrumented", False):
        return
    original = cls.load

    def load(self):
        original(self)
        # uvicorn's WSGI interface: the WSGI hooks (Flask, Django) trace the app themselves.
        if getattr(self, "loaded", False) and getattr(self, "interface", None) != "wsgi":
            self.loaded_app = wrap(self.loaded_app)

    load.__wrapped__ = original
    load.__doc__ = original.__doc__
    cls.load = load
    cls._ferrotel_instrumented = True


def instrument_hypercorn(app_wrappers):
    cls = app_wrappers.ASGIWrapper
    if getattr(cls, "_ferrotel_instrumented", False):
        return
    original = cls.__init__

    def __init__(self, app, *args, **kwargs):
        original(self, app, *args, **kwargs)
        self.app = wrap(self.app)

    __init__.__wrapped__ = original
    cls.__init__ = __init__
    cls._ferrotel_instrumented = True


def instrument_middleware_stack(cls, scope):
    """Wrap what ``cls.build_middleware_stack()`` returns (Starlette, FastAPI)."""
    original = cls.__dict__.get("build_middleware_stack")
    if original is None or getattr(original, "_ferrotel", False):
        return

    def build_middleware_stack(self):
        return wrap(original(self), scope)

    build_middleware_stack._ferrotel = True
    build_middleware_stack.__wrapped__ = original
    build_middleware_stack.__doc__ = original.__doc__
    cls.build_middleware_stack = build_middleware_stack
