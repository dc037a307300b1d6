PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
DEV := $(VENV)/.installed-dev
PG := $(VENV)/.installed-postgres

.PHONY: demo test lint bench bench-quick clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The demo needs only the package; the tests add the dev tools on top.
$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(DEV): pyproject.toml $(BASE)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,postgres]'
	touch $@

# The benchmarks run on both backends: they need the PostgreSQL driver too.
$(PG): pyproject.toml $(BASE)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[postgres]'
	touch $@

demo: $(BASE)
	$(BIN)/python examples/event_triggers.py

lint: $(DEV)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(PG)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(PG)
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
