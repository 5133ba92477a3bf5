"""A gRPC service and its client, for tests/rpc/test_grpc.py: real grpcio, generic handlers with
bytes in and out (no generated code). Run as

    python grpc_app.py server sync|aio PORT       # serves demo.Echo on 127.0.0.1:PORT
    python grpc_app.py client sync|aio PORT       # one call of each kind, under a span "job"

Methods of ``demo.Echo``: ``Unary`` (echoes, after calling ``Inner`` on the same server, so a
server span has a client child), ``Inner``, ``ServerStream`` (three responses), ``ClientStream``
(joins the requests), ``BidiStream`` (echoes each), ``Missing`` (aborts with NOT_FOUND),
``Crash`` (raises: UNKNOWN). The client also calls ``Inner`` itself through a channel with an
interceptor of its own that adds ``x-app`` metadata (``Inner`` answers ``+app`` when it got it;
sync: through ``.future()``), and prints one JSON line of what it got.
"""

import asyncio
import json
import sys

import grpc
import grpc.aio

SERVICE = "demo.Echo"
mode, side, port = sys.argv[2], sys.argv[1], int(sys.argv[3])
TARGET = "127.0.0.1:%d" % port


def path(method):
    return "/%s/%s" % (SERVICE, method)


# ---- server ---------------------------------------------------------------------------------


def app_mark(context):
    """`+app` when the call carries the metadata the client application's own interceptor adds."""
    return b"+app" if any(k == "x-app" and v == "yes" for k, v in context.invocation_metadata()) else b""


def sync_server():
    from concurrent import futures

    inner_channel = grpc.insecure_channel(TARGET)
    inner = inner_channel.unary_unary(path("Inner"))

    def unary(request, context):
        return b"echo:" + inner(request, timeout=10)

    def inner_call(request, context):
        return b"inner:" + request + app_mark(context)

    def server_stream(request, context):
        for i in range(3):
            yield b"%s-%d" % (request, i)

    def client_stream(requests, context):
        return b"+".join(requests)

    def bidi(requests, context):
        for r in requests:
            yield b"re:" + r

    def missing(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def crash(request, context):
        raise ValueError("handler bug")

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Inner": grpc.unary_unary_rpc_method_handler(inner_call),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "BidiStream": grpc.stream_stream_rpc_method_handler(bidi),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
        "Crash": grpc.unary_unary_rpc_method_handler(crash),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(TARGET)
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()


async def aio_server():
    inner_channel = grpc.aio.insecure_channel(TARGET)
    inner = inner_channel.unary_unary(path("Inner"))

    async def unary(request, context):
        return b"echo:" + await inner(request, timeout=10)

    async def inner_call(request, context):
        return b"inner:" + request + app_mark(context)

    async def server_stream(request, context):
        for i in range(3):
            yield b"%s-%d" % (request, i)

    async def client_stream(requests, context):
        return b"+".join([r async for r in requests])

    async def bidi(requests, context):
        async for r in requests:
            yield b"re:" + r

    async def missing(request, context):
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    async def crash(request, context):
        raise ValueError("handler bug")

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Inner": grpc.unary_unary_rpc_method_handler(inner_call),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "BidiStream": grpc.stream_stream_rpc_method_handler(bidi),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
        "Crash": grpc.unary_unary_rpc_method_handler(crash),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(TARGET)
    await server.start()
    print("listening", flush=True)
    await server.wait_for_termination()


# ---- client ---------------------------------------------------------------------------------


class _Details(__import__("collections").namedtuple("_Details", "method timeout metadata credentials wait_for_ready compression"), grpc.ClientCallDetails):
    pass


class AppInterceptor(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, details, request):
        metadata = list(details.metadata or ()) + [("x-app", "yes")]
        return continuation(_Details(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression), request)


class AioAppInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        metadata = grpc.aio.Metadata(*(tuple(details.metadata or ()) + (("x-app", "yes"),)))
        return await continuation(grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready), request)


def tracer():
    from opentelemetry import trace

    return trace.get_tracer("grpc-test-client")


def sync_client():
    out = {}
    with tracer().start_as_current_span("job"):
        with grpc.insecure_channel(TARGET) as channel:
            out["unary"] = channel.unary_unary(path("Unary"))(b"a", timeout=10).decode()
            out["server_stream"] = [r.decode() for r in channel.unary_stream(path("ServerStream"))(b"s", timeout=10)]
            out["client_stream"] = channel.stream_unary(path("ClientStream"))(iter([b"x", b"y"]), timeout=10).decode()
            out["bidi"] = [r.decode() for r in channel.stream_stream(path("BidiStream"))(iter([b"1", b"2"]), timeout=10)]
            # The application's own interceptor adds metadata; ferrotel's entries go in beside it.
            intercepted = grpc.intercept_channel(channel, AppInterceptor())
            out["future"] = intercepted.unary_unary(path("Inner")).future(b"f", timeout=10).result().decode()
            for name in ("Missing", "Crash", "NoSuchMethod"):
                try:
                    channel.unary_unary(path(name))(b"z", timeout=10)
                except grpc.RpcError as e:
                    out[name] = e.code().name
    print(json.dumps(out), flush=True)


async def aio_client():
    out = {}
    with tracer().start_as_current_span("job"):
        async with grpc.aio.insecure_channel(TARGET) as channel:
            out["unary"] = (await channel.unary_unary(path("Unary"))(b"a", timeout=10)).decode()
            out["server_stream"] = [r.decode() async for r in channel.unary_stream(path("ServerStream"))(b"s", timeout=10)]

            async def requests(items):
                for i in items:
                    yield i

            out["client_stream"] = (await channel.stream_unary(path("ClientStream"))(requests([b"x", b"y"]), timeout=10)).decode()
            out["bidi"] = [r.decode() async for r in channel.stream_stream(path("BidiStream"))(requests([b"1", b"2"]), timeout=10)]
            async with grpc.aio.insecure_channel(TARGET, interceptors=[AioAppInterceptor()]) as intercepted:
                out["future"] = (await intercepted.unary_unary(path("Inner"))(b"f", timeout=10)).decode()
            for name in ("Missing", "Crash", "NoSuchMethod"):
                try:
                    await channel.unary_unary(path(name))(b"z", timeout=10)
                except grpc.RpcError as e:
                    out[name] = e.code().name
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if side == "server":
        sync_server() if mode == "sync" else asyncio.run(aio_server())
    else:
        sync_client() if mode == "sync" else asyncio.run(aio_client())
