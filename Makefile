# The two commands: `make run` (set up, demo data, serve on SQLite) and `make test` (set up, the fast
# suite in two processes); `make test-slow` runs the rest (fault, browser and fuzzing tests), CI both.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
OFFICERS ?= 2000

.PHONY: run test test-slow setup lint clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || PY=python3; \
	  test -x $(BIN)/python || $${PY:-python3} -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/app db upgrade
	$(BIN)/app demo-data --officers $(OFFICERS) --if-empty
	$(BIN)/app exams import exam_banks
	$(BIN)/app serve --host $(HOST) --port $(PORT)

test:
	bash scripts/test.sh

test-slow:
	bash scripts/test.sh --slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
