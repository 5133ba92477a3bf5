"""The active span follows work handed to new greenlets (gevent; no upstream instrumentation has
this name: the pure-Python agent has no gevent instrumentation).

Nothing is needed for a greenlet's own work: greenlet (0.4.17 on, which gevent requires from 20.9
on) gives every greenlet its own ``contextvars`` context and switches it with the greenlet, so the span a WSGI server's request
greenlet makes current (``gunicorn -k gevent``, ``gevent.pywsgi``) is that greenlet's alone, and
the calls and queries it makes are its children, however the greenlets interleave.

A greenlet starts with an *empty* context, though, so work a request hands to a greenlet it
spawns would start traces of its own. Where gevent hands work over, the span current in the
spawner is made current in the new greenlet (only that span, as the threading hook does; the
rest of the spawner's context stays where it was, and a greenlet whose ``gr_context`` the
application set itself is left alone):

- ``gevent.spawn`` and ``gevent.spawn_later`` (the module's functions, bound when gevent is
  imported: ``from gevent import spawn`` afterwards gets the hooked one);
- ``gevent.pool.Group.start`` and ``gevent.pool.Pool.start``, where ``spawn``, ``apply_async``,
  ``map`` and the servers' pools start their greenlets.

gevent's ``Greenlet`` is a compiled class whose methods cannot be replaced, so
``Greenlet(fn).start()``, ``Greenlet.spawn`` called on the class and ``gevent.spawn_raw`` are not
covered (their greenlets start with no span). Threads the application starts under
``monkey.patch_all()`` are greenlets behind ``threading.Thread``: the threading hook covers them.
"""

from contextvars import Context

from ferrotel import _native

_current = _native.current_span
_enter = _native.set_current


def _carry(greenlet, span):
    """Make `span` current in the not yet running `greenlet` (fails open)."""
    try:
        if greenlet.gr_context is None:
            context = Context()
            context.run(_enter, span)
            greenlet.gr_context = context
    except Exception:  # greenlet < 1.0 (gr_context read-only), or already running: leave it
        pass


def _spawning(original):
    def spawn(*args, **kwargs):
        greenlet = original(*args, **kwargs)
        span = _current()
        if span is not None:
            _carry(greenlet, span)
        return greenlet

    spawn.__doc__ = original.__doc__
    spawn.__name__ = getattr(original, "__name__", "spawn")
    spawn.__wrapped__ = original
    spawn._ferrotel = True
    return spawn


def _starting(original):
    def start(self, greenlet, *args, **kwargs):
        span = _current()
        if span is not None:
            _carry(greenlet, span)
        return original(self, greenlet, *args, **kwargs)

    start.__doc__ = original.__doc__
    start.__name__ = "start"
    start.__wrapped__ = original
    start._ferrotel = True
    return start


def instrument(gevent):
    """``gevent``: its ``spawn`` and ``spawn_later``."""
    for name in ("spawn", "spawn_later"):
        original = getattr(gevent, name, None)
        if original is None or getattr(original, "_ferrotel", False):
            continue
        setattr(gevent, name, _spawning(original))


def instrument_pool(pool):
    """``gevent.pool``: ``Group.start`` and ``Pool.start`` (each class's own)."""
    for cls in (getattr(pool, "Group", None), getattr(pool, "Pool", None)):
        original = cls.__dict__.get("start") if cls is not None else None
        if original is None or getattr(original, "_ferrotel", False):
            continue
        cls.start = _starting(original)
