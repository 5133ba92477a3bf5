# ferrotel — every entry point sets up what it needs by itself.
#   make demo   build the agent, run the Flask test app under gunicorn with it, show the spans
#   make test   Rust unit tests + Python end-to-end suites
#   make dist   the shipped tree: dist/autoinstrumentation/
#   make bench  benchmarks (see bench/)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DIST   := dist/autoinstrumentation
CARGO  ?= cargo

.PHONY: all demo test test-rust test-python dist venv preload bench clean

all: dist

$(VENV)/.ready: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.5,<2" -r tests/requirements.txt
	touch $@

venv: $(VENV)/.ready

# One build command for tests, the demo and the Dockerfile: an abi3 wheel, unpacked into the
# Operator's layout with the bootstrap sitecustomize where the Operator's PYTHONPATH prefix points.
# Built in a scratch directory and moved into place, so a concurrent build never sees half a tree.
dist: venv
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(VENV)/bin/maturin build --release --quiet --interpreter $(PY) --out "$$tmp/wheels"; \
	$(PY) -m pip install --quiet --no-deps --no-compile --target "$$tmp/tree" "$$tmp"/wheels/ferrotel-*.whl; \
	rm -rf "$$tmp/tree/bin" "$$tmp"/tree/ferrotel-*.dist-info/direct_url.json; \
	mkdir -p "$$tmp/tree/opentelemetry/instrumentation/auto_instrumentation"; \
	cp python/sitecustomize.py "$$tmp/tree/opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py"; \
	if [ -f preload/Cargo.toml ]; then $(MAKE) --no-print-directory preload; cp $(PRELOAD) "$$tmp/tree/"; fi; \
	chmod -R go+rX "$$tmp/tree"; \
	mkdir -p $(dir $(DIST)); rm -rf $(DIST).old; [ ! -d $(DIST) ] || mv $(DIST) $(DIST).old; \
	mv "$$tmp/tree" $(DIST); rm -rf $(DIST).old; \
	echo "built $(DIST)"

# The LD_PRELOAD library: its own workspace (no std, no libc, panic=abort), its own target dir.
PRELOAD := preload/target/release/libferrotel_preload.so
preload:
	$(CARGO) build --quiet --release --manifest-path preload/Cargo.toml

test-rust:
	$(CARGO) test --quiet

test-python: dist
	$(PY) -m pytest tests -q

test: test-rust test-python

demo: dist
	$(PY) tests/app/demo.py

clean:
	rm -rf target dist $(VENV)
