"""Lazy hooks: patch a library right after the application imports it, never import it ourselves.

A finder at the front of ``sys.meta_path`` answers only for the module names in ``HOOKS``: it asks
the other finders for the real spec, and wraps the loader so the hook runs once the module has
executed. A module already imported when the agent starts is hooked at once.

The finder and loader are plain classes: `importlib.abc` would pull in `importlib.resources`,
pathlib, tempfile, typing and more (about 20 ms and 4 MiB of start-up in a script that imports
none of them), and the import system needs only the methods.
"""

import sys


def _flask(module):
    from ferrotel import _native
    from ferrotel.hooks import flask

    if not _native.instrumentation("flask")[0]:  # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=flask
        return
    flask.instrument(module)


def _http_client(module):
    from ferrotel.hooks import http_client

    http_client.instrument(module)


def _urllib3(module):
    from ferrotel.hooks import urllib3

    urllib3.instrument(module)


def _requests(module):
    from ferrotel.hooks import urllib3

    urllib3.instrument_requests(module)


def _httpx(module):
    from ferrotel.hooks import httpx

    httpx.instrument(module)


def _httpcore(module):
    from ferrotel.hooks import httpx

    httpx.instrument_httpcore(module)


def _otel_api(module):
    from ferrotel.hooks import otel_api

    otel_api.instrument(module)


def _logging(module):
    from ferrotel.hooks import logging_hook

    logging_hook.instrument(module)


def _logging_config(module):
    from ferrotel.hooks import logging_hook

    logging_hook.instrument_config(module)


def _asgi(name):
    def hook(module):
        from ferrotel.hooks import asgi, django, fastapi, starlette

        {
            "uvicorn.config": asgi.instrument_uvicorn,
            "hypercorn.app_wrappers": asgi.instrument_hypercorn,
            "starlette.applications": starlette.instrument,
            "fastapi.applications": fastapi.instrument,
            "django.core.handlers.wsgi": django.instrument_wsgi,
            "django.core.handlers.base": django.instrument_base,
            "django.core.handlers.exception": django.instrument_exception,
        }[name](module)

    return hook


# module name -> function called with the freshly imported module.
HOOKS = {"flask": _flask}
# ASGI servers, Starlette/FastAPI and Django (issue 11): see ferrotel/hooks/asgi.py and django.py.
_ASGI_AND_DJANGO = (
    "uvicorn.config",
    "hypercorn.app_wrappers",
    "starlette.applications",
    "fastapi.applications",
    "django.core.handlers.wsgi",
    "django.core.handlers.base",
    "django.core.handlers.exception",
)
HOOKS.update({name: _asgi(name) for name in _ASGI_AND_DJANGO})
# Outgoing HTTP calls (urllib3 before requests: requests' hook reads what urllib3's decided).
HOOKS.update({"http.client": _http_client, "urllib3": _urllib3, "requests": _requests, "httpx": _httpx, "httpcore": _httpcore})
# The OpenTelemetry API bridge (only if the app has and imports the API); logging correlation/export.
HOOKS.update({"opentelemetry.trace": _otel_api, "logging": _logging, "logging.config": _logging_config})


def _run(name, module):
    try:
        HOOKS[name](module)
    except Exception as exc:  # a hook failure costs telemetry, never the import
        sys.stderr.write("ferrotel: could not instrument %s (%s: %s)\n" % (name, type(exc).__name__, exc))


class _HookingLoader:
    def __init__(self, name, loader):
        self._name = name
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run(self._name, module)

    def __getattr__(self, attr):  # get_resource_reader, is_package, ... pass through
        return getattr(self._loader, attr)


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookingLoader(fullname, spec.loader)
                return spec
        return None


_finder = _Finder()


# True while hooks run for modules the app imported before the agent started (objects such as
# app instances may already exist then).
preexisting = False


def install():
    global preexisting
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    preexisting = True
    try:
        for name in HOOKS:
            module = sys.modules.get(name)
            if module is not None:
                _run(name, module)
    finally:
        preexisting = False
