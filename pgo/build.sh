#!/bin/sh
# Build the agent's wheel into OUT, profile-guided (PGO) when the toolchain allows it.
#
#   pgo/build.sh OUT          (run from the repository root; make dist calls it)
#   PGO=0 pgo/build.sh OUT    a plain release build
#
# Why: per request the agent runs a few thousand instructions spread over code that is cold by
# the time the next request comes; instruction-cache misses, not instructions, were most of its
# cost (callgrind's cache simulation; README, Benchmarks). A profile of a training run
# (pgo/train.py) lets LLVM put the hot paths together and keep the cold ones out of the way.
#
# Steps: an instrumented build, the training run with it, llvm-profdata merge, the final build
# with the profile. llvm-profdata comes from rustup's llvm-tools component (added here when
# missing). If any step fails, the plain build is made instead and a line says why: PGO changes
# speed, never behaviour. The profiling flags go to the agent's crate only (maturin passes
# trailing arguments to `cargo rustc`), so dependencies are built once, in the usual target
# directory, and shared by the plain, instrumented and final builds; generic code (most of what
# the request path runs from pyo3 and compact_str) is instantiated in the agent's crate and
# profiled with it. RUSTFLAGS set by the caller (the musl build's) apply as usual.
set -eu

out=$1
py=${PY:-.venv/bin/python}
maturin=${MATURIN:-.venv/bin/maturin}

plain() {
    "$maturin" build --release --interpreter "$py" --out "$out"
}

if [ "${PGO:-1}" != 1 ]; then
    plain
    exit 0
fi

host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ] && command -v rustup >/dev/null 2>&1; then
    rustup component add llvm-tools >/dev/null 2>&1 || true
fi
if [ ! -x "$profdata" ]; then
    echo "pgo: no llvm-profdata (rustup component add llvm-tools); plain build"
    plain
    exit 0
fi

work=$(pwd)/target/pgo
rm -rf "$work"
mkdir -p "$work"

pgo_build() {
    "$maturin" build --release --interpreter "$py" --out "$work/gen" -- "-Cprofile-generate=$work/raw" &&
    "$py" -m pip install --quiet --no-deps --no-compile --target "$work/tree" "$work"/gen/ferrotel-*.whl &&
    mkdir -p "$work/tree/opentelemetry/instrumentation/auto_instrumentation" &&
    cp python/sitecustomize.py "$work/tree/opentelemetry/instrumentation/auto_instrumentation/" &&
    "$py" pgo/train.py "$work/tree" &&
    "$profdata" merge -o "$work/merged.profdata" "$work/raw" &&
    "$maturin" build --release --interpreter "$py" --out "$out" -- "-Cprofile-use=$work/merged.profdata"
}

if ! pgo_build; then
    echo "pgo: the profile-guided build failed (above); plain build"
    rm -f "$out"/ferrotel-*.whl
    plain
fi
