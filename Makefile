# The few commands people type. `make app` and `make test` set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: app test lint bench screenshots prepare clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.app-installed: requirements.txt requirements-nodeps.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.app-installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

prepare: $(VENV)/.app-installed  ## build the default model if it is missing (progress bar)
	$(BIN)/python -m model_zoo prepare

app: prepare  ## set up, prepare the default model, start the dashboard
	$(BIN)/streamlit run dashboard/app.py --server.port $(PORT)

test: $(VENV)/.dev-installed  ## set up, lint, and run the whole test suite (browser tests need /usr/bin/chromium)
	$(BIN)/ruff check .
	$(BIN)/mypy explainers model_zoo dashboard
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy explainers model_zoo dashboard

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/default_model.py
	$(BIN)/python bench/explainers.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
