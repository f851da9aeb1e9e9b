# Relay: the one entry point for humans and CI. `make help` lists the targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=
# Exact versions of everything `make dev` installs (CI included): see scripts/pin_constraints.py.
CONSTRAINTS ?= $(CURDIR)/constraints.txt
# Cargo.lock is the truth: builds fail instead of resolving crates anew. pip builds the
# extension through maturin, which takes its cargo flags from this variable.
export MATURIN_PEP517_ARGS ?= --locked

.DEFAULT_GOAL := help
.PHONY: help install dev constraints run test test-rust test-python lint format bench locust docs docs-serve wheel wheel-check clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## install Relay from this checkout (builds the Rust extension)
	$(PIP) install .

dev: ## editable install with the test and lint tools pinned by constraints.txt (builds the extension)
	PIP_CONSTRAINT=$(CONSTRAINTS) $(PIP) install -e '.[test]'

constraints: ## pin constraints.txt to what is installed now (after `make test lint` pass)
	$(PYTHON) scripts/pin_constraints.py

run: ## serve on the embedded default config (http://127.0.0.1:8080/v1)
	relay serve

test: dev test-rust test-python ## install everything, then run every test (Rust and Python)

test-rust: ## cargo tests of the pure Rust core
	cargo test --workspace --locked --quiet

test-python: ## pytest: unit, native bindings, fake providers, integration (real server processes)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: ## no tracked binaries, ruff, mypy --strict, the .pyi stub against the extension, clippy, rustfmt
	$(PYTHON) scripts/check_files.py
	$(PYTHON) -m ruff check python tests benches scripts
	$(PYTHON) -m ruff format --check python tests benches scripts
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest relay._native --allowlist tests/native/stubtest-allowlist.txt
	cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
	cargo fmt --all --check

format: ## apply ruff and rustfmt formatting
	$(PYTHON) -m ruff format python tests benches scripts
	$(PYTHON) -m ruff check --fix python tests benches scripts
	cargo fmt --all

bench: ## added latency and throughput against a direct baseline (see benches/README.md)
	$(PYTHON) benches/run.py

LOCUST_ARGS ?=
locust: ## a headless locust run (a realistic mix) against a local gateway and a fake provider: p50/p95/p99, failures
	$(PYTHON) benches/locust_run.py $(LOCUST_ARGS)

# The documentation site (mkdocs.yml; the pages are docs/*.md). Material's banner about MkDocs 2
# is not ours to act on.
export NO_MKDOCS_2_WARNING ?= 1

docs: ## build the documentation site into site/ (mkdocs --strict: broken links and anchors fail)
	$(PYTHON) -m mkdocs build --strict

docs-serve: ## serve the documentation site on http://127.0.0.1:8000, rebuilt on every save
	$(PYTHON) -m mkdocs serve --dev-addr 127.0.0.1:8000

wheel: ## build the abi3 wheel into dist/
	$(PIP) wheel . --no-deps -w dist

wheel-check: ## build the wheel, install it in a fresh venv, serve the embedded default from /tmp
	PIP_CONSTRAINT=$(CONSTRAINTS) PYTHON=$(PYTHON) scripts/check_wheel.sh

clean: ## remove build outputs
	rm -rf target dist site .pytest_cache .mypy_cache .ruff_cache
