"""Start-up: check the interpreter, start the native engine, install the lazy import hooks."""

import atexit
import sys

_started = None


def _free_threaded():
    """True on a free-threaded CPython build (Py_GIL_DISABLED), whether or not its GIL is back on.

    The build's own flag, not sys._is_gil_enabled(): with PYTHON_GIL=1 a free-threaded build runs
    with a GIL but keeps its free-threaded extension ABI, on which the abi3 module cannot load.
    Free-threaded builds exist from 3.13 on; there the flag comes from the builtin _sysconfig (no
    sysconfig data module imported at start-up), else from sysconfig.
    """
    if sys.version_info < (3, 13):
        return False
    try:
        import _sysconfig

        return bool(_sysconfig.config_vars().get("Py_GIL_DISABLED"))
    except Exception:
        import sysconfig

        return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _supported():
    if sys.version_info < (3, 9):
        return "Python %d.%d is not supported (3.9+ needed)" % sys.version_info[:2]
    if _free_threaded():
        return (
            "free-threaded CPython %d.%d (a Py_GIL_DISABLED build) is not supported: "
            "its abi3 extension module cannot load there" % sys.version_info[:2]
        )
    if sys.implementation.name != "cpython":
        return "%s is not supported (CPython only)" % sys.implementation.name
    return None


def start():
    global _started
    if _started is not None:
        return _started
    _started = False
    reason = _supported()
    if reason:
        sys.stderr.write("ferrotel: %s; the application runs without instrumentation\n" % reason)
        return False
    from ferrotel import _native

    version = "%d.%d.%d" % sys.version_info[:3]
    if not _native.start("cpython", version, sys.version, sys.executable or ""):
        return False  # OTEL_SDK_DISABLED=true
    from ferrotel import _importhook

    _importhook.install()
    atexit.register(_native.shutdown)
    _flush_on_os_exit(_native.shutdown)
    _flush_on_default_sigterm(_native.shutdown)
    _started = True
    return True


def _flush_on_os_exit(shutdown):
    """`os._exit` skips atexit (multiprocessing's forked children leave through it): flush first.
    The native shutdown waits at most the export timeout and returns at once when the process
    has no spans."""
    import os

    real_exit = os._exit

    def _exit(status):
        try:
            shutdown()
        except BaseException:
            pass
        real_exit(status)

    _exit.__wrapped__ = real_exit
    _exit.__doc__ = real_exit.__doc__
    os._exit = _exit



def _flush_on_default_sigterm(shutdown):
    """A process killed by SIGTERM's default action runs no atexit (servers such as waitress
    install no handler). Only where SIGTERM still has its default action: flush, then die of
    SIGTERM as before. A handler the app or its server installs later simply replaces this one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _on_sigterm(signum, frame):
        try:
            shutdown()
        finally:
            import os

            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, _on_sigterm)
