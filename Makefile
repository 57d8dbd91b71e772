# `make run` and `make test` work on a fresh clone: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# the mt5linux bridge client, for the test that trades over it (its own pins are old: no deps)
	$(BIN)/python -m pip install --quiet --no-deps 'mt5linux==0.1.9'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tradeguard replay --fresh --settings examples/portfolio.toml
	$(BIN)/tradeguard report --settings examples/portfolio.toml

lint: $(STAMP)
	$(BIN)/ruff check tradeguard tests benchmarks examples
	$(BIN)/ruff format --check tradeguard tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	bash .ci/system-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	# nautilus_reference.py runs under NautilusTrader's own venv: replay_throughput.py --nautilus PYTHON
	for script in benchmarks/*.py; do [ "$${script##*/}" = nautilus_reference.py ] && continue; \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

docs: $(STAMP)
	$(BIN)/python -m tradeguard.reasons > docs/reasons.md

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
