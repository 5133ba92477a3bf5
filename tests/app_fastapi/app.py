"""FastAPI test application (no ferrotel import on its serving path): `uvicorn app:app`.

Routes cover what the ASGI suites check: a router included with a prefix, a mounted FastAPI
sub-app and a mounted Starlette app, a plain `def` endpoint (FastAPI runs it in its thread pool),
a streamed response, an unhandled exception, HTTPException 4xx/5xx, and context propagation
across awaits, tasks, the thread pool and concurrent outgoing calls.

The context checks start spans with ferrotel's generic span API (`ferrotel._native.start_span`,
parented to whatever span is current) when the agent is loaded; without the agent they are no-ops.
"""

import asyncio
import os
import threading
import time

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse as StarlettePlain
from starlette.routing import Mount, Route

try:  # only the context checks use it: the serving path never imports ferrotel
    from ferrotel import _native
except ImportError:  # pragma: no cover - the app also runs without the agent
    _native = None


def child_span(name):
    """An INTERNAL span under the current span; returns (trace_id, parent seen) for the response."""
    if _native is None:
        return {"name": name}
    span = _native.start_span(name)
    span.end()
    current = _native.current_span()
    return {"name": name, "trace_id": span.trace_id, "span_id": span.span_id, "current": current.span_id if current else None}


app = FastAPI()
api = APIRouter(prefix="/api")


@app.get("/")
async def index():
    return PlainTextResponse("hello")


@api.get("/items/{item_id}")
async def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q}


@api.get("/sync/{n}")
def sync_item(n: int):
    # A plain def: FastAPI runs it in anyio's worker threads.
    return {"n": n, "thread": threading.current_thread().name, "span": child_span("sync-child")}


@api.get("/missing/{n}")
async def missing(n: int):
    raise HTTPException(status_code=404, detail="no such item")


@api.get("/unavailable")
async def unavailable():
    raise HTTPException(status_code=503, detail="try later")


@app.get("/error")
async def error():
    raise ValueError("boom")


@app.get("/stream")
async def stream():
    async def chunks():
        for i in range(3):
            if i:
                await asyncio.sleep(0.05)
            yield f"chunk{i}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/block/{n}")
async def block(n: int):
    # Holds the event loop (a blocking call in an async endpoint): with two workers, the other
    # one accepts meanwhile, so both serve requests.
    time.sleep(0.02)
    return {"n": n, "pid": os.getpid()}


@app.get("/ctx/{n}")
async def ctx(n: int):
    """The request's span stays current across awaits and in tasks the handler creates."""
    before = child_span("before-await")
    await asyncio.sleep(0.05)
    after = child_span("after-await")

    async def in_task():
        await asyncio.sleep(0.01)
        return child_span("in-task")

    task = await asyncio.create_task(in_task())
    return {"n": n, "before": before, "after": after, "task": task}


@app.get("/gather")
async def gather(port: int, base: int = 1000, manual: int = 0):
    """Two concurrent outgoing calls from one request (asyncio.gather of two httpx.AsyncClient calls).

    With `manual=1` each call opens its own CLIENT span through ferrotel's span API, makes it
    current in its task and sends its traceparent -- what an HTTP client hook does -- so the
    context rules are checked whatever client hooks the build has.
    """

    async def call(i):
        headers, span, token = {}, None, None
        if manual and _native is not None:
            span = _native.start_span("GET", kind=2, scope="app_fastapi.manual_client")
            token = _native.set_current(span)
            headers = dict(_native.inject_headers(span))
        try:
            async with httpx.AsyncClient() as client:
                await asyncio.sleep(0.01)  # both calls are in flight together
                response = await client.get(f"http://127.0.0.1:{port}/api/items/{i}?q=downstream", headers=headers)
                return response.status_code
        finally:
            if span is not None:
                span.end()
                _native.reset_current(token)

    codes = await asyncio.gather(call(base + 1), call(base + 2))
    return {"codes": codes}


sub = FastAPI()


@sub.get("/things/{thing_id}")
async def thing(thing_id: str):
    return {"thing_id": thing_id}


async def hello(request):
    return StarlettePlain("hi " + request.path_params["name"])


async def deep(request):
    return StarlettePlain("deep %d" % request.path_params["k"])


@app.get("/telemetry-marker")
async def telemetry_marker(request: Request):
    """Whether a server wrapper marked this request "not traced here" for FastAPI's own telemetry."""
    scope = request.scope
    return {"present": "fastapi.telemetry" in scope, "is_none": scope.get("fastapi.telemetry", 0) is None}


app.include_router(api)
app.mount("/sub", sub)
app.mount("/star", Starlette(routes=[Route("/hello/{name}", hello), Mount("/deep", routes=[Route("/x/{k:int}", deep)])]))
