# The two commands of README.md: `make demo` (main job on the embedded default) and `make test`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export ANNY_CACHE_DIR ?= $(CURDIR)/.cache/anny
export OMP_NUM_THREADS ?= 2
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo lint

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check .

demo: setup
	$(PY) -m jotr demo-synthetic --out outputs/demo
