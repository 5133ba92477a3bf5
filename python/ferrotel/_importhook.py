"""Lazy hooks: patch a library right after the application imports it, never import it ourselves.

A finder at the front of ``sys.meta_path`` answers only for the module names in ``HOOKS``: it asks
the other finders for the real spec, and wraps the loader so the hook runs once the module has
executed. A module already imported when the agent starts is hooked at once.
"""

import importlib.abc
import sys


def _flask(module):
    from ferrotel.hooks import flask

    flask.instrument(module)


# module name -> function called with the freshly imported module.
HOOKS = {"flask": _flask}


def _run(name, module):
    try:
        HOOKS[name](module)
    except Exception as exc:  # a hook failure costs telemetry, never the import
        sys.stderr.write("ferrotel: could not instrument %s (%s: %s)\n" % (name, type(exc).__name__, exc))


class _HookingLoader(importlib.abc.Loader):
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


class _Finder(importlib.abc.MetaPathFinder):
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


def install():
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    for name in HOOKS:
        module = sys.modules.get(name)
        if module is not None:
            _run(name, module)
