# ferrotel — every entry point sets up what it needs by itself.
#   make demo   build the agent; run the Flask (gunicorn), FastAPI (uvicorn) and Django (gunicorn)
#               test apps with it and show their spans
#   make test   Rust unit tests + Python end-to-end suites, with tests/pyver (CPython 3.14/3.15
#               and debug interpreters) in parallel
#   make dist   the shipped tree: dist/autoinstrumentation/
#   make bench  benchmarks (see bench/)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DIST   := dist/autoinstrumentation
CARGO  ?= cargo

.PHONY: all demo test test-rust test-python test-venvs dist venv preload bench bench-profile clean deploy-tools db-servers semconv-check semconv-docs \
	sid-root pyver-tools test-pyver test-suites

all: dist

$(VENV)/.ready: tests/requirements.txt
	@echo "==> setting up $(VENV): maturin and the test packages (a minute or two the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.5,<2" -r tests/requirements.txt
	# uwsgi builds from source (a C compiler and Python's headers): best effort; its tests skip
	# and say why when it is absent.
	$(PY) -m pip install --quiet uwsgi || echo "uwsgi could not be installed; its reliability tests will skip"
	touch $@

venv: $(VENV)/.ready

# PGO=1: the native library is built profile-guided (pgo/build.sh: an instrumented build, a
# training run, the final build; falls back to a plain build if the toolchain cannot). PGO=0: plain.
PGO ?= 1

# One build command for tests, the demo and the Dockerfile: an abi3 wheel, unpacked into the
# Operator's layout with the bootstrap sitecustomize where the Operator's PYTHONPATH prefix points.
# Built in a scratch directory and moved into place, so a concurrent build never sees half a tree.
# bin/ferrotel-run is the sh launcher (pip's generated bin/ has the build machine's shebang).
# The wheel itself is kept in dist/wheels/ (what `pip install` takes; see the README).
#
# A file target: `make dist` (and so `make test`, `make demo`) rebuilds only when a source is newer
# than the built tree. After changing PGO alone, force it: `make -B dist` or `make clean`.
# cargo's and maturin's own progress is shown: a first build takes minutes.
DIST_STAMP := $(DIST)/bin/ferrotel-run
DIST_SOURCES := $(shell find src python pgo preload -type f -not -path '*/target/*' -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null) \
	Cargo.toml Cargo.lock pyproject.toml docker/ferrotel-run.sh

dist: $(DIST_STAMP)

$(DIST_STAMP): $(DIST_SOURCES) | $(VENV)/.ready
	@echo "==> building the agent (native library: cargo release build, PGO=$(PGO); minutes the first time;"
	@echo "    the last crate, ferrotel itself, is optimised as a whole and prints nothing for a few minutes)"
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PGO=$(PGO) PY=$(PY) MATURIN=$(VENV)/bin/maturin sh pgo/build.sh "$$tmp/wheels"; \
	$(PY) -m pip install --quiet --no-deps --no-compile --target "$$tmp/tree" "$$tmp"/wheels/ferrotel-*.whl; \
	rm -rf "$$tmp/tree/bin" "$$tmp"/tree/ferrotel-*.dist-info/direct_url.json; \
	mkdir -p "$$tmp/tree/bin"; cp docker/ferrotel-run.sh "$$tmp/tree/bin/ferrotel-run"; chmod 755 "$$tmp/tree/bin/ferrotel-run"; \
	mkdir -p "$$tmp/tree/opentelemetry/instrumentation/auto_instrumentation"; \
	cp python/sitecustomize.py "$$tmp/tree/opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py"; \
	if [ -f preload/Cargo.toml ]; then \
	  echo "==> building the LD_PRELOAD library (preload/)"; \
	  $(CARGO) build --release --manifest-path preload/Cargo.toml; \
	  cp "$$($(PRELOAD_DIR))/release/libferrotel_preload.so" "$$tmp/tree/"; \
	fi; \
	chmod -R go+rX "$$tmp/tree"; \
	mkdir -p $(dir $(DIST)) dist/wheels; rm -f dist/wheels/ferrotel-*.whl; cp "$$tmp"/wheels/ferrotel-*.whl dist/wheels/; \
	rm -rf $(DIST).old; [ ! -d $(DIST) ] || mv $(DIST) $(DIST).old; \
	mv "$$tmp/tree" $(DIST); rm -rf $(DIST).old; \
	echo "built $(DIST) and dist/wheels/$$(cd dist/wheels && ls ferrotel-*.whl)"

