"""The native ASGI middleware's protocol edges, driven in one interpreter with the agent injected
the Operator's way (console exporter: one JSON line per span on stderr).

Untraced scopes (websocket, lifespan) get the app's own coroutine back; a request wrapped twice
gets one span; the awaitable is a coroutine to asyncio; cancellation ends the span without an
error; an exception before the response is a 500 with an `exception` event; a wrapped app that
raises synchronously still raises."""

from __future__ import annotations

import json
import textwrap

from support.operator import install_like_operator, operator_env
from support.processes import run_python

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    from ferrotel import _native
    import ferrotel.asgi

    out = {}

    def scope(path, type_="http"):
        return {"type": type_, "method": "GET", "path": path, "root_path": "", "scheme": "http",
                "query_string": b"", "http_version": "1.1", "headers": [(b"host", b"example.test:8080")],
                "server": ("127.0.0.1", 8080), "client": ("10.1.2.3", 5555)}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    sent = []
    async def send(message):
        sent.append(message["type"])

    async def ok(scope, receive, send):
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"x"})

    async def ws(scope, receive, send):
        out["ws_current"] = _native.current_span() is not None

    async def slow(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(10)

    async def fails_early(scope, receive, send):
        raise LookupError("before the response")

    def not_asgi3(scope):
        raise TypeError("asgi2 style")

    mw = _native.AsgiMiddleware(ok)

    async def main():
        coro = _native.AsgiMiddleware(ws)(scope("/ws", "websocket"), receive, send)
        out["websocket_type"] = type(coro).__name__
        await coro
        coro = _native.AsgiMiddleware(ok)(scope("/lifespan", "lifespan"), receive, send)
        out["lifespan_type"] = type(coro).__name__
        coro.close()

        request = mw(scope("/ok"), receive, send)
        out["http_type"] = type(request).__name__
        out["iscoroutine"] = asyncio.iscoroutine(request)
        await asyncio.create_task(request)  # asyncio accepts it as a task's coroutine
        out["current_after"] = _native.current_span() is not None

        # Wrapped twice (server hook + framework hook / public middleware): one span.
        await ferrotel.asgi.Middleware(_native.AsgiMiddleware(ok))(scope("/twice"), receive, send)

        task = asyncio.create_task(_native.AsgiMiddleware(slow)(scope("/cancelled"), receive, send))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            out["cancelled"] = True

        try:
            await _native.AsgiMiddleware(fails_early)(scope("/early"), receive, send)
        except LookupError:
            out["early_raised"] = True
        try:
            _native.AsgiMiddleware(not_asgi3)(scope("/sync"), receive, send)
        except TypeError:
            out["sync_raised"] = True

    asyncio.run(main())

    # Abandoned half-way: the app's coroutine (suspended, its `send` argument being the request
    # object) and the request object refer to each other; the collector frees both and the span
    # ends with what it has.
    class Suspend:
        def __await__(self):
            yield "suspended"

    async def waits(scope, receive, send):
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await Suspend()

    abandoned = _native.AsgiMiddleware(waits)(scope("/abandoned"), receive, send)
    out["abandoned_step"] = abandoned.send(None)
    del abandoned
    gc.collect()
    _native.flush(5000)
    print(json.dumps(out))
    """
)


def test_asgi_protocol_edges(dist_dir, tmp_path):
    install = install_like_operator(dist_dir, tmp_path)
    env = operator_env(install, "http://127.0.0.1:9", extra={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"})
    result = run_python(SCRIPT, env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    emitted = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    spans = {s["attributes"]["url.path"]: s for s in emitted}

    assert out["websocket_type"] == "coroutine" and out["lifespan_type"] == "coroutine"  # the app's own
    assert out["ws_current"] is False
    assert out["http_type"] == "AsgiRequest" and out["iscoroutine"] is True
    assert out["current_after"] is False  # the context is restored when the request ends
    # One span each (also for the request wrapped twice), none for websocket or lifespan.
    assert sorted(s["attributes"]["url.path"] for s in emitted) == ["/abandoned", "/cancelled", "/early", "/ok", "/sync", "/twice"]

    ok = spans["/ok"]
    assert ok["kind"] == "SERVER" and ok["name"] == "GET"
    assert ok["attributes"]["http.response.status_code"] == 201
    assert ok["attributes"]["server.address"] == "example.test" and ok["attributes"]["server.port"] == 8080
    assert ok["attributes"]["client.address"] == "10.1.2.3"

    assert out["cancelled"] is True
    cancelled = spans["/cancelled"]
    assert cancelled["status"]["code"] == "UNSET" and not cancelled["events"]

    assert out["early_raised"] is True
    early = spans["/early"]
    assert early["status"]["code"] == "ERROR"
    assert early["attributes"]["http.response.status_code"] == 500
    assert early["attributes"]["error.type"] == "LookupError"
    assert [e["name"] for e in early["events"]] == ["exception"]

    assert out["abandoned_step"] == "suspended"
    assert spans["/abandoned"]["attributes"]["http.response.status_code"] == 202

    assert out["sync_raised"] is True
    assert spans["/sync"]["attributes"]["error.type"] == "TypeError"
