"""Starlette (and what builds on it): the application's middleware stack is traced natively.

The route template comes from ``scope["route"]`` (set by Starlette's router) under the mount
prefixes the request went through; see ``src/hooks/asgi.rs``.
"""

from ferrotel.hooks.servers.asgi import instrument_middleware_stack


def instrument(applications):
    """Called with ``starlette.applications`` once the app imports it."""
    instrument_middleware_stack(applications.Starlette, "ferrotel.starlette")
