# The two set-up commands of the README. Each creates what it needs (.venv, the install) itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions (with hashes) of every dependency: the application's (requirements.lock) and,
# for development and CI, with the test tools (requirements-dev.lock). `make lock` refreshes both
# from pyproject.toml's ranges.
LOCK := requirements-dev.lock
UV_VERSION := 0.13.9
UV := $(VENV)/uv-tool/bin/uv
COMPILE = $(UV) pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet
# Hypothesis (tests/conftest.py): `make test` draws the same examples every run, with no example
# database (the `ci` profile); plain pytest explores at random (`dev`).
HYPOTHESIS_PROFILE ?= ci
# pytest-xdist: the suite on every core (each test has its own warehouse, sandbox and files).
PYTEST_WORKERS ?= auto

.PHONY: demo test lint lock cassettes bench-sandbox clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/regsync demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Re-resolve the locks after a change to pyproject.toml's dependencies (uv in a venv of its own).
lock:
	test -x $(UV) || ($(PYTHON) -m venv $(VENV)/uv-tool && $(VENV)/uv-tool/bin/pip install --quiet 'uv==$(UV_VERSION)')
	$(COMPILE) --extra postgres -o requirements.lock
	$(COMPILE) --extra postgres --extra dev -c requirements.lock -o requirements-dev.lock

# Re-record the HTTP cassettes from the sandbox (docs/cassettes.md); tests replay them offline.
cassettes: $(STAMP)
	$(BIN)/python -m pytest tests/cassette --record-mode=rewrite -q

bench-sandbox: $(STAMP)
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) .demo .pytest_cache
