#!/bin/sh
# Build the agent's wheel into OUT, profile-guided (PGO) when the toolchain allows it.
#
#   pgo/build.sh OUT          (run from the repository root; make dist calls it)
#   PGO=0 pgo/build.sh OUT    a plain release build
#
# Why: per request the agent runs a few thousand instructions spread over code that is cold by
# the time the next request comes; instruction-cache misses, not instructions, were most of its
# cost (callgrind's cache simulation, see bench/README.md). A profile of a training run
# (pgo/train.py) lets LLVM put the hot paths together and keep the cold ones out of the way.
#
# Steps: an instrumented build, the training run with it, llvm-profdata merge, the final build
# with the profile. llvm-profdata comes from rustup's llvm-tools component (added here when
# missing). If any step fails, the plain build is made instead and a line says why: PGO changes
# speed, never behaviour. `--target` keeps the profiling flags off build scripts and
# proc-macros; RUSTFLAGS set by the caller (the musl build's) are kept.
set -eu

out=$1
py=${PY:-.venv/bin/python}
maturin=${MATURIN:-.venv/bin/maturin}
flags=${RUSTFLAGS:-}

plain() {
    RUSTFLAGS=$flags "$maturin" build --release --quiet --interpreter "$py" --out "$out"
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

# Fixed paths under target/ (not a temporary directory): RUSTFLAGS are part of cargo's
# fingerprint, so the same flags keep both builds incremental.
work=$(pwd)/target/pgo
rm -rf "$work/raw" "$work/gen" "$work/tree"
mkdir -p "$work"

pgo_build() {
    RUSTFLAGS="$flags -Cprofile-generate=$work/raw" CARGO_TARGET_DIR=target/pgo-generate \
        "$maturin" build --release --quiet --target "$host" --interpreter "$py" --out "$work/gen" &&
    "$py" -m pip install --quiet --no-deps --no-compile --target "$work/tree" "$work"/gen/ferrotel-*.whl &&
    mkdir -p "$work/tree/opentelemetry/instrumentation/auto_instrumentation" &&
    cp python/sitecustomize.py "$work/tree/opentelemetry/instrumentation/auto_instrumentation/" &&
    "$py" pgo/train.py "$work/tree" &&
    "$profdata" merge -o "$work/merged.profdata" "$work/raw" &&
    RUSTFLAGS="$flags -Cprofile-use=$work/merged.profdata" CARGO_TARGET_DIR=target/pgo-use \
        "$maturin" build --release --quiet --target "$host" --interpreter "$py" --out "$out"
}

if ! pgo_build; then
    echo "pgo: the profile-guided build failed (above); plain build"
    rm -f "$out"/ferrotel-*.whl
    plain
fi
