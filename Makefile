# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: venv install-test install-demo test lint demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Pinned CPU torch first: an unpinned torch would pull several GB of CUDA packages.
venv: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)

install-test: venv
	$(BIN)/pip install --quiet -e ".[test,demo]"

install-demo: venv
	$(BIN)/pip install --quiet -e ".[demo]"

lint: install-test
	$(BIN)/ruff check src tests benchmarks examples

test: lint
	$(BIN)/python -m pytest -q tests

demo: install-demo
	$(BIN)/datacarto demo --output-dir demo_output

clean:
	rm -rf $(VENV) demo_output .pytest_cache
