"""The standard library's HTTP client: ``http.client`` and everything built on it (``urllib.request``,
``xmlrpc.client``, ...). Upstream's name for it: ``urllib``.

Three methods of ``HTTPConnection`` are replaced by native hooks (``_native.HttpClientHook.wrap``:
no Python frame of the agent's on a call; each keeps the original as ``__wrapped__``):
``putrequest`` starts the CLIENT span (kept on the connection as ``_ferrotel_span``), ``endheaders``
writes the propagation headers into the request (the connection may be refused there),
``getresponse`` records the status and ends the span. An exception from either ends the span as
failed and is re-raised unchanged.

urllib3's connections subclass ``HTTPConnection``; its hook sets ``_ferrotel_span = False`` on their
class, so they pass straight through here: urllib3 (and requests) are traced one layer up. The
``endheaders`` hook still writes the headers of urllib3's span, handed over in ``_ferrotel_out``.
"""

import sys

from ferrotel import _native


def excluder(patterns, name):
    """The ``search`` of one regex joining `patterns` (upstream's excluded-URL rule), or None."""
    if not patterns:
        return None
    import re

    try:
        return re.compile("|".join(patterns)).search
    except re.error as exc:
        sys.stderr.write("ferrotel: excluded URLs for %s are not a valid regex (%s); nothing excluded\n" % (name, exc))
        return None


def instrument(http_client):
    cls = http_client.HTTPConnection
    if "_ferrotel_span" in cls.__dict__:
        return
    enabled, excluded = _native.instrumentation("urllib")
    cls._ferrotel_span = None  # no request in flight; False on a subclass: traced elsewhere
    if not enabled:
        return
    hook = _native.HttpClientHook("ferrotel.urllib", excluder(excluded, "urllib"), getattr(http_client, "HTTPSConnection", None))
    for name in ("putrequest", "endheaders", "getresponse"):
        setattr(cls, name, hook.wrap(name, getattr(cls, name)))
