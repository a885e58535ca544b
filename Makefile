# Two commands do everything on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit integration e2e bench clean

install: $(STAMP)

$(STAMP): pyproject.toml overrides.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python --override overrides.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/gateway up

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit tests/contract

integration: install
	$(BIN)/pytest -q tests/integration

e2e: install
	$(BIN)/pytest -q tests/e2e

bench: install
	$(BIN)/python bench/gateway_bench.py

clean:
	rm -rf .gateway .pytest_cache .mypy_cache .ruff_cache
