"""ferrotel: OpenTelemetry auto-instrumentation for Python with a native (Rust) engine.

Importing this package does nothing by itself: no framework is imported, nothing is started.
``ferrotel.start()`` (called by the injected ``sitecustomize``) starts the agent.
"""

__all__ = ["start", "__version__"]

from ferrotel._bootstrap import _free_threaded

if _free_threaded():
    # The abi3 native module cannot load on a free-threaded build: the package still imports, and
    # start() stands down with one line saying why (the host app never breaks).
    __version__ = None
else:
    from ferrotel._native import __version__


def start():
    """Start the agent in this process (idempotent). Returns True when tracing is on."""
    from ferrotel._bootstrap import start as _start

    return _start()
