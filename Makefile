# pyro — `make demo` sets up and runs the demo; `make check` sets up and runs
# every check. Everything the project needs is installed by `make setup`.

SHELL := /bin/bash
CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
AGENT := target/$(TARGET)/release/pyro-agent
PYRO := target/release/pyro
# uv from PATH, else the copy `make setup` installed with pip (expanded
# when used, so after setup has run).
export PATH := $(PATH):$(HOME)/.local/bin
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VHOST_DEVICE_VSOCK_VERSION := 0.3.0
# Environments built by the tests are cached here and reused across runs.
export PYRO_TEST_CACHE_DIR ?= $(CURDIR)/target/pyro-test-cache

.PHONY: setup build agent check lint test test-python smoke demo bench clean

## setup: install system packages and cargo tools, then check each tool (idempotent)
setup:
	@CARGO=$(CARGO) VHOST_DEVICE_VSOCK_VERSION=$(VHOST_DEVICE_VSOCK_VERSION) scripts/setup.sh

## agent: the static guest agent (PID 1 of every guest)
agent:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked -p pyro-agent --target $(TARGET)

## build: pyro and its agent, side by side in target/release
build: agent
	$(CARGO) build --release --locked -p pyro-cli
	cp $(AGENT) target/release/pyro-agent

## lint: formatting, clippy (warnings are errors) and an up-to-date uv.lock
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(UV) lock --check

## test: unit, protocol and real-guest tests (guests boot under TCG here)
test: agent
	$(CARGO) test --locked --workspace

## test-python: the MCP server driven by the official MCP Python client (real guests)
test-python: agent
	$(CARGO) build --locked -p pyro-cli
	$(UV) sync --frozen --group dev
	$(UV) run --frozen pytest tests/python -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "test-python: no tests collected"; rc=0; fi; exit $$rc

## smoke: several named, labelled workspaces driven through the CLI (real guests)
smoke: agent
	$(CARGO) build --locked -p pyro-cli
	PYRO_CACHE_DIR=$(PYRO_TEST_CACHE_DIR) scripts/smoke.sh target/debug/pyro

## check: everything CI runs
check: setup lint test test-python smoke

## demo: set up, build, and run `pyro demo` against debian:12
demo: setup build
	$(PYRO) demo

## bench: benchmarks, JSON written to target/bench.json
bench: setup build
	$(CARGO) run --release --locked -p pyro-bench -- --pyro $(PYRO) --output target/bench.json

clean:
	$(CARGO) clean
