"""Flask: every ``Flask`` app becomes traced.

Each app gets the native middleware as its *instance* attribute ``wsgi_app`` when it is created
(``Flask.__init__`` is wrapped): ``Flask.__call__`` already looks ``self.wsgi_app`` up, so a
request costs no extra Python frame. The middleware reads the route template while Flask's
request context is alive and ends the span when the response body is closed.
``Flask.handle_exception`` (called only for unhandled exceptions) records the exception and the
matched route on the active span before Flask turns it into a 500 (or, in debug mode or with
``PROPAGATE_EXCEPTIONS``, re-raises it: the middleware then records the server's 500).

Apps created before the hook (Flask imported before the agent started, which the bootstrap
normally prevents) are reached through ``Flask.__call__`` instead, at the cost of a Python frame.
"""

from ferrotel import _importhook, _native
from ferrotel.hooks._urls import excluded_for

SCOPE = "ferrotel.flask"
_excluded = None  # OTEL_PYTHON_FLASK_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS, set by instrument()


def _wrap(app):
    current = app.__dict__.get("wsgi_app")
    if not isinstance(current, _native.WsgiMiddleware):
        app.wsgi_app = _native.WsgiMiddleware(current if current is not None else app.wsgi_app, SCOPE, True, _excluded)


def instrument(flask):
    global _excluded
    cls = flask.Flask
    if getattr(cls, "_ferrotel_instrumented", False):
        return
    _excluded = excluded_for("flask")
    original_init = cls.__init__
    original_handle_exception = cls.handle_exception

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        try:
            _wrap(self)
        except Exception:  # never cost the app its construction
            pass

    globals_ = getattr(flask, "globals", None)

    def handle_exception(self, e):
        # The route is read here, while the request context is alive: in debug mode or with
        # PROPAGATE_EXCEPTIONS, Flask re-raises out of wsgi_app without calling start_response
        # (where the middleware reads it otherwise) and pops the context first.
        route = None
        try:
            rule = globals_.request.url_rule
            route = rule.rule if rule is not None else None
        except Exception:
            pass
        _native.record_exception(e, route)
        return original_handle_exception(self, e)

    __init__.__wrapped__ = original_init
    __init__.__doc__ = original_init.__doc__
    handle_exception.__wrapped__ = original_handle_exception
    cls.__init__ = __init__
    cls.handle_exception = handle_exception
    if _importhook.preexisting:
        original_call = cls.__call__

        def __call__(self, environ, start_response):
            if "wsgi_app" not in self.__dict__:
                _wrap(self)
            return original_call(self, environ, start_response)

        __call__.__wrapped__ = original_call
        cls.__call__ = __call__
    cls._ferrotel_instrumented = True
