"""The excluded-URL rule every HTTP hook shares, as upstream has it (``opentelemetry-util-http``'s
``ExcludeList``): the comma-separated regular expressions of ``OTEL_PYTHON_<NAME>_EXCLUDED_URLS``
(else ``OTEL_PYTHON_EXCLUDED_URLS``) joined into one, *searched* anywhere in the full URL
(``scheme://host[:port]/path?query``), case-sensitively. A match: no span, no headers."""

import sys


def excluder(patterns, name):
    """The ``search`` of one regex joining `patterns`, or None (nothing excluded)."""
    if not patterns:
        return None
    import re

    try:
        return re.compile("|".join(patterns)).search
    except re.error as exc:
        sys.stderr.write("ferrotel: excluded URLs for %s are not a valid regex (%s); nothing excluded\n" % (name, exc))
        return None


def excluded_for(name):
    """The excluded-URL rule of the instrumentation upstream calls `name` (None: none)."""
    from ferrotel import _native

    return excluder(_native.instrumentation(name)[1], name)
