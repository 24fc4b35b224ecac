# The two commands of the README: `make demo` (the main job on embedded defaults) and `make test`.
# Both install what they need on a fresh machine: a venv from PyPI, the Kafka broker's jars from Maven
# Central (through Maven), promtool and prometheus from Debian's packages.
# Two packages, one repository: worker/ (the product, ./pyproject.toml) and devtools/ecash_dev/ (the
# sandbox, the local broker, the process stack, the chaos, demo and hostile runs: devtools/pyproject.toml).
# The venv has both, editable; a production install (deploy/Dockerfile) has only the first.
# Every third-party package comes from a lock with hashes (requirements/*.txt, docs/deploy.md "Reproducible
# builds"): the venv is rebuilt from scratch whenever the lock or a pyproject.toml changes, so it holds
# exactly the lock, nothing resolved at install time. `make lock` regenerates the locks.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CODE := worker devtools tests bench
DEV_LOCK := requirements/development.txt
LOCKS := $(DEV_LOCK) requirements/production.txt requirements/build.txt
UV_COMPILE := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--annotation-style split --custom-compile-command "make lock"

.PHONY: install lock lock-upgrade demo test lint typecheck unit integration kafka-jars chaos chaos-small hostile bench bench-small clean

$(BIN)/.installed: pyproject.toml devtools/pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . -e ./devtools
	$(BIN)/pip check -q
	touch $@

install: $(BIN)/.installed

# Regenerate the locks from pyproject.toml (and devtools/pyproject.toml), keeping every pin that still
# satisfies them; `make lock-upgrade` moves every package to its newest allowed version. Then `make install`
# (the venv follows the new lock) and `make test`. production.txt and build.txt are constrained by the
# development lock: the image runs the versions the tests ran.
# Needs only uv (its pin from the development lock): a pyproject.toml that gained a dependency cannot be
# installed until the lock has it.
$(BIN)/uv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes \
		-r <(awk '/^uv==/ {p = 1} p {print} p && !/\\$$/ {exit}' $(DEV_LOCK))

lock: $(BIN)/uv
	$(UV_COMPILE) $(UPGRADE) --no-emit-package ecash-worker --no-emit-package ecash-dev \
		requirements/development.in -o $(DEV_LOCK)
	$(UV_COMPILE) $(UPGRADE) --no-emit-package ecash-worker -c $(DEV_LOCK) \
		requirements/production.in -o requirements/production.txt
	$(UV_COMPILE) $(UPGRADE) -c $(DEV_LOCK) requirements/build.in -o requirements/build.txt

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

kafka-jars: install
	$(BIN)/python -m ecash_dev.kafka fetch

demo: install kafka-jars
	$(BIN)/ecash-worker demo

lint: install
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: install
	$(BIN)/mypy

test: install kafka-jars
	bash scripts/ensure-test-tools.sh
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

# The full chaos run (20,000 commands, kill -9 every few seconds, a broker crash): figures in docs/reliability.md
chaos: install kafka-jars
	$(BIN)/ecash-worker chaos --json-out chaos.json

chaos-small: install kafka-jars
	$(BIN)/pytest tests/chaos

# The hostile-input run (10,000 messages, half hostile, one worker): figures in docs/reliability.md
hostile: install kafka-jars
	$(BIN)/python -m ecash_dev.hostile --messages 10000 --seed 1 --json-out hostile.json

# The full benchmark (docs/performance.md) and its small version
# The whole campaign of docs/performance.md (hours: the soak alone is a million commands); its reports
# in .bench/ (bench/suite.py). One part: `.venv/bin/python -m bench.suite --part shares --commands 30000`.
# Then how long partitions stand idle after a rebalance (bench/takeover.py, half a minute).
bench: install kafka-jars
	$(BIN)/python -m bench.suite --out .bench
	$(BIN)/python -m bench.takeover --work-dir .bench/takeover

bench-small: install kafka-jars
	$(BIN)/pytest tests/perf

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
