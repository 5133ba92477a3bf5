"""Flask: every ``Flask`` app (created before or after this runs) becomes traced.

``Flask.__call__`` hands the request to the native dispatcher, which times it, reads the route
template and ends the span when the response body is closed. ``Flask.handle_exception`` (called
only for unhandled exceptions) records the exception on the active span before Flask turns it
into a 500.
"""

from ferrotel import _native

_dispatch = _native.FlaskDispatch()


def instrument(flask):
    cls = flask.Flask
    if getattr(cls, "_ferrotel_instrumented", False):
        return
    original_handle_exception = cls.handle_exception

    def __call__(self, environ, start_response):
        return _dispatch(self.wsgi_app, environ, start_response)

    def handle_exception(self, e):
        _native.record_exception(e)
        return original_handle_exception(self, e)

    __call__.__doc__ = cls.__call__.__doc__
    handle_exception.__wrapped__ = original_handle_exception
    cls.__call__ = __call__
    cls.handle_exception = handle_exception
    cls._ferrotel_instrumented = True
