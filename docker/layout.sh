#!/bin/sh
# Assemble the auto-instrumentation image's file system from the two trees `make dist` built.
#
#   sh docker/layout.sh GLIBC_TREE MUSL_TREE OUT
#
# OUT/autoinstrumentation/        the glibc tree: the OpenTelemetry Operator's init container runs
#                                 `cp -r /autoinstrumentation/. /otel-auto-instrumentation-python`
# OUT/autoinstrumentation-musl/   the musl tree, for pods annotated
#                                 instrumentation.opentelemetry.io/otel-python-platform: musl
# OUT/injector/{glibc,musl}       relative symlinks to each tree's bootstrap directory: the layout the
#                                 OpenTelemetry injector expects under PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX
#                                 (it prepends <prefix>/glibc or <prefix>/musl to PYTHONPATH)
#
# Everything readable by any user: pods often run as non-root. Used by the Dockerfile and by the
# tests (tests/deploy), so the layout they check is the one the image ships.
set -eu

if [ $# -ne 3 ]; then
    echo "usage: $0 GLIBC_TREE MUSL_TREE OUT" >&2
    exit 2
fi
glibc=$1
musl=$2
out=$3
bootstrap=opentelemetry/instrumentation/auto_instrumentation

for tree in "$glibc" "$musl"; do
    if [ ! -f "$tree/$bootstrap/sitecustomize.py" ] || [ ! -d "$tree/ferrotel" ]; then
        echo "layout.sh: $tree is not a ferrotel tree (make dist builds one)" >&2
        exit 1
    fi
done

mkdir -p "$out/autoinstrumentation" "$out/autoinstrumentation-musl" "$out/injector"
cp -R "$glibc/." "$out/autoinstrumentation"
cp -R "$musl/." "$out/autoinstrumentation-musl"
ln -sfn "../autoinstrumentation/$bootstrap" "$out/injector/glibc"
ln -sfn "../autoinstrumentation-musl/$bootstrap" "$out/injector/musl"
chmod -R go+rX "$out/autoinstrumentation" "$out/autoinstrumentation-musl" "$out/injector"
