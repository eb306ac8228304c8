# The two commands of README.md: `make demo` (main job on the embedded default) and `make test`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
# The Anny cache: $ANNY_CACHE_DIR when set, else ~/.cache/jotr/anny (jotr.body.anny_cache.default_cache_dir);
# the set-up fills it, and the CLI, the API and the tests find it with no variable.
export OMP_NUM_THREADS ?= 2
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo lint detect-env

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check .

demo: setup
	$(PY) -m jotr demo-synthetic --out outputs/demo

# The optional built-in detector (MediaPipe 0.10.21 needs numpy<2 and its own OpenCV/protobuf) in an environment
# of its own, so that the main one keeps numpy 2 and a working `jotr export-onnx`. Then:
#   .venv-detect/bin/jotr demo IMAGE --out DIR        (no --keypoints: MediaPipe finds the person)
DETECT_VENV ?= $(CURDIR)/.venv-detect
detect-env:
	@test -x $(DETECT_VENV)/bin/python || python3 -m venv $(DETECT_VENV)
	$(DETECT_VENV)/bin/python -m pip install -q torch==2.13.0
	$(DETECT_VENV)/bin/python -m pip install -q -e '.[render,detect]'
	$(DETECT_VENV)/bin/python -m pip install -q PyOpenGL==3.1.7 2>&1 | grep -v -E "incompatible|dependency resolver|dependency conflicts" || true
	$(DETECT_VENV)/bin/python -c "from jotr.inference.detector import MediaPipeDetector; MediaPipeDetector().close(); print('detect-env ready: $(DETECT_VENV)/bin/jotr demo IMAGE --out DIR')"
