"""A plain Starlette application: `uvicorn starlette_app:app`."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hi " + request.path_params["name"])


async def health(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/hello/{name}", hello), Route("/internal/health", health)])
