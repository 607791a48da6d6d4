# The two set-up commands of the README:
#   make run   builds Osprey and starts `osprey serve` on its embedded default (./data, port 7360)
#   make test  installs what the tests need (idempotent) and runs every test
SHELL := /bin/bash
CARGO ?= cargo
CONFORMANCE_DIR ?= $(or $(OSPREY_CONFORMANCE_DIR),$(abspath ../shared/conformance))

.PHONY: run build test test-deps test-rust test-conformance bench fmt clippy

run:
	$(CARGO) build --release -p osprey
	./target/release/osprey serve

build:
	$(CARGO) build --release -p osprey

test: test-deps build test-conformance test-rust

# Real peers the end-to-end tests drive. Services must not start on install (policy-rc.d 101).
test-deps:
	@./scripts/install-test-deps.sh

test-rust:
	$(CARGO) test --release --workspace --lib --bins --tests

# Prometheus's PromQL test scripts over our engine; skipped (with the reason) without the corpus.
test-conformance:
	@if [ -d "$(CONFORMANCE_DIR)/promql" ]; then \
		./target/release/osprey promql-test "$(CONFORMANCE_DIR)/promql" > target/promql-conformance.txt; \
		grep -E '\.test: |^total:' target/promql-conformance.txt || true; \
	else \
		echo "promql conformance: skipped: corpus not found at $(CONFORMANCE_DIR)/promql (set OSPREY_CONFORMANCE_DIR)"; \
	fi

bench:
	$(CARGO) run --release --manifest-path bench/Cargo.toml --

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
