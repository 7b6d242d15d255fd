# One entry point for humans and CI. `make demo` builds everything and runs the main job;
# `make test` runs every check and test (what .ci/run runs).
CARGO ?= cargo

.PHONY: demo build test check bench registry

build:
	$(CARGO) build --release --workspace

demo: build
	./target/release/netget demo

registry: build
	./target/release/netget registry

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# nextest runs every test binary in parallel and ends with one summary line; plain cargo test
# is the fallback where nextest is missing.
test: check
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

bench: build
	./target/release/netget bench --instances 10000
	./target/release/netget bench --instances 100000 --watchers 1000 --events 200
	$(CARGO) bench -p netget-core --bench directory
