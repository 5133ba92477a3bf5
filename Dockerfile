# syntax=docker/dockerfile:1
# ferrotel's auto-instrumentation image: what the OpenTelemetry Operator pulls as spec.python.image.
#
#   /autoinstrumentation/        glibc build; the Operator's init container runs
#                                `cp -r /autoinstrumentation/. /otel-auto-instrumentation-python`
#   /autoinstrumentation-musl/   musl build, for pods annotated
#                                instrumentation.opentelemetry.io/otel-python-platform: musl
#   /injector/glibc, /injector/musl
#                                symlinks to each tree's bootstrap directory: the layout the
#                                OpenTelemetry injector wants under PYTHON_AUTO_INSTRUMENTATION_AGENT_PATH_PREFIX
#
# Both trees come from `make dist`, the command the README and the tests use, so the tested tree
# and the shipped tree cannot differ; docker/layout.sh (also run by the tests) assembles the image.
#
#   docker build -t registry.example.com/ferrotel/autoinstrumentation-python:0.1.0 .
#
# See docker/README.md for pushing it, the Instrumentation resource and troubleshooting.

# glibc: Debian 12. The extension then needs glibc >= 2.34 in the application image.
FROM rust:1-bookworm AS build-glibc
RUN apt-get update \
    && apt-get install -y --no-install-recommends make python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make dist

# musl: built natively on Alpine with the same command. A cdylib needs the dynamic C runtime on
# musl (-crt-static off); maturin's wheel repair (patchelf) bundles libgcc_s into ferrotel.libs/,
# so the application image needs nothing but musl.
FROM rust:1-alpine AS build-musl
RUN apk add --no-cache gcc make musl-dev patchelf python3 py3-pip
ENV RUSTFLAGS="-C target-feature=-crt-static"
WORKDIR /src
COPY . .
RUN make dist DIST=dist/autoinstrumentation-musl

FROM busybox:1.37 AS layout
COPY --from=build-glibc /src/dist/autoinstrumentation/ /trees/glibc/
COPY --from=build-musl /src/dist/autoinstrumentation-musl/ /trees/musl/
COPY docker/layout.sh /layout.sh
RUN sh /layout.sh /trees/glibc /trees/musl /out

# Tiny, with the `cp` the init container runs; every file readable by any user.
FROM busybox:1.37
COPY --from=layout /out/ /
LABEL org.opencontainers.image.title="ferrotel-autoinstrumentation-python" \
      org.opencontainers.image.description="ferrotel: OpenTelemetry auto-instrumentation for Python with a native Rust engine (OpenTelemetry Operator image)" \
      org.opencontainers.image.licenses="Apache-2.0"
