# Teleconsult: `make run` starts a demo server on the embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/teleconsult serve --demo

lint: $(STAMP)
	$(BIN)/ruff check teleconsult tests bench
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite: lint and types first, then every test (PostgreSQL and browser tests included;
# outside CI they skip with a one-line reason when the service is missing).
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -ra

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not browser and not webrtc"

format: $(STAMP)
	$(BIN)/ruff format teleconsult tests bench
	$(BIN)/ruff check --fix teleconsult tests bench

bench: $(STAMP)
	$(BIN)/python bench/join.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
