# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.yaml
STAMP  := $(VENV)/.installed

.PHONY: run test test-container lint check clean

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
	$(MAKE) --no-print-directory test-container

# The container image (deploy/Dockerfile) built and run with Podman (tests/deploy/); the last step of
# `make test`. Installs the Debian packages it needs when missing and we may (root, apt-get); the
# tests skip, saying why, where Podman cannot run.
CONTAINER_DEPS := podman runc debootstrap uidmap slirp4netns passt fuse-overlayfs redis-server
test-container: $(STAMP)
	@missing=""; for c in podman runc debootstrap redis-server; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing system packages: $(CONTAINER_DEPS)" >&2; apt-get update -qq >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CONTAINER_DEPS) >/dev/null; fi
	$(BIN)/python -m pytest -q -p no:cacheprovider -s -m container tests/deploy

check: $(STAMP)
	$(BIN)/switchboard check --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# Load benchmark (benchmarks/README.md): mock upstream + router + load generator on this machine.
# Installs wrk (closed-loop generator) when it is missing and we may (root, apt-get); else a Python generator is used.
.PHONY: bench bench-quick
bench: $(STAMP) bench-wrk
	$(BIN)/pip install --quiet -e '.[test,speed,bench]'
	$(BIN)/python -m benchmarks.run --out benchmarks/results

bench-quick: $(STAMP) bench-wrk
	$(BIN)/pip install --quiet -e '.[test,speed,bench]'
	$(BIN)/python -m benchmarks.run --quick --out benchmarks/results

# Switchboard beside LiteLLM's proxy, one run (benchmarks/README.md, "Switchboard vs LiteLLM"): the first
# run installs litellm[proxy] (pinned in benchmarks/compare/install.py) into benchmarks/.venv-litellm, and
# wrk when it is missing and we may (root, apt-get). Full run ~5 min, quick ~1.5 min. COMPARE_ARGS: more options.
.PHONY: bench-compare bench-compare-quick bench-wrk
COMPARE_ARGS ?=
bench-compare: $(STAMP) bench-wrk
	$(BIN)/python -m benchmarks.compare --out benchmarks/results $(COMPARE_ARGS)

bench-compare-quick: $(STAMP) bench-wrk
	$(BIN)/python -m benchmarks.compare --quick --out benchmarks/results $(COMPARE_ARGS)

bench-wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing wrk (closed-loop load generator)" >&2; apt-get update -qq >/dev/null; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk is not installed: the closed loop uses the Python generator (apt-get install wrk)" >&2; fi; fi
