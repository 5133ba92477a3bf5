"""A plain ASGI 3 application (no framework): `uvicorn plain_asgi:app`, `hypercorn plain_asgi:app`."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b"plain " + scope["path"].encode()
    status = 500 if scope["path"] == "/fail" else 200
    if scope["path"] == "/raise":
        raise RuntimeError("plain failure")
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
