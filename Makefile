# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.yaml
STAMP  := $(VENV)/.installed

.PHONY: run test lint check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,speed]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/switchboard serve --config $(CONFIG)

test: $(STAMP)
	$(BIN)/ruff check router providers tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

check: $(STAMP)
	$(BIN)/switchboard check --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check router providers tests benchmarks

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
