"""grpcio, client and server, sync and ``grpc.aio``, unary and streaming (issue 16).

Hooked through gRPC's own extension points, never its private calls:

- sync client: the call methods of the multi-callables every channel hands out
  (``instrument_channel``: a channel interceptor costs ten times the budget in gRPC's own
  machinery); ``grpc.aio`` client: interceptors appended to the ``interceptors`` of
  ``grpc.aio.insecure_channel`` / ``secure_channel``. Either way ferrotel's is the innermost:
  interceptors the application adds run first, and the metadata sent is what they made of it
  plus the propagation entries (``traceparent``...: gRPC metadata keys are the lower-case HTTP
  header names);
- server: a server interceptor appended to ``grpc.server(...)`` / ``grpc.aio.server(...)``'s
  ``interceptors``, which wraps the method handler's behaviour: the SERVER span's parent comes
  from the call's metadata, the span is current while the handler (or its response stream) runs,
  so the calls it makes are its children.

One span per call. A unary response ends it when the call completes; a streaming response when
the stream finishes (exhausted, failed or cancelled: the call's done callback on the client, the
response generator's end on the server). The status code is the call's: on the client every code
but ``OK`` is an error, on the server only ``UNKNOWN``, ``DEADLINE_EXCEEDED``, ``UNIMPLEMENTED``,
``INTERNAL``, ``UNAVAILABLE`` and ``DATA_LOSS`` (the conventions' list). ``context.abort(code)`` is
a status, not an exception; any other exception a handler raises is recorded (``UNKNOWN``).

Return values, exceptions and signatures of every call are the library's: the hooks only pass
what they receive on.
"""

from ferrotel import _native

_SCOPE = "ferrotel.grpc"
# id(handler) -> (handler, wrapped handler): method handlers are made once per method by the
# application's generic handlers, so wrapping is done once per method (bounded).
_WRAPPED_MAX = 4096


def _functions():
    hook = _native.RpcHook(_SCOPE, "grpc")
    return hook.functions()


def _with_interceptor(args, kwargs, index, *interceptors):
    """`args`, `kwargs` with `interceptors` appended to the ``interceptors`` argument, passed at
    position `index` or by keyword (or absent)."""
    if len(args) > index:
        args = args[:index] + (list(args[index] or ()) + list(interceptors),) + args[index + 1 :]
    else:
        kwargs["interceptors"] = list(kwargs.get("interceptors") or ()) + list(interceptors)
    return args, kwargs


def _adopt(wrapper, original):
    """`wrapper`, named and documented as `original`, which it wraps (``__wrapped__``)."""
    wrapper.__wrapped__ = original
    wrapper.__doc__ = original.__doc__
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = original.__qualname__
    return wrapper


def _server_factory(original, interceptor):
    """``grpc.server`` or ``grpc.aio.server`` with an `interceptor()` appended to its
    ``interceptors`` (the app's own run first)."""

    def server(*args, **kwargs):
        try:  # server(thread_pool, handlers, interceptors, ...)
            args, kwargs = _with_interceptor(args, kwargs, 2, interceptor())
        except Exception:
            pass
        return original(*args, **kwargs)

    return _adopt(server, original)


# ---- client ---------------------------------------------------------------------------------


# The signature of every sync multi-callable's call methods (grpcio 1.60 to 1.85 at least).
_CALL_PARAMETERS = (("timeout", "metadata", "credentials", "wait_for_ready", "compression"), 7, 0, (None,) * 5, None)


def _call_signature_matches(function):
    from ferrotel.hooks.http_clients.http_client import parameters

    found = parameters(function)
    if found is None:
        return False
    names, count, flags, defaults, kwdefaults = found
    return (names[2:], count, flags, defaults, kwdefaults) == _CALL_PARAMETERS and names[0] == "self"


