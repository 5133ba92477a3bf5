"""FastAPI: ``FastAPI.build_middleware_stack`` overrides Starlette's, so it is wrapped too.

Routers included with a prefix are flattened by FastAPI (``route.path_format`` is
``/api/items/{item_id}``); mounted sub-applications add their mount prefix. Plain ``def``
endpoints run in anyio's thread pool with a copy of the request's context, so the span is
current there as well.
"""

from ferrotel.hooks.servers.asgi import instrument_middleware_stack


def instrument(applications):
    """Called with ``fastapi.applications`` once the app imports it."""
    instrument_middleware_stack(applications.FastAPI, "ferrotel.fastapi")
