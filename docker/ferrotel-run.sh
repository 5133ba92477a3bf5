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

usage() {
    echo "usage: ferrotel-run [--] COMMAND [ARG...]"
    echo "Run COMMAND with the ferrotel agent on PYTHONPATH (yours is kept), e.g. ferrotel-run gunicorn app:app"
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
esac
if [ $# -eq 0 ]; then
    usage >&2
    exit 2
fi
if [ ! -f "$site/sitecustomize.py" ]; then
    echo "ferrotel-run: no ferrotel bootstrap at $site" >&2
    exit 1
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
