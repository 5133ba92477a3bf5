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

Switches: the server wrappers are the ``asgi`` instrumentation. When the application they serve
is a FastAPI, Starlette or Django app, that framework's name decides instead (its
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` entry leaves its requests untraced, as with the
pure-Python agent, which has no server wrapper), and so does its excluded-URL list
(``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``, ...; ``OTEL_PYTHON_ASGI_EXCLUDED_URLS`` for other apps).
"""

from ferrotel import _native
from ferrotel.hooks._urls import excluded_for

_Native = _native.AsgiMiddleware

# the framework an application object belongs to, by the module of a class in its MRO
_FRAMEWORKS = (("fastapi.applications", "fastapi"), ("starlette.applications", "starlette"), ("django.core.handlers.asgi", "django"))


def framework(app):
    """The instrumentation name of the framework `app` is (or wraps: uvicorn's and Starlette's
    middlewares keep the next app as ``.app``), or ``"asgi"``."""
    try:
        seen = 0
        while app is not None and seen < 16:
            seen += 1
            modules = {getattr(c, "__module__", None) for c in type(app).__mro__}
            for module, name in _FRAMEWORKS:
                if module in modules:
                    return name
            app = getattr(app, "app", None)
    except Exception:  # an app object with odd attributes: the generic switch decides
        pass
    return "asgi"


def wrap(app, scope="ferrotel.asgi", name=None):
    """`app` under the native ASGI middleware (once); `app` itself when the instrumentation that
    covers it (`name`, else the framework it is, else ``asgi``) is switched off."""
    if isinstance(app, _Native):
        return app
    if name is None:
        name = framework(app)
    try:
        if name != "asgi" and not _native.instrumentation(name)[0]:
            return app  # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names its framework
        excluded = excluded_for(name)
    except Exception:  # never cost the server its app: trace it as before
        excluded = None
    return _Native(app, scope, excluded)


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


def _fastapi_telemetry_off(app):
    """FastAPI (0.16x) asks on every request, before its middleware stack, whether an
    OpenTelemetry provider is configured (``NativeTelemetry.enabled()``: three environment reads
    and three provider look-ups, measured by bench/profile_asgi.py) unless ``scope`` holds its
    ``fastapi.telemetry`` key -- which ferrotel's wrapper sets, but only once inside the stack,
    after the question. The app's answer from now on is "no", as it is for an app under uvicorn or
    hypercorn (their wrapper sets the key first): the request keeps one SERVER span, ferrotel's.
    ``bool()`` is ``False``: a C call, no Python frame."""
    try:
        telemetry = app.__dict__.get("_native_telemetry")
        if telemetry is not None and callable(getattr(type(telemetry), "enabled", None)):
            telemetry.enabled = bool
    except Exception:  # another FastAPI: it keeps asking
        pass


def instrument_middleware_stack(cls, scope):
    """Wrap what ``cls.build_middleware_stack()`` returns (Starlette, FastAPI)."""
    original = cls.__dict__.get("build_middleware_stack")
    if original is None or getattr(original, "_ferrotel", False):
        return

    name = scope.rpartition(".")[2]  # "ferrotel.fastapi" -> "fastapi"
    excluded = excluded_for(name)

    def build_middleware_stack(self):
        stack = original(self)
        if isinstance(stack, _Native):
            return stack
        _fastapi_telemetry_off(self)
        return _Native(stack, scope, excluded)

    build_middleware_stack._ferrotel = True
    build_middleware_stack.__wrapped__ = original
    build_middleware_stack.__doc__ = original.__doc__
    cls.build_middleware_stack = build_middleware_stack
