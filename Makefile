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

# The dashboard's browser tests drive Debian's chromium through Playwright (never
# `playwright install`: no browser downloads).
$(DEV): pyproject.toml $(BASE)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,postgres,dashboard]'
	command -v chromium >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	touch $@

# The benchmarks run on both backends: they need the PostgreSQL driver too.
$(PG): pyproject.toml $(BASE)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[postgres]'
	touch $@

DEMO_DB := $(CURDIR)/demo.db

DASH := $(VENV)/.installed-dashboard

$(DASH): pyproject.toml $(BASE)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dashboard]'
	touch $@

demo: $(DASH)
	rm -f $(DEMO_DB)
	CLOACA_DEMO_DB=$(DEMO_DB) $(BIN)/python examples/event_triggers.py
	@echo
	@echo "Watch the demo's runs in the dashboard:"
	@echo "  $(BIN)/cloaca dashboard --db sqlite://$(DEMO_DB)"

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
	rm -rf $(VENV) build *.egg-info src/*.egg-info demo.db
