"""The OpenTelemetry API bridge: the app's ``opentelemetry-api`` spans become ferrotel spans.

Installed when the application imports ``opentelemetry.trace`` (never imported by the agent
itself). Three small changes to the API's module state, nothing else:

- **Tracers.** The API's global proxy provider (``trace.get_tracer_provider()`` while the app has
  set none) hands out ferrotel tracers: their spans wrap native span handles and go through the
  native pipeline (sampler, processors, resource, exporters) with the scope the app named. The
  proxy stays the API's own object, so libraries that check whether a provider was configured
  (FastAPI's built-in telemetry does) still see none and do not add a second server span. When
  the app sets its own provider (``set_tracer_provider`` or ``OTEL_PYTHON_TRACER_PROVIDER``) its
  choice stands, also for tracers handed out before; ferrotel says so once on stderr.
- **Context.** The API's runtime context is wrapped so the API and ferrotel agree on the current
  span: a context the app attaches makes its span ferrotel's current span too (so ferrotel's own
  spans, e.g. HTTP client spans, are its children), and a span ferrotel made current natively (the
  server span of the request) is what ``trace.get_current_span()`` returns when it is newer than
  the API's context. Propagation (``propagate.inject`` / ``extract``) is the API's own and reads
  this context.
- **A notice** when the app's own provider takes over.
"""

import sys
from functools import wraps as _wraps
from inspect import iscoroutinefunction as _iscoroutinefunction

from opentelemetry import context as _context_api
from opentelemetry import trace as _trace
from opentelemetry.context.context import Context, _RuntimeContext

try:
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext as _CVRC

    _CONTEXTVARS_GET_CURRENT = _CVRC.get_current
except Exception:  # noqa: BLE001 - an API without it: get_value stays the API's own
    _CONTEXTVARS_GET_CURRENT = None
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from ferrotel import _native

_start_span = _native.start_span
_context_span = _native.otel_context_span
_span_context = _native.otel_span_context
_record_exception = _native.otel_record_exception
_add_link = _native.otel_add_link
_INTERNAL = _trace.SpanKind.INTERNAL
_ERROR = StatusCode.ERROR
_INVALID = _trace.INVALID_SPAN
_DEFAULT_STATE = TraceState()
_attach = _context_api.attach
_detach = _context_api.detach
_set_value = _context_api.set_value

# ferrotel's current-span ContextVar (set by the bridge in instrument()).
_VAR = None


def _warn(message):
    try:
        sys.stderr.write("ferrotel: %s\n" % message)
    except Exception:  # noqa: BLE001 - a closed stderr must not break the app
        pass


