# ferrotel bootstrap. Shipped as opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py
# of the agent tree, the place the OpenTelemetry Operator puts first on PYTHONPATH (the
# OpenTelemetry injector's <prefix>/glibc and <prefix>/musl may be symlinks to that directory), and
# as ferrotel/_boot/sitecustomize.py of the wheel, the directory a pip installation's `ferrotel-run`
# puts first on PYTHONPATH (never on sys.path by installation alone: nothing starts by itself).
# It starts the agent from the tree's root and then runs the application's own sitecustomize, if
# any (there is only one per interpreter). It must never break the interpreter, and it starts no
# thread and opens no socket here: it runs in gunicorn's and uwsgi's master before the fork. (One
# opt-in exception, in the native start: with OTEL_METRICS_EXPORTER=prometheus, the thread that
# serves /metrics from start-up; it only waits in accept(), and forked children close its socket.)
#
# It stands down -- loads nothing of ours, removes our directories from sys.path and PYTHONPATH
# (so child processes are not injected again; likewise it turns off the OpenTelemetry injector's and
# our LD_PRELOAD library's Python injection for them) and says so in one stderr line -- when:
#   - the interpreter is unsupported (older than 3.9 here; the rest is checked in ferrotel._bootstrap),
#   - another agent already instruments the process, or is the sitecustomize we would chain to:
#     the pure-Python OpenTelemetry auto-instrumentation or ddtrace,
#   - the agent cannot be loaded or started.
# OTEL_SDK_DISABLED=true loads nothing either (children inherit the variable, so no clean-up).
# Kept to syntax every Python can parse, so old interpreters get a message, not a SyntaxError.
import os
import sys

_UPSTREAM = "the OpenTelemetry Python auto-instrumentation"
_DDTRACE = "ddtrace"


def _real(path):
    try:
        return os.path.realpath(path or ".")
    except Exception:
        return path


def _ours():
    """This directory as Python sees it, the root that holds the ferrotel package, and the
    directories of ours: (here, root, {paths})."""
    here = os.path.dirname(os.path.abspath(__file__))
    real_here = _real(here)
    if os.path.basename(here) == "_boot" and os.path.basename(os.path.dirname(here)) == "ferrotel":
        # The copy inside the package (ferrotel/_boot/, a pip installation; the pip `ferrotel-run`
        # put it first on PYTHONPATH). The root is then the site directory that holds the package:
        # already on sys.path, and not ours to remove.
        return here, os.path.dirname(os.path.dirname(here)), set([here, real_here])
    root = os.path.dirname(os.path.dirname(os.path.dirname(real_here)))
    return here, root, set([here, real_here, root])


def _ddtrace_enabled():
    # ddtrace's own reading of DD_TRACE_ENABLED: true unless set to something else than true/1.
    return os.environ.get("DD_TRACE_ENABLED", "true").strip().lower() in ("true", "1")


def _next_sitecustomize(ours):
    """Spec of the sitecustomize that would have run without us: the first one on sys.path that is not ours."""
    try:
        import importlib.machinery
    except ImportError:
        return None
    rest = [p for p in sys.path if _real(p) not in ours]
    try:
        return importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    except Exception:
        return None


def _other_agent(next_spec):
    """Name of another agent that instruments this process (or is about to, as the next sitecustomize)."""
    modules = sys.modules
    # Already running: imported before us (a .pth file, or its sitecustomize chained to ours). Our own
    # tree has opentelemetry/instrumentation/auto_instrumentation/ only as a namespace portion without
    # __init__.py (so it never shadows the app's opentelemetry packages): the real package has a __file__.
    upstream = modules.get("opentelemetry.instrumentation.auto_instrumentation")
    if upstream is not None and getattr(upstream, "__file__", None):
        return _UPSTREAM
    if _ddtrace_enabled():
        for name in ("ddtrace.bootstrap.preload", "ddtrace.bootstrap.sitecustomize", "ddtrace.auto"):
            if name in modules:
                return _DDTRACE
    # About to run: the sitecustomize we would chain to belongs to another agent
    # (opentelemetry-instrument and ddtrace-run put their bootstrap directory on PYTHONPATH).
    origin = getattr(next_spec, "origin", None)
    if origin:
        directory = _real(os.path.dirname(origin))
        tail = directory.replace(os.sep, "/")
        if tail.endswith("/opentelemetry/instrumentation/auto_instrumentation") and os.path.isfile(
            os.path.join(directory, "__init__.py")
        ):
            return _UPSTREAM
        if _ddtrace_enabled() and (
            tail.endswith("/ddtrace/bootstrap") or os.path.isdir(os.path.join(directory, "ddtrace_pkgs"))
        ):
            return _DDTRACE  # ddtrace-run, or Datadog's library-injection directory
    return None


def _stand_down(ours):
    """Leave sys.path and PYTHONPATH as if the agent had never been there, so that child
    processes are not injected again (nor by the OpenTelemetry injector, which reads
    PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX in every new process)."""
    sys.path[:] = [p for p in sys.path if _real(p) not in ours]
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and _real(p) not in ours]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
    prefix = os.environ.get("PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX")
    if prefix and [f for f in ("glibc", "musl") if _real(os.path.join(prefix, f)) in ours]:
        os.environ["PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX"] = ""  # the injector's "disabled"
    if _preloaded():
        os.environ["FERROTEL_PRELOAD_DISABLED"] = "true"  # our LD_PRELOAD library would add us back


def _preloaded():
    """Whether our LD_PRELOAD library (LD_PRELOAD or /etc/ld.so.preload) is in this process."""
    if "libferrotel_preload" in os.environ.get("LD_PRELOAD", ""):
        return True
    try:
        with open("/proc/self/maps") as maps:
            return "libferrotel_preload" in maps.read()
    except Exception:
        return False


def _boot(root, ours):
    if root not in sys.path:
        sys.path.append(root)
        ours = ours | set([root, _real(root)])  # appended by us: removed again if we stand down
    try:
        import ferrotel._bootstrap as bootstrap
    except Exception as exc:
        sys.stderr.write("ferrotel: could not load the agent (%s: %s); running without it\n" % (type(exc).__name__, exc))
        _stand_down(ours)
        return
    try:
        started = bootstrap.start()
    except Exception as exc:
        sys.stderr.write("ferrotel: could not start the agent (%s: %s); running without it\n" % (type(exc).__name__, exc))
        _stand_down(ours)
        return
    if not started:  # unsupported interpreter (ferrotel._bootstrap said so in one line) or disabled
        _stand_down(ours)


def _chain(spec):
    """Run the application's own sitecustomize (found before we touched sys.path)."""
    if spec is None or spec.loader is None:
        return
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _ferrotel_main():
    here, root, ours = _ours()
    if sys.version_info < (3, 9):
        sys.stderr.write(
            "ferrotel: Python %d.%d is not supported (3.9+ needed); running without instrumentation\n" % sys.version_info[:2]
        )
        _stand_down(ours)
        return _next_sitecustomize(ours)
    next_spec = _next_sitecustomize(ours)
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return next_spec  # load nothing of ours
    other = _other_agent(next_spec)
    if other:
        sys.stderr.write("ferrotel: %s already instruments this process; ferrotel stands down\n" % other)
        _stand_down(ours)
        return next_spec
    _boot(root, ours)
    return next_spec


_chain(_ferrotel_main())