def instrument_channel(channel_module):
    """``grpc._channel``: the call methods of the sync multi-callables every channel hands out
    (``channel.unary_unary(...)`` and the rest, whatever made the channel).

    Not a channel interceptor: on this machine ``grpc.intercept_channel`` with an interceptor
    that does nothing costs ~30 µs per call (a new multi-callable per call, outcome objects),
    ten times the budget; the call methods are where every call passes anyway, interceptors
    the application adds included (they end in ``with_call``/``future``), so ferrotel's span is
    the innermost and the metadata it adds is sent as the application's interceptors left it.
    A blocking call ends its span when it returns or raises its ``RpcError``; a future or a
    response stream when the call is done (its done callback)."""
    if getattr(channel_module, "_ferrotel_client", False):
        return
    client_start, _server_start, end, fail = _functions()

    def blocking(original):
        def call(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None, compression=None):
            started = client_start(self._method, self._target)
            if started is None:
                return original(self, request, timeout, metadata, credentials, wait_for_ready, compression)
            span, entries = started
            if metadata:
                entries = list(metadata) + entries
            try:
                result = original(self, request, timeout, entries, credentials, wait_for_ready, compression)
            except BaseException as exc:
                code = getattr(exc, "code", None)
                try:
                    end(span, code()) if callable(code) else fail(span, exc, None)
                except Exception:
                    fail(span, exc, None)
                raise
            end(span, "OK")
            return result

        return call

    def deferred(original):
        def call(self, request, timeout=None, metadata=None, credentials=None, wait_for_ready=None, compression=None):
            started = client_start(self._method, self._target)
            if started is None:
                return original(self, request, timeout, metadata, credentials, wait_for_ready, compression)
            span, entries = started
            if metadata:
                entries = list(metadata) + entries
            try:
                outcome = original(self, request, timeout, entries, credentials, wait_for_ready, compression)
            except BaseException as exc:
                fail(span, exc, None)
                raise
            try:  # ends when the call does: exhausted, failed or cancelled (at once if done)
                outcome.add_done_callback(lambda done: end(span, done.code()))
            except Exception:
                end(span, None)
            return outcome

        return call

    plan = (
        ("_UnaryUnaryMultiCallable", (("__call__", blocking), ("with_call", blocking), ("future", deferred))),
        ("_StreamUnaryMultiCallable", (("__call__", blocking), ("with_call", blocking), ("future", deferred))),
        ("_UnaryStreamMultiCallable", (("__call__", deferred),)),
        ("_SingleThreadedUnaryStreamMultiCallable", (("__call__", deferred),)),
        ("_StreamStreamMultiCallable", (("__call__", deferred),)),
    )
    for class_name, methods in plan:
        cls = getattr(channel_module, class_name, None)
        if cls is None:
            continue
        for name, kind in methods:
            original = cls.__dict__.get(name)
            if original is None or not _call_signature_matches(original):
                continue  # not the grpcio this was written for: that call goes untraced
            setattr(cls, name, _adopt(kind(original), original))
    channel_module._ferrotel_client = True


def _code_now(call):
    """A finished ``grpc.aio`` call's status code, without awaiting: its ``code()`` coroutine
    completes at once when the status is in (None if it would have to wait)."""
    coro = call.code()
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    except Exception:
        return None
    coro.close()
    return None