class _Span(_trace.Span):
    """An API span backed by a native span handle. ``owned`` is False for ferrotel's own spans
    (the request's server span) seen through the API: the app may enrich them, ferrotel ends them."""

    __slots__ = ("_n", "_owned", "_ctx", "_rec_exc", "_status_exc")

    def __init__(self, native, owned=True, record_exception=True, set_status_on_exception=True):
        self._n = native
        self._owned = owned
        self._ctx = None
        self._rec_exc = record_exception
        self._status_exc = set_status_on_exception

    def get_span_context(self):
        ctx = self._ctx
        if ctx is None:
            trace_id, span_id, flags, state, remote = _span_context(self._n)
            ctx = self._ctx = SpanContext(
                trace_id,
                span_id,
                is_remote=remote,
                trace_flags=TraceFlags(flags),
                trace_state=TraceState.from_header([state]) if state else _DEFAULT_STATE,
            )
        return ctx

    def is_recording(self):
        return self._n.is_recording

    def set_attribute(self, key, value):
        try:
            self._n.set_attribute(key, value)
        except Exception:  # noqa: BLE001 - a bad key type is dropped, as the SDK drops it
            pass

    def set_attributes(self, attributes):
        try:
            self._n.set_attributes(attributes)
        except Exception:  # noqa: BLE001
            pass

    def add_event(self, name, attributes=None, timestamp=None):
        try:
            self._n.add_event(name, attributes, timestamp)
        except Exception:  # noqa: BLE001
            pass

    def add_link(self, context, attributes=None):
        try:
            if context is not None and context.is_valid:
                state = context.trace_state.to_header() if context.trace_state else None
                _add_link(self._n, context.trace_id, context.span_id, int(context.trace_flags), state or None, attributes)
        except Exception:  # noqa: BLE001
            pass

    def update_name(self, name):
        try:
            self._n.update_name(name)
        except Exception:  # noqa: BLE001
            pass

    def set_status(self, status, description=None):
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        try:
            self._n.set_status(code.value, description if code is _ERROR else None)
        except Exception:  # noqa: BLE001
            pass

    def record_exception(self, exception, attributes=None, timestamp=None, escaped=False):
        try:
            _record_exception(self._n, exception, attributes, timestamp)
        except Exception:  # noqa: BLE001
            pass

    def end(self, end_time=None):
        if self._owned:
            try:
                self._n.end(end_time)
            except Exception:  # noqa: BLE001
                pass

    def __exit__(self, exc_type, exc_val, exc_tb):
        # As the SDK: `with tracer.start_span(...) as span:` records an escaping exception.
        if exc_val is not None and self._n.is_recording:
            if self._rec_exc:
                self.record_exception(exc_val)
            if self._status_exc:
                self.set_status(Status(_ERROR, "%s: %s" % (exc_type.__name__, exc_val)))
        self.end()

    def __repr__(self):
        return "_Span(%r, owned=%r)" % (self._n, self._owned)

    # What the open span holds, under the SDK's ReadableSpan names, so an app (or a test) can see
    # the span limits at work (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, ...): they apply as attributes,
    # events and links are added. Empty once the span has ended (it is then on its way out).
    def _snapshot(self):
        try:
            return self._n.snapshot() or _EMPTY
        except Exception:  # noqa: BLE001
            return _EMPTY

    @property
    def attributes(self):
        return self._snapshot()[0]

    @property
    def events(self):
        return tuple(_Event(name, attrs) for name, attrs in self._snapshot()[1])

    @property
    def links(self):
        return tuple(_Link(trace_id, span_id, attrs) for trace_id, span_id, attrs in self._snapshot()[2])

    @property
    def dropped_attributes(self):
        return self._snapshot()[3][0]

    @property
    def dropped_events(self):
        return self._snapshot()[3][1]

    @property
    def dropped_links(self):
        return self._snapshot()[3][2]


_EMPTY = ({}, [], [], (0, 0, 0))


class _Event:
    __slots__ = ("name", "attributes")

    def __init__(self, name, attributes):
        self.name = name
        self.attributes = attributes


class _Link:
    """``trace_id``/``span_id`` as hex text."""

    __slots__ = ("trace_id", "span_id", "attributes")

    def __init__(self, trace_id, span_id, attributes):
        self.trace_id = trace_id
        self.span_id = span_id
        self.attributes = attributes


def _parent(span):
    """A foreign (non-ferrotel) span as a native parent tuple, or None when it has no valid context."""
    try:
        sc = span.get_span_context()
        if sc is None or not sc.is_valid:
            return None
        state = sc.trace_state.to_header() if sc.trace_state else None
        return ("%032x" % sc.trace_id, "%016x" % sc.span_id, int(sc.trace_flags), state or None, bool(sc.is_remote))
    except Exception:  # noqa: BLE001
        return None


def _links(links):
    out = []
    for link in links:
        try:
            parent = _parent(NonRecordingSpan(link.context))
            if parent is not None:
                out.append((parent, link.attributes))
        except Exception:  # noqa: BLE001
            continue
    return out


