# The two commands a newcomer needs: `make demo` and `make test`. Each makes its own
# virtualenv (.venv) on first use; no root, no services to start by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-external up down bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## the end-to-end scenario, printed in numbers
	$(BIN)/hub demo

test: $(STAMP)  ## the test suite (embedded PostgreSQL/Redis unless HUB_DATABASE_URL/HUB_REDIS_URL are set)
	$(BIN)/pytest -q -p no:cacheprovider

test-external: $(STAMP)  ## the same suite against the machine's PostgreSQL 15 and Redis 7
	HUB_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
	HUB_REDIS_URL=redis://127.0.0.1:6379/0 $(BIN)/pytest -q -p no:cacheprovider

up: $(STAMP)  ## Dagster UI :3000, receiver :5000, sandboxes :8101-8103, in the background
	$(BIN)/hub up

down: $(STAMP)
	$(BIN)/hub down

bench: $(STAMP)  ## figures for the issues, written to BENCHMARKS.md
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	-$(BIN)/hub down
	rm -rf $(VENV) .hub-data dbt_project/target dbt_project/logs
