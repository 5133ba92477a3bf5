"""Lazy hooks: patch a library right after the application imports it, never import it ourselves.

What is hooked, and by which function, is ``_registry.INSTRUMENTATIONS``. A finder at the front of
``sys.meta_path`` answers only for the registry's trigger modules: it asks the other finders for
the real spec, and wraps the loader so the hooks run once the module has executed. A module
already imported when the agent starts is hooked at once.

The one enable gate is here: a hook of an instrumentation named in
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (or of a library older than the instrumentation's
minimum version) is never called.

The finder and loader are plain classes: `importlib.abc` would pull in `importlib.resources`,
pathlib, tempfile, typing and more (about 20 ms and 4 MiB of start-up in a script that imports
none of them), and the import system needs only the methods.
"""

import sys

from ferrotel import _registry

# trigger module -> [(instrumentation, "hooks-module:function"), ...]
HOOKS = _registry.triggers()


def _version(text):
    parts = []
    for piece in str(text).split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _too_old(inst, name):
    """The library's version, when it is older than the instrumentation supports (else None)."""
    if inst.min_version is None:
        return None
    top = sys.modules.get(name.partition(".")[0])
    version = getattr(top, "__version__", None) or getattr(top, "VERSION", None)
    if not isinstance(version, str) or not _version(version):
        return None
    return version if _version(version) < _version(inst.min_version) else None


def _call(target, module):
    path, _, function = target.partition(":")
    hooks = __import__("ferrotel.hooks." + path, fromlist=[function])
    getattr(hooks, function)(module)


def _run(name, module):
    for inst, target in HOOKS[name]:
        try:
            if inst.gate:
                from ferrotel import _native

                if not _native.instrumentation(inst.name)[0]:  # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
                    continue
            old = _too_old(inst, name)
            if old is not None:
                sys.stderr.write(
                    "ferrotel: %s %s is older than %s, the oldest the %s instrumentation supports; not instrumented\n"
                    % (name, old, inst.min_version, inst.name)
                )
                continue
            _call(target, module)
        except Exception as exc:  # a hook failure costs telemetry, never the import
            sys.stderr.write("ferrotel: could not instrument %s (%s: %s)\n" % (name, type(exc).__name__, exc))


class _HookingLoader:
    def __init__(self, name, loader):
        self._name = name
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run(self._name, module)

    def __getattr__(self, attr):  # get_resource_reader, is_package, ... pass through
        return getattr(self._loader, attr)


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookingLoader(fullname, spec.loader)
                return spec
        return None


_finder = _Finder()


# True while hooks run for modules the app imported before the agent started (objects such as
# app instances may already exist then).
preexisting = False


def install():
    global preexisting
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    preexisting = True
    try:
        for name in HOOKS:
            module = sys.modules.get(name)
            if module is not None:
                _run(name, module)
    finally:
        preexisting = False
