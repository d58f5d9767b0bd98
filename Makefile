# Two commands set up everything on a fresh machine (Python 3.11 + make): `make run`, `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DATA_DIR ?= .kpiloop-run

.PHONY: run demo test lint typecheck pytest bench bench-full bench-instructions clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/activate

## run: start the collector on embedded defaults (OTLP gRPC :4317, HTTP :4318, /metrics :9464; Ctrl-C stops)
run: $(BIN)/activate
	$(BIN)/kpiloop serve

## demo: replay the example sessions shipped in examples/ and print their KPI table
demo: $(BIN)/activate
	$(BIN)/kpiloop replay --data-dir $(RUN_DATA_DIR) examples/*.jsonl

## test: ruff (lint + format check), mypy and the whole pytest suite
test: lint typecheck pytest

lint: $(BIN)/activate
	$(BIN)/ruff check kpiloop tests bench
	$(BIN)/ruff format --check kpiloop tests bench

typecheck: $(BIN)/activate
	$(BIN)/mypy

pytest: $(BIN)/activate
	$(BIN)/pytest -q kpiloop tests

bench: $(BIN)/activate
	$(BIN)/python bench/replay.py --quick
	$(BIN)/python bench/hook.py --runs 10
	$(BIN)/python bench/close.py --quick
	$(BIN)/python bench/sessions.py --quick
	$(BIN)/python bench/ingest.py --quick

bench-full: $(BIN)/activate
	$(BIN)/python bench/replay.py --sizes-mb 250,1000
	$(BIN)/python bench/hook.py --runs 20
	$(BIN)/python bench/close.py --closes 200 --repeat 3
	$(BIN)/python bench/sessions.py --sessions 10000 --spans 1000
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/instructions.py

## bench-instructions: instructions per span of the replay and ingest loops (valgrind; repeatable on a busy machine)
bench-instructions: $(BIN)/activate
	$(BIN)/python bench/instructions.py

clean:
	rm -rf $(VENV) $(RUN_DATA_DIR) .mypy_cache .pytest_cache .ruff_cache
