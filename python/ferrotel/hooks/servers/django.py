"""Django, under WSGI and ASGI, without ever touching its settings.

Nothing here reads ``django.conf.settings`` or calls ``django.setup()``: the hooks patch three
functions when Django's own modules are imported, and act only inside requests. So an app whose
``DJANGO_SETTINGS_MODULE`` becomes importable only after the server starts (``gunicorn --chdir``)
and a one-file app that calls ``settings.configure()`` itself boot exactly as without the agent.

- ``WSGIHandler.__call__``: each WSGI request runs under the native WSGI middleware (span,
  status, body timing). ASGI Django is traced by the ASGI server hooks (uvicorn, hypercorn).
- ``BaseHandler.resolve_request``: once Django's resolver matched, ``request.resolver_match.route``
  becomes ``http.route`` -- with a leading slash and the script prefix, e.g.
  ``/api/items/<int:item_id>`` (see README: the same shape as url.path and the other frameworks'
  routes, so route filters such as ``/healthz`` apply to every framework alike).
- ``handle_uncaught_exception``: the exception Django turns into its 500 page is recorded on the
  span (an ``exception`` event); Django's response is unchanged.
"""

import types

from ferrotel import _native
from ferrotel.hooks._urls import excluded_for

_SCOPE = "ferrotel.django"


def instrument_wsgi(wsgi):
    """Called with ``django.core.handlers.wsgi``."""
    cls = wsgi.WSGIHandler
    if getattr(cls, "_ferrotel_instrumented", False):
        return
    original = cls.__call__
    excluded = excluded_for("django")  # OTEL_PYTHON_DJANGO_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS

    def __call__(self, environ, start_response):
        middleware = self.__dict__.get("_ferrotel_wsgi")
        if middleware is None:
            middleware = self._ferrotel_wsgi = _native.WsgiMiddleware(types.MethodType(original, self), _SCOPE, False, excluded)
        return middleware(environ, start_response)

    __call__.__wrapped__ = original
    __call__.__doc__ = original.__doc__
    cls.__call__ = __call__
    cls._ferrotel_instrumented = True


def instrument_base(base):
    """Called with ``django.core.handlers.base``."""
    cls = base.BaseHandler
    original = cls.__dict__.get("resolve_request")  # Django 3.1+
    if original is None or getattr(original, "_ferrotel", False):
        return
    route = _native.django_route

    def resolve_request(self, request):
        match = original(self, request)
        route(request, match)
        return match

    resolve_request._ferrotel = True
    resolve_request.__wrapped__ = original
    cls.resolve_request = resolve_request


def instrument_exception(exception):
    """Called with ``django.core.handlers.exception``."""
    original = getattr(exception, "handle_uncaught_exception", None)
    if original is None or getattr(original, "_ferrotel", False):
        return
    record = _native.record_exception

    def handle_uncaught_exception(request, resolver, exc_info):
        if exc_info and exc_info[1] is not None:
            record(exc_info[1])
        return original(request, resolver, exc_info)

    handle_uncaught_exception._ferrotel = True
    handle_uncaught_exception.__wrapped__ = original
    exception.handle_uncaught_exception = handle_uncaught_exception
