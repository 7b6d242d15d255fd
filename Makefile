# One entry point for humans and CI.
#   make demo   builds everything, then runs the main job (registries with services registering
#               and discovering each other, in Rust, Python, and an Express app with a FastAPI app)
#   make test   every check and test, in every language (what .ci/run runs)
#   make bench  the load tool and the micro-benchmarks
CARGO ?= cargo
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: deps demo build python node test check rust-test python-test node-test browser-test bench registry

build: deps
	$(CARGO) build --release --workspace

# The Python package, installed the way users install it (`pip install .`), plus test tools.
python:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]' ruff==0.17.6

# The Node package, installed the way users install it (`npm install` builds the addon).
node:
	npm install --no-audit --no-fund

demo: build python node
	./target/release/netget demo
	$(PY) examples/python_demo.py
	$(PY) examples/cross_language_demo.py

registry: build
	./target/release/netget registry

# System packages the build needs: protoc for the etcd client of the side-by-side benchmark.
deps:
	@command -v protoc >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler)

check: deps python
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check bindings-py tests examples
	$(VENV)/bin/ruff format --check bindings-py tests examples

# nextest runs every test binary in parallel and ends with one summary line; plain cargo test
# is the fallback where nextest is missing.
rust-test:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

node-test: node
	npm test

# netget.js and the dashboard in Debian's headless Chromium (installed here if missing), with
# Python and Node peers on the channels.
browser-test: python node
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(CARGO) build -p netget-core
	npm ci --prefix tests/browser --no-audit --no-fund
	npm test --prefix tests/browser

python-test: python node
	$(PY) -m pytest -q

# Python last: its summary line closes the run.
test: check rust-test node-test browser-test python-test

bench: build python
	bench/run.sh
	./target/release/netget bench --instances 10000
	./target/release/netget bench --instances 100000 --watchers 1000 --events 200
	$(CARGO) bench -p netget-core --bench directory
	$(PY) bindings-py/bench.py
	npm run bench
