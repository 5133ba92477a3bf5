"""A one-file Django app for the benchmarks (bench/asgi.py's Django rows, bench/profile_asgi.py):
``GET /items/<int:item_id>`` -> ``hello``, no middleware, no database. This module is both the
settings module and the URLconf: ``DJANGO_SETTINGS_MODULE=django_app`` with bench/ on the path.

``request(n)`` drives the WSGI application ``n`` times as a WSGI server does (a fresh environ,
``app(environ, start_response)``, the body iterated and ``close()``d) and returns elapsed ns.
"""

from __future__ import annotations

import io
import sys
import time

DEBUG = False
SECRET_KEY = "ferrotel-bench"
ROOT_URLCONF = "django_app"
ALLOWED_HOSTS = ["*"]
MIDDLEWARE: list = []
INSTALLED_APPS: list = []
USE_TZ = True
LOGGING_CONFIG = None


def _view(request, item_id):
    from django.http import HttpResponse

    return HttpResponse("hello")


def _urlpatterns():
    from django.urls import path

    return [path("items/<int:item_id>", _view)]


def __getattr__(name):  # the URLconf, built when Django's resolver first asks (settings loaded by then)
    if name == "urlpatterns":
        value = _urlpatterns()
        globals()["urlpatterns"] = value
        return value
    raise AttributeError(name)


ENVIRON = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/items/42", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "54321", "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "ferrotel-bench/1", "HTTP_ACCEPT": "*/*", "wsgi.url_scheme": "http",
    "wsgi.input": None, "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": False,
    "wsgi.multiprocess": True, "wsgi.run_once": False,
}  # fmt: skip


def _start_response(status, headers, exc_info=None):
    return None


def drive(target, n: int) -> int:
    """n sequential WSGI requests to `target`; returns elapsed ns."""
    t0 = time.perf_counter_ns()
    for _ in range(n):
        env = ENVIRON.copy()
        env["wsgi.input"] = io.BytesIO(b"")
        body = target(env, _start_response)
        for _chunk in body:
            pass
        body.close()
    return time.perf_counter_ns() - t0


def application():
    """Django's WSGI application for these settings (``DJANGO_SETTINGS_MODULE`` must name this module)."""
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()