def instrument_aio_client(aio):
    """``grpc.aio``: its channels get the client interceptor appended to their interceptors."""
    if getattr(aio, "_ferrotel_client", False):
        return
    client_start, _server_start, end, fail = _functions()
    Details = aio.ClientCallDetails
    Metadata = aio.Metadata

    def done(span):
        return lambda call: end(span, _code_now(call))

    async def intercept(self, continuation, details, request):
        method = details.method
        started = client_start(method, self._target)  # bytes or str: the native side takes either
        if started is None:
            return await continuation(details, request)
        span, entries = started
        metadata = details.metadata
        pairs = tuple(metadata) + tuple(entries) if metadata else tuple(entries)
        details = Details(method, details.timeout, Metadata(*pairs), details.credentials, details.wait_for_ready)
        try:
            call = await continuation(details, request)
        except BaseException as exc:
            fail(span, exc, None)
            raise
        try:
            call.add_done_callback(done(span))
        except Exception:
            end(span, None)
        return call

    def __init__(self, target):
        self._target = target

    # grpc.aio sorts a channel's interceptors by their first matching base class (an if/elif
    # chain), so each kind of call needs an interceptor object of its own.
    kinds = []
    for base, method in (
        (aio.UnaryUnaryClientInterceptor, "intercept_unary_unary"),
        (aio.UnaryStreamClientInterceptor, "intercept_unary_stream"),
        (aio.StreamUnaryClientInterceptor, "intercept_stream_unary"),
        (aio.StreamStreamClientInterceptor, "intercept_stream_stream"),
    ):
        kinds.append(type("Ferrotel" + base.__name__, (base,), {"__init__": __init__, method: intercept, "__module__": __name__}))

    def interceptors(target):
        return [kind(target) for kind in kinds]

    def wrap_channel(original):
        # insecure_channel(target, options, compression, interceptors);
        # secure_channel(target, credentials, options, compression, interceptors)
        index = 2 if original.__name__ == "insecure_channel" else 3

        def channel(target, *args, **kwargs):
            try:
                args, kwargs = _with_interceptor(args, kwargs, index, *interceptors(str(target)))
            except Exception:
                pass
            return original(target, *args, **kwargs)

        return _adopt(channel, original)

    aio.insecure_channel = wrap_channel(aio.insecure_channel)
    aio.secure_channel = wrap_channel(aio.secure_channel)
    aio._ferrotel_client = True


# ---- server ---------------------------------------------------------------------------------


def _server_pieces():
    _client_start, server_start, end, fail = _functions()
    set_current, reset_current = _native.set_current, _native.reset_current
    return server_start, end, fail, set_current, reset_current


def _settle_code(context, default):
    """The code the handler set (``set_code``, ``abort``), else `default`."""
    try:
        code = context.code()
    except Exception:
        return default
    return default if code is None else code


def _wrap_sync_handler(handler, method, pieces):
    server_start, end, fail, set_current, reset_current = pieces

    def unary(behavior):
        def call(request, context):
            span = server_start(method, context.invocation_metadata(), True)
            if span is None:
                return behavior(request, context)
            token = set_current(span)
            try:
                response = behavior(request, context)
            except BaseException as exc:
                code = _settle_code(context, None)
                if code is None:
                    fail(span, exc, "UNKNOWN")
                else:  # context.abort(code): a status, not a failure of the handler
                    end(span, code)
                raise
            finally:
                reset_current(token)
            end(span, _settle_code(context, "OK"))
            return response

        return call

    def streaming(behavior):
        def call(request, context):
            span = server_start(method, context.invocation_metadata(), True)
            if span is None:
                yield from behavior(request, context)
                return
            ended = False
            try:
                token = set_current(span)
                try:
                    responses = behavior(request, context)
                finally:
                    reset_current(token)
                iterator = iter(responses)
                while True:
                    token = set_current(span)
                    try:
                        item = next(iterator)
                    except StopIteration:
                        break
                    finally:
                        reset_current(token)
                    yield item
            except GeneratorExit:  # the stream was closed early (the client went away)
                end(span, "CANCELLED")
                ended = True
                raise
            except BaseException as exc:
                code = _settle_code(context, None)
                if code is None:
                    fail(span, exc, "UNKNOWN")
                else:
                    end(span, code)
                ended = True
                raise
            if not ended:
                end(span, _settle_code(context, "OK"))

        return call

    return handler._replace(
        unary_unary=handler.unary_unary and unary(handler.unary_unary),
        stream_unary=handler.stream_unary and unary(handler.stream_unary),
        unary_stream=handler.unary_stream and streaming(handler.unary_stream),
        stream_stream=handler.stream_stream and streaming(handler.stream_stream),
    )


