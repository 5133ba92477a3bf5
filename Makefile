# ferrotel — every entry point sets up what it needs by itself.
#   make demo   build the agent, run the Flask test app under gunicorn with it, show the spans
#   make test   Rust unit tests + Python end-to-end suites
#   make dist   the shipped tree: dist/autoinstrumentation/
#   make bench  benchmarks (see bench/)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DIST   := dist/autoinstrumentation
WHEELS := target/wheels
CARGO  ?= cargo

.PHONY: all demo test test-rust test-python dist wheel venv preload bench clean

all: dist

$(VENV)/.ready: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.5,<2" -r tests/requirements.txt
	touch $@

venv: $(VENV)/.ready

# One build command for tests, the demo and the Dockerfile: an abi3 wheel, unpacked into the
# Operator's layout with the bootstrap sitecustomize where the Operator's PYTHONPATH prefix points.
wheel: venv
	rm -rf $(WHEELS)
	$(VENV)/bin/maturin build --release --quiet --interpreter $(PY) --out $(WHEELS)

dist: wheel
	rm -rf $(DIST)
	$(PY) -m pip install --quiet --no-deps --no-compile --target $(DIST) $(WHEELS)/ferrotel-*.whl
	mkdir -p $(DIST)/opentelemetry/instrumentation/auto_instrumentation
	cp python/sitecustomize.py $(DIST)/opentelemetry/instrumentation/auto_instrumentation/sitecustomize.py
	if [ -f preload/Cargo.toml ]; then $(MAKE) --no-print-directory preload && cp $(PRELOAD) $(DIST)/; fi
	rm -rf $(DIST)/bin $(DIST)/ferrotel-*.dist-info/direct_url.json
	chmod -R go+rX $(DIST)
	@echo "built $(DIST)"

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
	$(PY) tests/demo.py

clean:
	rm -rf target dist $(VENV)
