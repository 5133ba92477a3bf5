"""The standard library's HTTP client: ``http.client`` and everything built on it (``urllib.request``,
``xmlrpc.client``, ...). Upstream's name for it: ``urllib``.

Two methods of ``HTTPConnection`` get a wrapper with their own signature (each keeps the original
as ``__wrapped__``); the work is native, in ``METH_FASTCALL`` functions of
``_native.HttpClientHook``: ``endheaders`` starts the CLIENT span from the request line
``putrequest`` wrote (kept on the connection as ``_ferrotel_span``) and writes the propagation
headers into the request (the connection may be refused there), ``getresponse`` records the
status and ends the span. An exception from either ends the span as failed and is re-raised
unchanged. Python wrappers here, because the interpreter (3.11+) calls them, and the original from
them, without entering its eval loop again, which a native hook calling a Python method cannot
avoid; where the methods' signatures are not the ones mirrored, native hooks
(``HttpClientHook.wrap``) take their place.

urllib3's connections subclass ``HTTPConnection``; its hook sets ``_ferrotel_span = False`` on their
class, so they pass straight through here: urllib3 (and requests) are traced one layer up. The
``endheaders`` wrapper still writes the headers of urllib3's span, handed over in
``_ferrotel_out``."""

from ferrotel import _native
from ferrotel.hooks._urls import excluder  # noqa: F401 (the client hooks import it from here)


def parameters(function):
    """A plain function's parameters as ``(names, positional count, *args/**kwargs flags, defaults,
    keyword-only defaults)``, or None: what a wrapper with the same signature has to match."""
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    count = code.co_argcount + code.co_kwonlyargcount
    return code.co_varnames[:count], code.co_argcount, code.co_flags & 0x0C, function.__defaults__, function.__kwdefaults__


#: The signatures of the methods the wrappers below are written for (CPython 3.9 to 3.13).
ENDHEADERS = (("self", "message_body", "encode_chunked"), 2, 0, (None,), {"encode_chunked": False})
GETRESPONSE = (("self",), 1, 0, None, None)


def instrument(http_client):
    cls = http_client.HTTPConnection
    if "_ferrotel_span" in cls.__dict__:
        return
    enabled, excluded = _native.instrumentation("urllib")
    cls._ferrotel_span = None  # no request in flight; False on a subclass: traced elsewhere
    if not enabled:
        return
    hook = _native.HttpClientHook("ferrotel.urllib", excluder(excluded, "urllib"), getattr(http_client, "HTTPSConnection", None))
    original_endheaders, original_getresponse = cls.endheaders, cls.getresponse
    if parameters(original_endheaders) != ENDHEADERS or parameters(original_getresponse) != GETRESPONSE:
        # Not the methods these wrappers mirror (another Python, or wrapped by someone else):
        # native hooks, which pass any arguments through.
        for name in ("endheaders", "getresponse"):
            setattr(cls, name, hook.wrap(name, getattr(cls, name)))
        return
    send_headers, finished, failed = hook.functions()

    def endheaders(self, message_body=None, *, encode_chunked=False):
        span = send_headers(self)
        if span is None:
            return original_endheaders(self, message_body, encode_chunked=encode_chunked)
        try:
            return original_endheaders(self, message_body, encode_chunked=encode_chunked)
        except BaseException as exc:
            failed(self, span, exc)
            raise

    def getresponse(self):
        span = self._ferrotel_span
        if not span:
            return original_getresponse(self)
        try:
            response = original_getresponse(self)
        except BaseException as exc:
            failed(self, span, exc)
            raise
        finished(self, span, response)
        return response

    endheaders._ferrotel_writes_headers = True  # urllib3's hook hands its spans' headers to it
    for wrapper, original in ((endheaders, original_endheaders), (getresponse, original_getresponse)):
        wrapper.__doc__ = original.__doc__
        wrapper.__wrapped__ = original
        wrapper.__qualname__ = original.__qualname__
        setattr(cls, original.__name__, wrapper)