class _Tracer(_trace.Tracer):
    """A tracer for one instrumentation scope. Once the app sets its own provider, the tracer
    hands its work to that provider's tracer (as the API's own proxy tracers do)."""

    def __init__(self, name, version):
        self._name = name if isinstance(name, str) and name else "unknown"
        self._version = version if isinstance(version, str) else None
        self._delegate = None

    def _app_tracer(self, provider):
        delegate = self._delegate
        if delegate is None or delegate[0] is not provider:
            delegate = self._delegate = (provider, provider.get_tracer(self._name, self._version))
        return delegate[1]

    def start_span(
        self,
        name,
        context=None,
        kind=_INTERNAL,
        attributes=None,
        links=None,
        start_time=None,
        record_exception=True,
        set_status_on_exception=True,
    ):
        provider = _trace._TRACER_PROVIDER
        if provider is not None:
            return self._app_tracer(provider).start_span(
                name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
            )
        current = _trace.get_current_span(context)
        if type(current) is _Span:
            parent, root = current._n, False
        else:
            parent = _parent(current)
            root = parent is None
        try:
            native = _start_span(
                name,
                kind.value if kind is not None else 0,
                self._name,
                self._version,
                parent,
                root,
                attributes,
                _links(links) if links else None,
                start_time,
            )
        except Exception as exc:  # noqa: BLE001 - the app's call never fails because of the agent
            _warn("could not start the span %r (%s: %s); it is not traced" % (name, type(exc).__name__, exc))
            return _INVALID
        return _Span(native, True, record_exception, set_status_on_exception)

    def start_as_current_span(
        self,
        name,
        context=None,
        kind=_INTERNAL,
        attributes=None,
        links=None,
        start_time=None,
        record_exception=True,
        set_status_on_exception=True,
        end_on_exit=True,
    ):
        provider = _trace._TRACER_PROVIDER
        if provider is not None:
            return self._app_tracer(provider).start_as_current_span(
                name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception, end_on_exit
            )
        return _AsCurrent(self, (name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception), end_on_exit)


class _AsCurrent:
    """What ``start_as_current_span`` returns: a context manager that starts the span and makes it
    current (``use_span``'s rules: an escaping ``Exception`` is recorded and sets ERROR, the span
    ends on exit), and, like the API's, a decorator for functions and coroutine functions. A
    class rather than two generator-based context managers: about half the cost per span."""

    __slots__ = ("_tracer", "_args", "_end", "_span", "_token")

    def __init__(self, tracer, args, end_on_exit):
        self._tracer = tracer
        self._args = args
        self._end = end_on_exit
        self._span = None
        self._token = None

    def __enter__(self):
        span = self._span = self._tracer.start_span(*self._args)
        self._token = _attach(_set_value(_SPAN_KEY, span))
        return span

    def __exit__(self, exc_type, exc, tb):
        span, token = self._span, self._token
        self._span = self._token = None
        try:
            _detach(token)
        finally:
            try:
                if isinstance(exc, Exception) and span.is_recording():
                    if self._args[6]:
                        span.record_exception(exc)
                    if self._args[7]:
                        span.set_status(Status(_ERROR, "%s: %s" % (type(exc).__name__, exc)))
            finally:
                if self._end:
                    span.end()
        return False

    def __call__(self, func):
        make = self._again
        if _iscoroutinefunction(func):

            @_wraps(func)
            async def traced_async(*args, **kwargs):
                with make():
                    return await func(*args, **kwargs)

            return traced_async

        @_wraps(func)
        def traced(*args, **kwargs):
            with make():
                return func(*args, **kwargs)

        return traced

    def _again(self):
        return _AsCurrent(self._tracer, self._args, self._end)


class TracerProvider(_trace.TracerProvider):
    """ferrotel's tracer provider (one per process): tracers are cached per (name, version)."""

    def __init__(self):
        self._tracers = {}

    def get_tracer(self, instrumenting_module_name, instrumenting_library_version=None, schema_url=None, attributes=None, *args, **kwargs):
        key = (instrumenting_module_name, instrumenting_library_version)
        tracer = self._tracers.get(key)
        if tracer is None:
            tracer = self._tracers[key] = _Tracer(instrumenting_module_name, instrumenting_library_version)
        return tracer


