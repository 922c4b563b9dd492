# Developer tasks. The README's Quickstart installs the test tools: pip install '.[test]'.
PYTHON ?= python

.PHONY: test fast lint format docs bench

test:  ## the whole suite, offline, spread over the cores
	$(PYTHON) -m pytest

fast:  ## without the slow end-to-end tests
	$(PYTHON) -m pytest -m "not slow"

lint:  ## formatting, lint and types (strict), as CI checks them
	ruff format --check .
	ruff check .
	mypy

format:
	ruff format .
	ruff check --fix .

docs:  ## regenerate the README's command reference and completions/ from --help
	$(PYTHON) tests/docs.py

bench:  ## every benchmark: ratios against baselines measured in the same run
	for bench in tests/benchmarks/*_bench.py; do $(PYTHON) $$bench || exit 1; done
