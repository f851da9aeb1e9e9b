# Relay: the one entry point for humans and CI. `make help` lists the targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install dev run test test-rust test-python lint format bench wheel wheel-check clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## install Relay from this checkout (builds the Rust extension)
	$(PIP) install .

dev: ## editable install with test and lint tools (builds the Rust extension)
	$(PIP) install -e '.[test]'

run: ## serve on the embedded default config (http://127.0.0.1:8080/v1)
	relay serve

test: dev test-rust test-python ## install everything, then run every test (Rust and Python)

test-rust: ## cargo tests of the pure Rust core
	cargo test --workspace --quiet

test-python: ## pytest: unit, native bindings, fake providers, integration (real server processes)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: ## ruff, mypy --strict, the .pyi stub against the extension, clippy, rustfmt
	$(PYTHON) -m ruff check python tests benches
	$(PYTHON) -m ruff format --check python tests benches
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest relay._native --allowlist tests/native/stubtest-allowlist.txt
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo fmt --all --check

format: ## apply ruff and rustfmt formatting
	$(PYTHON) -m ruff format python tests benches
	$(PYTHON) -m ruff check --fix python tests benches
	cargo fmt --all

bench: ## added latency and throughput against a direct baseline (see benches/README.md)
	$(PYTHON) benches/run.py

wheel: ## build the abi3 wheel into dist/
	$(PIP) wheel . --no-deps -w dist

wheel-check: ## build the wheel, install it in a fresh venv, serve the embedded default from /tmp
	PYTHON=$(PYTHON) scripts/check_wheel.sh

clean: ## remove build outputs
	rm -rf target dist .pytest_cache .mypy_cache .ruff_cache
