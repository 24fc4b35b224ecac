# The two commands of the README: `make demo` (the main job on embedded defaults) and `make test`.
# Both install what they need on a fresh machine: a venv from PyPI, the Kafka broker's jars from Maven
# Central (through Maven), promtool and prometheus from Debian's packages.
# Two packages, one repository: worker/ (the product, ./pyproject.toml) and devtools/ecash_dev/ (the
# sandbox, the local broker, the process stack, the chaos, demo and hostile runs: devtools/pyproject.toml).
# The venv has both, editable; a production install (deploy/Dockerfile) has only the first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CODE := worker devtools tests bench

.PHONY: install demo test lint typecheck unit integration kafka-jars chaos chaos-small hostile bench bench-small clean

$(BIN)/.installed: pyproject.toml devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./devtools
	touch $@

install: $(BIN)/.installed

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
bench: install kafka-jars
	$(BIN)/python -m bench.run

bench-small: install kafka-jars
	$(BIN)/pytest tests/perf

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
