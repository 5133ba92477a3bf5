"""``ferrotel-run``: run a command with the ferrotel agent, like ``opentelemetry-instrument``.

    ferrotel-run gunicorn app:app
    ferrotel-run python manage.py runserver

It puts the agent tree on ``PYTHONPATH`` the way the OpenTelemetry Operator does -- the bootstrap
directory first, the user's own entries kept in order, the tree's root last -- and replaces itself
with the command (``exec``): signals, exit status and the process id are the command's own. Every
Python process the command starts (gunicorn's workers, a ``manage.py`` child) loads the agent from
the bootstrap ``sitecustomize``; configuration is the usual ``OTEL_*`` / ``FERROTEL_*`` environment.

The shipped tree carries the same launcher as ``bin/ferrotel-run``, a POSIX sh script (no Python
needed to start it); this module is the console script of a pip installation.
"""

import os
import shutil
import sys

BOOTSTRAP_SUBDIR = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")
_MARKER = "# ferrotel bootstrap."  # first line of our sitecustomize.py

USAGE = """usage: ferrotel-run [--] COMMAND [ARG...]

Run COMMAND with the ferrotel agent on PYTHONPATH (yours is kept), e.g.
    ferrotel-run gunicorn app:app
Configure it with OTEL_* / FERROTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...).
"""


def agent_root():
    """The directory that holds the ``ferrotel`` package (the tree's root or site-packages)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bootstrap_dir(root=None):
    """The directory of our ``sitecustomize.py`` under `root`, or None.

    A pip installation into a site-packages shared with the pure-Python OpenTelemetry agent has
    that agent's package at the same path: only a directory holding *our* bootstrap counts.
    """
    root = root or agent_root()
    path = os.path.join(root, BOOTSTRAP_SUBDIR)
    try:
        with open(os.path.join(path, "sitecustomize.py")) as f:
            first = f.readline()
    except OSError:
        return None
    if not first.startswith(_MARKER) or os.path.exists(os.path.join(path, "__init__.py")):
        return None
    return path


def pythonpath(existing, site, root):
    """``site:<existing, without our own entries>:root``: idempotent when launchers nest."""
    ours = {os.path.realpath(site), os.path.realpath(root)}
    kept = [p for p in (existing or "").split(os.pathsep) if p and os.path.realpath(p) not in ours]
    return os.pathsep.join([site] + kept + [root])


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    elif args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    elif args and args[0] == "--version":
        from ferrotel import __version__

        sys.stdout.write("ferrotel-run %s\n" % __version__)
        return 0
    if not args:
        sys.stderr.write(USAGE)
        return 2
    root = agent_root()
    site = bootstrap_dir(root)
    if site is None:
        sys.stderr.write(
            "ferrotel-run: no ferrotel bootstrap at %s; use the agent tree's bin/ferrotel-run "
            "(or the image's /autoinstrumentation)\n" % os.path.join(root, BOOTSTRAP_SUBDIR)
        )
        return 1
    os.environ["PYTHONPATH"] = pythonpath(os.environ.get("PYTHONPATH"), site, root)
    command = args[0]
    executable = command if os.sep in command else shutil.which(command)
    if executable is None:
        sys.stderr.write("ferrotel-run: %s: command not found\n" % command)
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(executable, args)
    except OSError as exc:
        sys.stderr.write("ferrotel-run: %s: %s\n" % (command, exc.strerror or exc))
        return 126
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
