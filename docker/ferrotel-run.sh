#!/bin/sh
# ferrotel-run: run a command with the ferrotel agent, like opentelemetry-instrument.
#
#   <tree>/bin/ferrotel-run gunicorn app:app
#
# Shipped in the agent tree as bin/ferrotel-run (pip's generated bin/ scripts carry the build
# machine's interpreter path, so the tree has this POSIX sh script instead). It finds the tree from
# its own location (symlinks to it are followed), puts the tree on PYTHONPATH as the OpenTelemetry
# Operator does -- bootstrap directory first, the user's entries kept in order, the tree's root
# last -- and execs the command.
set -eu

# The same text and exit codes as the pip installation's launcher (python/ferrotel/launcher.py)
# and opentelemetry-instrument's: 0 for --help/--version, 2 for a usage error (no command, an
# unknown option), 1 when the command cannot be run; otherwise the command's own status (exec).
usage_line() {
    echo "usage: ferrotel-run [-h] [--version] [--] COMMAND [ARG...]"
}

usage() {
    usage_line
    cat <<'EOF'

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
EOF
}

fail() {
    echo "ferrotel-run: error: $1" >&2
    exit "$2"
}

usage_error() {
    usage_line >&2
    fail "$1 (ferrotel-run --help for help)" 2
}

self=$0
case $self in
    */*) ;;
    *) self=$(command -v -- "$self") ;;
esac
# Follow symlinks to this script (e.g. /usr/local/bin/ferrotel-run -> /opt/ferrotel/bin/ferrotel-run).
while [ -L "$self" ]; do
    link=$(readlink "$self")
    case $link in
        /*) self=$link ;;
        *) self=$(dirname -- "$self")/$link ;;
    esac
done
root=$(cd -P -- "$(dirname -- "$self")/.." && pwd -P)
site=$root/opentelemetry/instrumentation/auto_instrumentation

case ${1-} in
    --) shift ;;
    -h|--help) usage; exit 0 ;;
    --version)
        # The version pip recorded when the tree was built: ferrotel-<version>.dist-info.
        version=
        for info in "$root"/ferrotel-*.dist-info; do
            [ -d "$info" ] || continue
            version=${info##*/ferrotel-}
            version=${version%.dist-info}
        done
        echo "ferrotel-run ${version:-unknown}"
        exit 0
        ;;
    -*) usage_error "unknown option $1" ;;
esac
if [ $# -eq 0 ]; then
    usage_error "no COMMAND given"
fi
if [ ! -f "$site/sitecustomize.py" ]; then
    fail "no ferrotel bootstrap at $site (a broken installation?)" 1
fi

# The command, found as exec would find it (and as the pip launcher's shutil.which does).
command=$1
found=
case $command in
    */*) if [ -f "$command" ] && [ -x "$command" ]; then found=$command; fi ;;
    *)
        set -f
        old_ifs=$IFS
        IFS=:
        for dir in ${PATH-}; do
            if [ -f "${dir:-.}/$command" ] && [ -x "${dir:-.}/$command" ]; then
                found=${dir:-.}/$command
                break
            fi
        done
        IFS=$old_ifs
        set +f
        ;;
esac
if [ -z "$found" ]; then
    fail "$command: command not found (or not executable)" 1
fi

# The user's PYTHONPATH without our own entries (idempotent when launchers nest).
kept=
set -f
old_ifs=$IFS
IFS=:
for entry in ${PYTHONPATH-}; do
    case $entry in
        ''|"$site"|"$root") ;;
        *) kept=${kept:+$kept:}$entry ;;
    esac
done
IFS=$old_ifs
set +f

PYTHONPATH=$site${kept:+:$kept}:$root
export PYTHONPATH
exec "$@"
