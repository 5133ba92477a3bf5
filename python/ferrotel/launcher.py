"""``ferrotel-run``: run a command with the ferrotel agent, like ``opentelemetry-instrument``.

    ferrotel-run gunicorn app:app
    ferrotel-run python manage.py runserver

It puts the agent tree on ``PYTHONPATH`` the way the OpenTelemetry Operator does -- the bootstrap
directory first, the user's own entries kept in order, the tree's root last -- and replaces itself
with the command (``exec``): signals, exit status and the process id are the command's own. Every
Python process the command starts (gunicorn's workers, a ``manage.py`` child) loads the agent from
the bootstrap ``sitecustomize``; configuration is the usual ``OTEL_*`` / ``FERROTEL_*`` environment.

The shipped tree carries the same launcher as ``bin/ferrotel-run``, a POSIX sh script (no Python
needed to start it); this module is the console script of a pip installation, where the bootstrap
is the wheel's ``ferrotel/_boot/sitecustomize.py``. Installing the wheel starts nothing by itself:
only processes run under ``ferrotel-run`` (or with that directory on PYTHONPATH) are traced.
"""

import os
import shutil
import sys

BOOTSTRAP_SUBDIR = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")
# The wheel's own copy of the bootstrap: inside the package, so installing the wheel puts nothing
# on sys.path (no .pth file) and cannot clash with the pure-Python agent's package of that name.
PACKAGE_BOOTSTRAP_SUBDIR = os.path.join("ferrotel", "_boot")
_MARKER = "# ferrotel bootstrap."  # first line of our sitecustomize.py

# The same text and exit codes as the tree's sh launcher (docker/ferrotel-run.sh), and the exit
# codes of opentelemetry-instrument: 0 for --help/--version, 2 for a usage error (no command, an
# unknown option), 1 when the command cannot be run; otherwise the command's own status (exec).
USAGE = """usage: ferrotel-run [-h] [--version] [--] COMMAND [ARG...]

Run COMMAND with the ferrotel agent: its bootstrap goes first on PYTHONPATH (yours is kept),
so every Python process COMMAND starts is traced, e.g.
    ferrotel-run gunicorn -w 2 app:app
Configure it with OTEL_* and FERROTEL_* variables (OTEL_SERVICE_NAME,
OTEL_EXPORTER_OTLP_ENDPOINT, ...).

options:
  -h, --help  show this help and exit
  --version   show ferrotel's version and exit
  --          end of options (for a COMMAND starting with -)

exit status: COMMAND's own; 2 for a usage error; 1 when COMMAND cannot be run.
"""


def agent_root():
    """The directory that holds the ``ferrotel`` package (the tree's root or site-packages)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ours(path):
    try:
        with open(os.path.join(path, "sitecustomize.py")) as f:
            return f.readline().startswith(_MARKER)
    except OSError:
        return False


def bootstrap_dir(root=None):
    """The directory of our ``sitecustomize.py`` under `root` in the Operator's layout, or None.

    A pip installation into a site-packages shared with the pure-Python OpenTelemetry agent has
    that agent's package at the same path: only a directory holding *our* bootstrap counts.
    """
    root = root or agent_root()
    path = os.path.join(root, BOOTSTRAP_SUBDIR)
    if not _ours(path) or os.path.exists(os.path.join(path, "__init__.py")):
        return None
    return path


def package_bootstrap_dir(root=None):
    """The bootstrap the wheel carries inside the package (``ferrotel/_boot``), or None."""
    path = os.path.join(root or agent_root(), PACKAGE_BOOTSTRAP_SUBDIR)
    return path if _ours(path) else None


def pythonpath(existing, site, root=None):
    """``site:<existing, without our own entries>[:root]``: idempotent when launchers nest.

    `root` (the agent tree) goes last for the Operator's layout. A pip installation passes none:
    its root is site-packages, already on the path, and putting it on PYTHONPATH would place it
    before the standard library."""
    ours = {os.path.realpath(site)} | ({os.path.realpath(root)} if root else set())
    kept = [p for p in (existing or "").split(os.pathsep) if p and os.path.realpath(p) not in ours]
    return os.pathsep.join([site] + kept + ([root] if root else []))


def _fail(message, code):
    sys.stderr.write("ferrotel-run: error: %s\n" % message)
    return code


def _usage_error(message):
    sys.stderr.write(USAGE.split("\n\n", 1)[0] + "\n")
    return _fail(message + " (ferrotel-run --help for help)", 2)


def _which(command):
    if os.sep in command:
        return command if os.path.isfile(command) and os.access(command, os.X_OK) else None
    return shutil.which(command)


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
    elif args and args[0].startswith("-"):
        return _usage_error("unknown option %s" % args[0])
    if not args:
        return _usage_error("no COMMAND given")
    root = agent_root()
    site = bootstrap_dir(root)
    if site is None:
        site = package_bootstrap_dir(root)
        root = None  # a pip installation: the package's directory is already on sys.path
    if site is None:
        return _fail(
            "no ferrotel bootstrap at %s or %s (a broken installation?)"
            % (os.path.join(agent_root(), BOOTSTRAP_SUBDIR), os.path.join(agent_root(), PACKAGE_BOOTSTRAP_SUBDIR)),
            1,
        )
    command = args[0]
    executable = _which(command)
    if executable is None:
        return _fail("%s: command not found (or not executable)" % command, 1)
    os.environ["PYTHONPATH"] = pythonpath(os.environ.get("PYTHONPATH"), site, root)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(executable, args)
    except OSError as exc:
        return _fail("%s: %s" % (command, exc.strerror or exc), 1)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
