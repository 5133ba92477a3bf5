# ferrotel bootstrap. Shipped as opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py
# of the agent tree, the place the OpenTelemetry Operator puts first on PYTHONPATH. It starts the
# agent from the tree's root and then runs the application's own sitecustomize, if any. It must
# never break the interpreter: any failure prints one line and the application runs untouched.
# Kept to syntax every Python can parse, so old interpreters get a message, not a SyntaxError.
import os
import sys


def _ferrotel_boot():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return here, root  # load nothing of ours
    if root not in sys.path:
        sys.path.append(root)
    try:
        import ferrotel._bootstrap as bootstrap
    except Exception as exc:
        sys.stderr.write("ferrotel: could not load the agent (%s: %s); running without it\n" % (type(exc).__name__, exc))
        _stand_down([here, root])
        return here, root
    try:
        bootstrap.start()
    except Exception as exc:
        sys.stderr.write("ferrotel: could not start the agent (%s: %s); running without it\n" % (type(exc).__name__, exc))
        _stand_down([here, root])
    return here, root


def _stand_down(dirs):
    """Leave sys.path and PYTHONPATH as if the agent had never been there, so that child
    processes are not injected again."""
    norm = [os.path.abspath(d) for d in dirs]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") not in norm]
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) not in norm]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)


def _chain(here):
    """Run the application's own sitecustomize: the next one on sys.path after this directory."""
    try:
        import importlib.machinery
        import importlib.util
    except ImportError:
        return
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if sys.version_info < (3, 9):
    sys.stderr.write("ferrotel: Python %d.%d is not supported (3.9+ needed); running without instrumentation\n" % sys.version_info[:2])
    _here = os.path.dirname(os.path.abspath(__file__))
else:
    _here = _ferrotel_boot()[0]
_chain(_here)
del _here
