"""The standard library's HTTP client: ``http.client`` and everything built on it (``urllib.request``,
``xmlrpc.client``, ...). Upstream's name for it: ``urllib``.

Three methods of ``HTTPConnection`` get a wrapper of a few lines; the work is native
(``_native.HttpClientHook``): ``putrequest`` starts the CLIENT span (kept on the connection as
``_ferrotel_span``), ``endheaders`` writes the propagation headers into the request (the connection
may be refused there), ``getresponse`` records the status and ends the span. An exception from
either ends the span as failed and is re-raised unchanged.

urllib3's connections subclass ``HTTPConnection``; its hook sets ``_ferrotel_span = False`` on their
class, so they pass straight through here: urllib3 (and requests) are traced one layer up.
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
    start, inject, fail, finish = hook.start, hook.inject, hook.fail, hook.finish
    original_putrequest, original_endheaders, original_getresponse = cls.putrequest, cls.endheaders, cls.getresponse

    def putrequest(self, method, url, *args, **kwargs):
        result = original_putrequest(self, method, url, *args, **kwargs)
        if self._ferrotel_span is not False:
            start(self, method, url)
        return result

    def endheaders(self, *args, **kwargs):
        if not self._ferrotel_span:
            return original_endheaders(self, *args, **kwargs)
        inject(self)
        try:
            return original_endheaders(self, *args, **kwargs)
        except BaseException as exc:
            fail(self, exc)
            raise

    def getresponse(self):
        if not self._ferrotel_span:
            return original_getresponse(self)
        try:
            response = original_getresponse(self)
        except BaseException as exc:
            fail(self, exc)
            raise
        finish(self, response)
        return response

    for wrapper, original in ((putrequest, original_putrequest), (endheaders, original_endheaders), (getresponse, original_getresponse)):
        wrapper.__doc__ = original.__doc__
        wrapper.__wrapped__ = original
        setattr(cls, original.__name__, wrapper)
