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
	scripts/system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

check: $(STAMP)
	$(BIN)/switchboard check --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# Load benchmark (benchmarks/README.md): mock upstream + router + load generator on this machine.
# `apt-get install wrk` first for the closed-loop scenarios (else a Python generator is used).
.PHONY: bench bench-quick
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,speed,bench]'
	$(BIN)/python -m benchmarks.run --out benchmarks/results

bench-quick: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,speed,bench]'
	$(BIN)/python -m benchmarks.run --quick --out benchmarks/results