# Where cargo puts the preload library's output: preload/target, or CARGO_TARGET_DIR (or cargo's
# build.target-dir setting) when set -- a shell command, run in the recipe.
PRELOAD_DIR := $(CARGO) metadata --format-version 1 --no-deps --manifest-path preload/Cargo.toml | $(PYTHON) -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
preload:
	$(CARGO) build --release --manifest-path preload/Cargo.toml
	@echo "built $$($(PRELOAD_DIR))/release/libferrotel_preload.so"

test-rust:
	@echo "==> Rust unit tests (cargo builds the test binary first)"
	$(CARGO) test -- --quiet

# Tools for tests/deploy, each skipped when present; without them those tests skip and say why.
# promtool: unpacked from Debian's `prometheus` package into /usr/local/bin (no service is installed
# or started; `apt-get update` only when the package lists lack it). The Rust musl target: for the
# musl cross-compile check.
deploy-tools:
	@command -v promtool >/dev/null 2>&1 || ( set -e; \
	  tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cd "$$tmp"; \
	  apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; \
	  dpkg-deb -x prometheus_*.deb x; install -m 755 x/usr/bin/promtool /usr/local/bin/promtool \
	) || echo "deploy-tools: could not install promtool from Debian's prometheus package"
	@! command -v rustup >/dev/null 2>&1 || rustup target list --installed | grep -qx x86_64-unknown-linux-musl \
	  || rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || echo "deploy-tools: could not add the Rust musl target"
	@command -v musl-gcc >/dev/null 2>&1 || { apt-get install -y -qq musl-tools >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null 2>&1; }; } \
	  || echo "deploy-tools: could not install musl-tools (the preload library's musl checks will skip)"

# App environments for tests/otel_api (issue 10), beside the test venv: the test app's packages
# with opentelemetry-api at the newest release and at one about two years older, with the SDK (an
# app that sets its own provider), and with no OpenTelemetry package. Each is rebuilt only when its
# requirements file changes (a stamp file per venv), so this is quick once built.
APP_VENVS := api-newest api-older sdk noapi
test-venvs: $(foreach v,$(APP_VENVS),.venvs/app-$(v)/.ready)

.venvs/app-%/.ready: tests/otel_api/requirements-%.txt
	rm -rf .venvs/app-$*
	$(PYTHON) -m venv .venvs/app-$*
	.venvs/app-$*/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

# Real database servers for tests/databases (PostgreSQL, MariaDB, Redis; RabbitMQ best effort),
# installed from Debian's packages when missing, never started as services: the tests start their
# own on loopback ports. mysqlclient builds against libmariadb (installed here too): best effort,
# its tests skip and say why when it is absent.
db-servers: venv
	@sh tests/support/install-dbservers.sh
	@$(PY) -c "import MySQLdb" 2>/dev/null || $(PY) -m pip install --quiet mysqlclient \
	  || echo "mysqlclient could not be built; its database tests will skip"

# -ra: the summary at the end names every test that did not pass, and why each skip skipped.
# tests/pyver is test-pyver's (below).
test-python: dist deploy-tools test-venvs db-servers
	$(PY) -m pytest tests -q -ra --ignore=tests/pyver

# Newer and debug interpreters (issue 17): CPython 3.14 and 3.15 (and 3.14's debug build) from a
# Debian unstable root file system made by mmdebstrap and cached in $(SID_ROOT) (a few minutes the
# first time, seconds later; rebuilt when its package lists change), and Debian 12's python3.11-dbg.
# Without root, mmdebstrap or the network to Debian the tests skip and say why.
SID_ROOT ?= /var/cache/ferrotel/sid-root
sid-root:
	@FERROTEL_SID_ROOT=$(SID_ROOT) sh tests/pyver/sid_root.sh

pyver-tools:
	@command -v python3.11d >/dev/null 2>&1 || apt-get install -y -qq python3.11-dbg >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq python3.11-dbg >/dev/null 2>&1; } \
	  || echo "pyver-tools: could not install python3.11-dbg (its debug-interpreter test will skip)"

test-pyver: dist pyver-tools sid-root
	FERROTEL_SID_ROOT=$(SID_ROOT) $(PY) -m pytest tests/pyver -q -ra -p no:cacheprovider

