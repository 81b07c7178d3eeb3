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
# Python lint, run by uv from the package index (not a project dependency).
RUFF_VERSION := 0.17.6
# Environments built by the tests are cached here and reused across runs.
export PYRO_TEST_CACHE_DIR ?= $(CURDIR)/target/pyro-test-cache
# The Python extension (crates/pyro-py) never links libpython: the
# interpreter that loads it provides the symbols. maturin sets the same, so
# cargo and maturin builds share pyo3's artifacts.
export PYO3_BUILD_EXTENSION_MODULE := 1
# Where the wheel and the editable install take the static agent from.
PY_AGENT := python/pyro_mcp/_agent/pyro-agent

.PHONY: setup build agent py-agent check lint test test-python smoke wheel dist-check demo bench bench-python clean

## setup: install system packages and cargo tools, then check each tool (idempotent)
setup:
	@CARGO=$(CARGO) VHOST_DEVICE_VSOCK_VERSION=$(VHOST_DEVICE_VSOCK_VERSION) scripts/setup.sh

## agent: the static guest agent (PID 1 of every guest)
agent:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked -p pyro-agent --target $(TARGET)

## py-agent: the static agent, copied into the Python package (gitignored)
py-agent: agent
	install -D -m 0755 $(AGENT) $(PY_AGENT)

## build: pyro and its agent, side by side in target/release
build: agent
	$(CARGO) build --release --locked -p pyro-cli
	cp $(AGENT) target/release/pyro-agent

## lint: formatting, clippy (warnings are errors), ruff and an up-to-date uv.lock
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(UV) lock --check
	$(UV) tool run ruff@$(RUFF_VERSION) check python tests scripts
	$(UV) tool run ruff@$(RUFF_VERSION) format --check python tests scripts

## test: unit, protocol and real-guest tests (guests boot under TCG here)
test: agent
	$(CARGO) test --locked --workspace

## test-python: the SDK and the MCP server (official MCP Python client), real guests
# `uv sync` installs pyro-mcp editable: maturin builds the native module
# (debug profile, sharing target/debug with cargo) into python/pyro_mcp/.
test-python: py-agent
	$(CARGO) build --locked -p pyro-cli
	MATURIN_PEP517_ARGS="--profile dev" $(UV) sync --frozen --group dev
	$(UV) run --frozen --no-sync pytest tests/python -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "test-python: no tests collected"; rc=0; fi; exit $$rc

## smoke: several named, labelled workspaces driven through the CLI (real guests)
smoke: agent
	$(CARGO) build --locked -p pyro-cli
	PYRO_CACHE_DIR=$(PYRO_TEST_CACHE_DIR) scripts/smoke.sh target/debug/pyro

## wheel: the pyro-mcp sdist and wheel (CLI, SDK, static agent) in target/dist
wheel: py-agent
	$(UV) build --sdist --wheel --out-dir target/dist

## dist-check: build sdist and wheel, install and use the wheel (real guest), rebuild from the sdist
dist-check: py-agent
	UV="$(UV)" scripts/dist-check.sh

## check: everything CI runs
check: setup lint test test-python smoke dist-check

## demo: set up, build, and run `pyro demo` against debian:12
demo: setup build
	$(PYRO) demo

## bench-python: SDK import time, list latency on 1,000 workspaces beside the CLI; JSON in target/bench-python.json
bench-python: build wheel
	$(CARGO) build --release --locked -p pyro-py --example fill_store
	rm -rf target/bench-venv
	$(UV) venv --quiet target/bench-venv
	$(UV) pip install --quiet --python target/bench-venv/bin/python target/dist/pyro_mcp-*.whl
	target/bench-venv/bin/python scripts/bench_python.py --pyro $(PYRO) \
	  --fill target/release/examples/fill_store --output target/bench-python.json

## bench: benchmarks, JSON written to target/bench.json (and target/bench-python.json)
bench: setup build bench-python
	$(CARGO) run --release --locked -p pyro-bench -- --pyro $(PYRO) --output target/bench.json

clean:
	$(CARGO) clean