def _wrap_aio_handler(handler, method, pieces):
    import inspect

    server_start, end, fail, set_current, reset_current = pieces

    def coroutine(behavior):
        async def call(request, context):
            span = server_start(method, context.invocation_metadata(), True)
            if span is None:
                return await behavior(request, context)
            token = set_current(span)
            try:
                response = await behavior(request, context)
            except BaseException as exc:
                code = _settle_code(context, None)
                if code is not None:
                    end(span, code)
                elif type(exc).__name__ == "CancelledError":  # the call was cancelled: not a handler failure
                    end(span, "CANCELLED")
                else:
                    fail(span, exc, "UNKNOWN")
                raise
            finally:
                reset_current(token)
            end(span, _settle_code(context, "OK"))
            return response

        return call

    def generator(behavior):
        async def call(request, context):
            span = server_start(method, context.invocation_metadata(), True)
            if span is None:
                async for item in behavior(request, context):
                    yield item
                return
            # An async generator runs in the task that iterates it (the call's own): the span
            # stays current between items.
            token = set_current(span)
            try:
                async for item in behavior(request, context):
                    yield item
            except GeneratorExit:
                end(span, "CANCELLED")
                raise
            except BaseException as exc:
                code = _settle_code(context, None)
                if code is not None:
                    end(span, code)
                elif type(exc).__name__ == "CancelledError":  # the call was cancelled: not a handler failure
                    end(span, "CANCELLED")
                else:
                    fail(span, exc, "UNKNOWN")
                raise
            finally:
                reset_current(token)
            end(span, _settle_code(context, "OK"))

        return call

    def either(behavior):
        if behavior is None:
            return None
        if inspect.isasyncgenfunction(behavior):
            return generator(behavior)
        if inspect.iscoroutinefunction(behavior):
            return coroutine(behavior)
        return _wrap_sync_handler(handler._replace(unary_unary=behavior, unary_stream=None, stream_unary=None, stream_stream=None), method, pieces).unary_unary

    return handler._replace(
        unary_unary=either(handler.unary_unary),
        stream_unary=either(handler.stream_unary),
        unary_stream=either(handler.unary_stream),
        stream_stream=either(handler.stream_stream),
    )


def _wrapper(wrap, pieces):
    """``wrapped(handler, details)``: the handler with traced behaviours, made once per handler."""
    cache = {}
    server_start, end = pieces[0], pieces[1]

    def wrapped(handler, details):
        method = details.method
        if handler is None:  # no such method: the server answers UNIMPLEMENTED itself
            span = server_start(method, details.invocation_metadata, False)
            if span is not None:
                end(span, "UNIMPLEMENTED")
            return None
        key = (id(handler), method)
        found = cache.get(key)
        if found is not None and found[0] is handler:
            return found[1]
        made = wrap(handler, method, pieces)
        if len(cache) >= _WRAPPED_MAX:
            cache.clear()
        cache[key] = (handler, made)
        return made

    return wrapped


def instrument_server(grpc):
    """``grpc.server(...)`` gets the server interceptor appended to its ``interceptors``."""
    if getattr(grpc, "_ferrotel_server", False):
        return
    wrapped = _wrapper(_wrap_sync_handler, _server_pieces())

    class ServerInterceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            try:
                return wrapped(handler, handler_call_details)
            except Exception:
                return handler

    grpc.server = _server_factory(grpc.server, ServerInterceptor)
    grpc._ferrotel_server = True


def instrument_aio_server(aio):
    """``grpc.aio.server(...)`` gets the server interceptor appended to its ``interceptors``."""
    if getattr(aio, "_ferrotel_server", False):
        return
    wrapped = _wrapper(_wrap_aio_handler, _server_pieces())

    class AioServerInterceptor(aio.ServerInterceptor):
        async def intercept_service(self, continuation, handler_call_details):
            handler = await continuation(handler_call_details)
            try:
                return wrapped(handler, handler_call_details)
            except Exception:
                return handler

    aio.server = _server_factory(aio.server, AioServerInterceptor)
    aio._ferrotel_server = True
