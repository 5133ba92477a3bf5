"""The DB-API 2.0 (PEP 249) layer every SQL driver configures in a few lines.

A driver module says which classes to hook and how to describe a connection; this module does
the rest, the same way for every driver:

- sync methods (``execute``, ``executemany``, ``callproc``) become native hooks
  (``_native.DbHook.wrap``): no Python frame, the caller's arguments passed on untouched, the
  driver's return value and exception returned as they were, ``__wrapped__`` kept;
- async methods get a coroutine function of a few lines around the native ``start``/``end``/
  ``fail``;
- classes the driver implements in C (``sqlite3``, ``psycopg2``) cannot be patched: the
  connection and cursor the application gets are instances of subclasses made here, with the
  same names, so ``isinstance`` checks and the driver's own C code keep working.

Each connection's fixed facts (``db.namespace``, ``server.address``/``port``) are described once,
by the driver's ``describe(connection)``, and kept on the connection as ``_ferrotel_db``.
"""

from ferrotel import _native

DbConnection = _native.DbConnection


def hook(
    name,
    system,
    describe=None,
    connection_attr="connection",
    query_keyword="query",
    cache_on_connection=True,
    cache_on_object=True,
    nested_executemany=False,
):
    """The native hook for one driver (`name` is the instrumentation's, e.g. ``psycopg``).

    `describe(connection)` gives the connection's ``DbConnection``; `connection_attr` is where a
    cursor keeps its connection (None: the hooked objects are connections); the ``cache_*`` flags
    say where the description may be kept (off for classes with ``__slots__``);
    `nested_executemany`: the driver's ``executemany`` calls its own ``execute``."""
    return _native.DbHook(
        "ferrotel." + name, system, describe, connection_attr, query_keyword, cache_on_connection, cache_on_object, nested_executemany
    )


def hooked(method):
    return isinstance(method, _native.MethodHook) or getattr(method, "_ferrotel", False)


def mark(*classes):
    """Class-level defaults, so looking the facts up on an instance never raises."""
    for cls in classes:
        try:
            if "_ferrotel_db" not in cls.__dict__:
                cls._ferrotel_db = None
            if "_ferrotel_batch" not in cls.__dict__:
                cls._ferrotel_batch = False
        except (TypeError, AttributeError):  # an immutable type: the lookups fall back
            pass


def patch(cls, db_hook, methods):
    """Replace sync methods of `cls` by native hooks; `methods` maps a method name to how its
    arguments read (``execute``, ``executemany``, ``callproc``, ``command``)."""
    mark(cls)
    for name, call in methods.items():
        original = getattr(cls, name, None)
        if original is None or hooked(original):
            continue
        setattr(cls, name, db_hook.wrap(name, original, call))


def _batch_size(seq):
    return len(seq) if isinstance(seq, (list, tuple)) else -1


def _comment(span):
    """sqlcommenter's comment for the statement's own span."""
    return " /*traceparent='00-%s-%s-%02x'*/" % (span.trace_id, span.span_id, span.trace_flags)


def keep(wrapper, original, name=None):
    """Give `wrapper` the original's name, doc and ``__wrapped__``, and mark it as ours."""
    wrapper.__name__ = getattr(original, "__name__", name or wrapper.__name__)
    wrapper.__qualname__ = getattr(original, "__qualname__", name or wrapper.__qualname__)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    wrapper.__wrapped__ = original
    wrapper._ferrotel = True
    return wrapper


def traced(original, begin, end, fail):
    """A sync wrapper around `original`: ``begin(*args, **kwargs)`` gives the span (or None: call
    straight through); the result or exception is the original's, unchanged."""

    def wrapper(*args, **kwargs):
        span = begin(*args, **kwargs)
        if span is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            fail(span, exc)
            raise
        end(span)
        return result

    return keep(wrapper, original)


def traced_async(original, begin, end, fail, rewrite=None):
    """The same for a coroutine function. `rewrite(span, args)` may give the arguments the
    original gets instead (sqlcommenter)."""

    async def wrapper(*args, **kwargs):
        span = begin(*args, **kwargs)
        if span is None:
            return await original(*args, **kwargs)
        if rewrite is not None:
            args = rewrite(span, args)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            fail(span, exc)
            raise
        end(span)
        return result

    return keep(wrapper, original)


def _commented(span, args):
    """FERROTEL_DB_SQLCOMMENTER=true: the statement the driver gets carries its span's context."""
    if len(args) > 1 and isinstance(args[1], str):
        return (args[0], args[1] + _comment(span)) + args[2:]
    return args


def patch_async(cls, db_hook, methods, functions=None):
    """The same for coroutine methods (``execute``/``executemany`` kinds only)."""
    mark(cls)
    start, _, end, fail = functions or db_hook.functions()
    rewrite = _commented if _native.database_settings()["sqlcommenter"] else None

    def one(self, query, *args, **kwargs):
        return start(self, query, -1)

    def batch(self, query, *args, **kwargs):
        return start(self, query, _batch_size(args[0]) if args else -1)

    for name, call in methods.items():
        original = cls.__dict__.get(name) or getattr(cls, name, None)
        if original is None or hooked(original):
            continue
        setattr(cls, name, traced_async(original, batch if call == "executemany" else one, end, fail, rewrite))


def subclass(base, namespace):
    """A subclass of the driver's C class `base` with its name, module and doc, plus `namespace`."""
    ns = {"__module__": base.__module__, "__qualname__": base.__qualname__, "__doc__": base.__doc__, "_ferrotel_db": None, "_ferrotel_batch": False}
    ns.update(namespace)
    return type(base.__name__, (base,), ns)


class TracedClasses:
    """Traced subclasses of a driver's C classes, made once per class (the application may bring
    its own connection or cursor factory: it gets a traced subclass of that)."""

    def __init__(self, make):
        self._make = make
        self._made = {}

    def __call__(self, cls):
        if getattr(cls, "_ferrotel_traced", False):
            return cls
        traced = self._made.get(cls)
        if traced is None:
            traced = self._made[cls] = self._make(cls)
            traced._ferrotel_traced = True
        return traced


def wrap_function(module, name, make):
    """Replace the function `module.name` by ``make(original)``, keeping ``__wrapped__``."""
    original = getattr(module, name, None)
    if original is None or getattr(original, "_ferrotel", False):
        return None
    wrapper = keep(make(original), original, name)
    setattr(module, name, wrapper)
    return wrapper


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def port(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