provider = TracerProvider()


def _proxy_get_tracer(instrumenting_module_name, instrumenting_library_version=None, schema_url=None, attributes=None, *args, **kwargs):
    """Replaces ``get_tracer`` on the API's global proxy provider instance."""
    app_provider = _trace._TRACER_PROVIDER
    if app_provider is not None:
        return app_provider.get_tracer(instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
    return provider.get_tracer(instrumenting_module_name, instrumenting_library_version)


# -- context -----------------------------------------------------------------------------------


class _Token:
    """What ``attach`` returns: the inner store's token and ferrotel's."""

    __slots__ = ("inner", "var", "sync")

    def __init__(self, inner, var, sync):
        self.inner = inner
        self.var = var
        self.sync = sync


# The last context built for a natively-set current span: (API context, native span, result).
_last = (None, None, None)
# A context whose span is not ferrotel's, attached last: (that context, its native stand-in).
_SYNC = None
_BAGGAGE = None  # (baggage key, W3C baggage propagator), loaded on first use


def _baggage():
    global _BAGGAGE
    if _BAGGAGE is None:
        from opentelemetry.baggage import _BAGGAGE_KEY
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        _BAGGAGE = (_BAGGAGE_KEY, W3CBaggagePropagator())
    return _BAGGAGE


def _stand_in(span, context):
    """A native handle carrying a foreign span's identity (an SDK span, an extracted remote
    parent), with the baggage of the context (or of ferrotel's current span)."""
    try:
        sc = span.get_span_context()
        if sc is None or not sc.is_valid:
            return None
        state = sc.trace_state.to_header() if sc.trace_state else None
        key, propagator = _baggage()
        if context.get(key):
            carrier = {}
            propagator.inject(carrier, context)
            baggage = carrier.get("baggage")
        else:
            current = _VAR.get(None)
            baggage = current.baggage if current is not None else None
        return _context_span(sc.trace_id, sc.span_id, int(sc.trace_flags), state or None, bool(sc.is_remote), baggage)
    except Exception:  # noqa: BLE001
        return None


class _BridgedRuntimeContext(_RuntimeContext):
    """The API's runtime context (whatever ``OTEL_PYTHON_CONTEXT`` chose), kept in step with
    ferrotel's current-span ContextVar."""

    def __init__(self, inner):
        self._inner = inner
        from contextvars import ContextVar

        global _SYNC
        _SYNC = ContextVar("ferrotel_otel_sync", default=None)

    def attach(self, context):
        try:
            span = context.get(_SPAN_KEY)
        except Exception:  # noqa: BLE001 - not a Context: the inner store decides what to do with it
            span = None
        sync = None
        if span is None:
            native = None
        elif type(span) is _Span:
            native = span._n
        else:
            native = _stand_in(span, context)
            if native is not None:
                sync = _SYNC.set((context, native))
        return _Token(self._inner.attach(context), _VAR.set(native), sync)

    def get_current(self):
        global _last
        ctx = self._inner.get_current()
        native = _VAR.get(None)
        if native is None:
            return ctx
        last = _last
        if last[0] is ctx and last[1] is native:
            return last[2]
        span = ctx.get(_SPAN_KEY)
        if type(span) is _Span:
            if span._n is native:
                return ctx
        elif span is not None:
            synced = _SYNC.get()
            if synced is not None and synced[0] is ctx and synced[1] is native:
                return ctx
        # ferrotel made `native` current after this context was attached (the request's server
        # span, a client span): it is the current span.
        values = dict(ctx)
        values[_SPAN_KEY] = _Span(native, owned=False)
        result = Context(values)
        if native.baggage:
            try:
                key, propagator = _baggage()
                if key not in ctx:
                    result = propagator.extract({"baggage": native.baggage}, context=result)
            except Exception:  # noqa: BLE001
                pass
        _last = (ctx, native, result)
        return result

    def detach(self, token):
        if type(token) is not _Token:
            return self._inner.detach(token)
        if token.sync is not None:
            try:
                _SYNC.reset(token.sync)
            except Exception:  # noqa: BLE001 - detached in another context: the API says so below
                pass
        try:
            _VAR.reset(token.var)
        except Exception:  # noqa: BLE001
            pass
        return self._inner.detach(token.inner)


# -- installation ------------------------------------------------------------------------------

_noticed = False


def _fast_get_value(api, bridged, original):
    """``opentelemetry.context.get_value`` for keys the bridge never changes, read from the API's
    own context without building the bridged one.

    FastAPI asks for its request-telemetry key three times per request (``get_telemetry_data``),
    telemetry on or off. While ferrotel's server span is current, ``get_current()`` answers with
    a context that also holds that span (a dict copy, a span object and a ``Context`` the first
    time in a request); every key but the span's and baggage's has the same value in the API's own
    context, so those are read there (about 4k instructions per FastAPI request, measured by
    bench/profile_asgi.py). Callers that imported ``get_value`` by name keep the original."""
    inner = bridged._inner
    var = getattr(inner, "_current_context", None)  # ContextVarsRuntimeContext's ContextVar
    from contextvars import ContextVar

    if type(var) is not ContextVar or type(inner).get_current is not _CONTEXTVARS_GET_CURRENT:
        return original  # another runtime context (OTEL_PYTHON_CONTEXT): leave the API as it is

    def get_value(key, context=None):
        if context is not None:
            return context.get(key)
        if api._RUNTIME_CONTEXT is bridged and type(key) is str and key != _SPAN_KEY and not key.startswith("baggage-"):
            return var.get().get(key)
        return api.get_current().get(key)

    get_value.__wrapped__ = original
    get_value.__doc__ = original.__doc__
    return get_value


def _notice_app_provider():
    global _noticed
    provider_ = _trace._TRACER_PROVIDER
    if _noticed or provider_ is None:
        return
    _noticed = True
    _warn(
        "the application set its own OpenTelemetry tracer provider (%s.%s); spans made through the "
        "OpenTelemetry API go to it, ferrotel's own spans are unaffected"
        % (type(provider_).__module__, type(provider_).__qualname__)
    )


def instrument(trace):
    """Install the bridge into the freshly imported ``opentelemetry.trace`` (once)."""
    global _VAR
    if getattr(trace, "_ferrotel_bridge", False):
        return
    var = _native.otel_current_var()
    if var is None:  # the agent is not running
        return
    missing = [
        name
        for module, name in (
            (_context_api, "_RUNTIME_CONTEXT"),
            (trace, "_PROXY_TRACER_PROVIDER"),
            (trace, "_TRACER_PROVIDER"),
            (trace, "_set_tracer_provider"),
        )
        if not hasattr(module, name)
    ]
    if missing:
        _warn(
            "this opentelemetry-api has no %s; spans made through the OpenTelemetry API are not traced by ferrotel"
            % ", ".join(missing)
        )
        return
    _VAR = var
    bridged = _context_api._RUNTIME_CONTEXT = _BridgedRuntimeContext(_context_api._RUNTIME_CONTEXT)
    _context_api.get_value = _fast_get_value(_context_api, bridged, _context_api.get_value)
    trace._PROXY_TRACER_PROVIDER.get_tracer = _proxy_get_tracer
    original_set = trace._set_tracer_provider

    def _set_tracer_provider(tracer_provider, log):
        original_set(tracer_provider, log)
        _notice_app_provider()

    _set_tracer_provider.__wrapped__ = original_set
    trace._set_tracer_provider = _set_tracer_provider
    trace._ferrotel_bridge = True
    _notice_app_provider()  # set before the bridge came (e.g. by a .pth file)
