"""Two aiohttp.web services for tests/rpc/test_aiohttp.py.

    python aiohttp_app.py backend PORT             # aiohttp's own runner (web.run_app)
    python aiohttp_app.py frontend PORT            # the same; calls $BACKEND_URL
    gunicorn -k aiohttp.GunicornWebWorker aiohttp_app:frontend

The backend answers ``/users/{user_id}`` and fails on ``/boom`` (an exception: aiohttp's 500).
The frontend's ``/orders/{order_id}`` calls the backend twice at once (two tasks, aiohttp's
client) and ``/fail`` calls ``/boom`` and answers 502 (``HTTPBadGateway`` raised).
"""

import asyncio
import os
import sys

from aiohttp import ClientSession, web


def make_backend():
    async def user(request):
        await asyncio.sleep(0.01)
        return web.json_response({"user": request.match_info["user_id"]})

    async def boom(request):
        raise ValueError("backend bug")

    app = web.Application()
    app.router.add_get("/users/{user_id}", user)
    app.router.add_get("/boom", boom)
    return app


def make_frontend(backend):
    async def session_ctx(app):
        app["session"] = ClientSession()
        yield
        await app["session"].close()

    async def fetch(session, path):
        async with session.get(backend + path) as resp:
            return resp.status, await resp.text()

    async def order(request):
        oid = request.match_info["order_id"]
        session = request.app["session"]
        results = await asyncio.gather(fetch(session, "/users/%s" % oid), fetch(session, "/users/%s?part=2" % oid))
        return web.json_response({"order": oid, "calls": [s for s, _ in results]})

    async def fail(request):
        status, _ = await fetch(request.app["session"], "/boom")
        raise web.HTTPBadGateway(text="backend said %d" % status)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/orders/{order_id}", order)
    app.router.add_get("/fail", fail)
    return app


async def frontend():
    """gunicorn's aiohttp worker takes a coroutine function that makes the app."""
    return make_frontend(os.environ["BACKEND_URL"])


if __name__ == "__main__":
    role, port = sys.argv[1], int(sys.argv[2])
    app = make_backend() if role == "backend" else make_frontend(os.environ["BACKEND_URL"])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
