"""Django, under WSGI and ASGI, without ever touching its settings.

Nothing here reads ``django.conf.settings`` or calls ``django.setup()``: the hooks patch three
functions when Django's own modules are imported, and act only inside requests. So an app whose
``DJANGO_SETTINGS_MODULE`` becomes importable only after the server starts (``gunicorn --chdir``)
and a one-file app that calls ``settings.configure()`` itself boot exactly as without the agent.

- ``WSGIHandler.__call__``: each WSGI request runs under the native WSGI middleware (span,
  status, body timing). Both this hook and the next are native methods (``src/hooks/http/django.rs``):
  no Python frame per request. ASGI Django is traced by the ASGI server hooks (uvicorn, hypercorn).
- ``BaseHandler.resolve_request``: once Django's resolver matched, ``request.resolver_match.route``
  becomes ``http.route`` -- with a leading slash and the script prefix, e.g.
  ``/api/items/<int:item_id>`` (see README: the same shape as url.path and the other frameworks'
  routes, so route filters such as ``/healthz`` apply to every framework alike).
- ``handle_uncaught_exception``: the exception Django turns into its 500 page is recorded on the
  span (an ``exception`` event); Django's response is unchanged.
"""

from ferrotel import _native
from ferrotel.hooks._urls import excluded_for

_SCOPE = "ferrotel.django"


def instrument_wsgi(wsgi):
    """Called with ``django.core.handlers.wsgi``."""
    cls = wsgi.WSGIHandler
    if getattr(cls, "_ferrotel_instrumented", False):
        return
    excluded = excluded_for("django")  # OTEL_PYTHON_DJANGO_EXCLUDED_URLS / OTEL_PYTHON_EXCLUDED_URLS
    # A native method (no Python frame): each handler's requests go through its own native WSGI
    # middleware, around the original __call__ bound to it. __wrapped__ gives the original.
    cls.__call__ = _native.django_wsgi_hook(cls.__call__, _SCOPE, excluded)
    cls._ferrotel_instrumented = True


def instrument_base(base):
    """Called with ``django.core.handlers.base``."""
    cls = base.BaseHandler
    original = cls.__dict__.get("resolve_request")  # Django 3.1+
    if original is None or isinstance(original, _native.MethodHook):
        return
    # A native method: the original, then the resolver's route onto the server span.
    cls.resolve_request = _native.django_resolve_hook(original)


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
