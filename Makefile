# Two commands for a fresh machine with Python 3.10+ and make:
#   make demo   the whole story on the embedded Twinne emulator
#   make test   every check: lint, format, types, tests with branch coverage
# Both create .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aiotwinne demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict aiotwinne

pytest: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -W error $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

# The reliability suite (tests/reliability) at the sizes docs/reliability.md
# reports: 100,000 bulk tokens, 1,000 browsers, 20 restarts... (several minutes).
# Figures go to benchmarks/results/soak.json and soak.md.
soak: $(STAMP)
	AIOTWINNE_SOAK=1 AIOTWINNE_FIGURES=benchmarks/results/soak.json \
		$(BIN)/python -m pytest -W error -p no:cacheprovider tests/reliability $(PYTEST_ARGS)

# Benchmarks (not part of `make test`): writes benchmarks/results/latest.{json,md,png}.
# BENCH_ARGS=--quick for a short run; see benchmarks/README.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache .hypothesis
