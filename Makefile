# The two commands of README.md: `make demo` (main job on the embedded default) and `make test`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
# The Anny cache: $ANNY_CACHE_DIR when set, else ~/.cache/jotr/anny (jotr.body.anny_cache.default_cache_dir);
# the set-up fills it, and the CLI, the API and the tests find it with no variable.
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
	$(PY) -m jotr demo-synthetic --out outputs/demo --force  # --force: replace the previous demo result (only folders jotr made)
