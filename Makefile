# One entry point for humans and CI.
#   make demo   builds everything, then runs the main job (registries with services registering
#               and discovering each other, in Rust, Python, and an Express app with a FastAPI app)
#   make test   every check and test, in every language (what .ci/run runs), and the artifacts of
#               `make dist` installed and run as users install them
#   make dist   the artifacts that would be uploaded (wheel, sdist, npm packages, release binary)
#   make bench  the load tool and the micro-benchmarks
CARGO ?= cargo
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: deps tools dist dist-test api-fuzz fuzz fuzz-ci soak soak-ci callgrind demo build python node test check rust-test python-test node-test browser-test bench registry

# The release build (with line tables), for benchmarks and profiles.
build: deps
	$(CARGO) build --release --workspace

# The build and test tools of the Python side, in .venv.
tools:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'maturin>=1.16,<2' auditwheel==6.4.2 ruff==0.17.6 schemathesis==4.32.5

# Every artifact a user installs, into dist/ (see packaging/dist.sh); the checkout's Node addon
# is the one packed.
dist: deps tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" packaging/dist.sh

# The Python package, installed from the wheel just built, as users install it, plus test tools.
python: dist
	$(PY) -m pip install -q --force-reinstall --no-deps dist/netget-*.whl
	$(PY) -m pip install -q "$$(ls dist/netget-*.whl)[test]"

# The Node side of the checkout: dev dependencies (the addon is the one `make dist` built).
node: dist
	npm install --no-audit --no-fund

demo: python node
	./target/dist/netget demo
	$(PY) examples/python_demo.py
	$(PY) examples/cross_language_demo.py

registry: dist
	./target/dist/netget registry

# schemathesis against the release binary's own /v1/openapi.json, every check (tests/api/fuzz.sh).
api-fuzz: dist tools
	tests/api/fuzz.sh

# The cargo fuzz targets (fuzz/README.md): a minute each in the tests, ten minutes by hand.
fuzz-ci:
	fuzz/run.sh 60

fuzz:
	STRICT=1 SANITIZER=address fuzz/run.sh 600

# netget soak (RELIABILITY.md): 10k sessions with churn on one registry and on a cluster of 3,
# then a flood from one address; 30 s each in the tests, ten minutes each by hand.
soak-ci: dist
	./target/dist/netget soak --duration 30s
	./target/dist/netget soak --registries 3 --duration 30s --flood 5s

soak: dist
	./target/dist/netget soak --duration 10m --interval 30s
	./target/dist/netget soak --registries 3 --duration 10m --interval 30s --flood 30s

# The hot paths' instructions per operation under valgrind's callgrind against the committed
# bench/callgrind-baseline.json: fails naming every path more than 5 % costlier (BENCHMARKS.md,
# "Instruction counts"). The comparison's own test first, so a guard that cannot fail fails.
callgrind: deps
	$(PYTHON) bench/test_callgrind.py
	$(PYTHON) bench/callgrind.py

# The artifacts in dist/, installed and run with no Rust toolchain on PATH (and the sdist built).
dist-test: dist
	tests/dist/install.sh dist

# System packages the build needs: protoc for the etcd client of the side-by-side benchmark.
# Debian packages: protoc (chitchat's build), and the third-party programs the integration
# tests use as users do: dig (DNS), prometheus (its service discovery against netget); valgrind
# for the instruction counts of `make callgrind`.
deps:
	@need=""; \
	command -v protoc >/dev/null 2>&1 || need="$$need protobuf-compiler"; \
	command -v dig >/dev/null 2>&1 || need="$$need bind9-dnsutils"; \
	command -v prometheus >/dev/null 2>&1 || need="$$need prometheus"; \
	command -v valgrind >/dev/null 2>&1 || need="$$need valgrind"; \
	if [ -n "$$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; fi

check: deps python
	$(CARGO) fmt --all -- --check
	@# The fuzz crate is a workspace of its own: its lock file must follow the core's dependencies
	@# (a stale one is rewritten by the fuzz build and leaves the checkout dirty).
	@$(CARGO) metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null || \
		(echo "fuzz/Cargo.lock is out of date: run cargo update -w --manifest-path fuzz/Cargo.toml and commit it" >&2; exit 1)
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check bindings-py tests examples
	$(VENV)/bin/ruff format --check bindings-py tests examples

# nextest runs every test binary in parallel and ends with one summary line; plain cargo test
# is the fallback where nextest is missing.
rust-test: deps
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

# The installed artifacts last: their summary line closes the run.
test: check rust-test node-test browser-test python-test api-fuzz fuzz-ci soak-ci callgrind dist-test

bench: build python
	bench/run.sh
	./target/release/netget bench --instances 10000
	./target/release/netget bench --instances 100000 --watchers 1000 --events 200
	$(CARGO) bench -p netget-core --bench directory
	$(PY) bindings-py/bench.py
	npm run bench