# `make test`: the Rust tests, then the main Python suites and tests/pyver at the same time (two
# pytest processes for CI's two cores; measured here: 12m50s for all of `make test`, tests/pyver
# 7m24s of it, the sid root already cached). tests/pyver's output
# goes to $(PYVER_LOG) and is printed after the main suites' own; the run fails if either failed.
PYVER_LOG ?= tests/pyver/last-run.log
test: test-rust
	@$(MAKE) --no-print-directory test-suites

test-suites: dist deploy-tools test-venvs db-servers pyver-tools
	@echo "==> tests/pyver runs in the background meanwhile (log: $(PYVER_LOG), printed at the end)"
	@$(MAKE) --no-print-directory test-pyver >$(PYVER_LOG) 2>&1 & pyver=$$!; \
	$(MAKE) --no-print-directory test-python; main=$$?; \
	wait $$pyver; pyver_status=$$?; \
	echo; echo "==> tests/pyver (CPython 3.14, 3.15, debug interpreters): $(PYVER_LOG)"; cat $(PYVER_LOG); \
	[ $$main -eq 0 ] && [ $$pyver_status -eq 0 ]

demo: dist
	$(PY) tests/app/demo.py
	$(PY) tests/app_fastapi/demo.py
	$(PY) tests/app_rpc/demo.py
	$(PY) tests/aws/demo.py
	$(PY) tests/messaging/demo.py

# Weaver's live-check (issue 21) of the demo traffic (make demo's apps, exporting OTLP/gRPC to it) against
# ferrotel's registry (semconv/) and the semantic conventions it extends, from a local checkout:
# nothing is downloaded. Without a `weaver` on PATH or without $(SEMCONV)/model it says so and
# passes. Fails on any violation, or an improvement beyond the conventions' own development parts.
SEMCONV ?= /opt/semconv
WEAVER  ?= weaver
semconv-check: venv
	$(PY) semconv/gen_docs.py --check
	@if SEMCONV=$(SEMCONV) WEAVER=$(WEAVER) $(PY) semconv/live_check.py --can-run; then \
	  $(MAKE) --no-print-directory dist && SEMCONV=$(SEMCONV) WEAVER=$(WEAVER) FERROTEL_DIST=$(DIST) $(PY) semconv/live_check.py; fi

# Regenerate README.md's reference of ferrotel's own attributes and metrics from semconv/ferrotel.yaml.
semconv-docs: venv
	$(PY) semconv/gen_docs.py

# Benchmarks (issue 7): no agent vs ferrotel vs the pure-Python agent, one table in
# bench/results/latest.md (+ latest.json). bench/run.py builds .venvs/{base,upstream} and installs
# wrk and GNU time from Debian when missing. Settings: BENCH_SECONDS, BENCH_ROUNDS, BENCH_REQUESTS,
# BENCH_STARTUP_REPS, ... (see bench/run.py). Reports only: never fails on a bar.
bench: dist
	FERROTEL_DIST=$(DIST) $(PY) bench/run.py
	@echo; echo "== ASGI (uvicorn + FastAPI): no agent / ferrotel / pure-Python agent"
	$(PY) bench/asgi.py | tee bench/results/asgi.md
	@echo; echo "== outgoing HTTP calls: one call with and without the agent"
	FERROTEL_DIST=$(DIST) $(PY) bench/client.py | tee bench/results/client.md
	@echo; echo "== logging: cost per log record (correlation fields, OTLP export)"
	$(PY) bench/logging_cost.py | tee bench/results/logging.md
	@echo; echo "== databases: one statement with and without the agent (sqlite3, redis)"
	FERROTEL_DIST=$(DIST) $(PY) bench/db.py | tee bench/results/db.md
	@echo; echo "== gRPC: one unary call with and without the client and server hooks"
	FERROTEL_DIST=$(DIST) $(PY) bench/rpc.py | tee bench/results/rpc.md
	@echo; echo "== AWS SDK: one botocore call with and without the hook (no network)"
	FERROTEL_DIST=$(DIST) $(PY) bench/aws.py | tee bench/results/aws.md
	@echo; echo "== Celery: one task sent (memory:// transport) and run, with and without the hooks"
	FERROTEL_DIST=$(DIST) $(PY) bench/messaging.py | tee bench/results/messaging.md

# Instructions per request under callgrind (ferrotel vs no agent), for profiling the request path.
bench-profile: dist
	FERROTEL_DIST=$(DIST) $(PY) bench/profile_inprocess.py

clean:
	rm -rf target dist $(VENV)
