# Two commands for a fresh machine with Python 3.10+ and make:
#   make demo   the whole story on the embedded Twinne emulator
#   make test   every check: lint, format, types, tests with branch coverage
# Both create .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest matrix bench soak clean

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

# The supported range, which `make test` (one Python, the newest dependencies) does
# not show: the tests on every CPython 3.10-3.13 on this machine with the newest
# dependencies, and once on the oldest with every `>=` bound in pyproject.toml pinned
# to exactly that version. Each run has its own .venv-matrix/<run>, made on first use,
# and log, .venv-matrix/<run>.log; a table at the end gives python, deps, result and
# seconds, and any failed run fails the target. A CPython that is not here is reported;
# with MATRIX_ARGS=--strict (.ci/run) it is a failure. Two runs at a time (2 cores).
# .ci/run adds --skip-main: the run on .venv's own CPython with the newest releases
# is the one `make test` has just made.
# Only the tests, with -W error: lint, types and coverage are `make test`'s. The
# reliability suite (tests/reliability, about a minute a run) is left out too, so
# that .ci/run (`make test`, then this) stays well inside CI's time: `make test`
# runs it on the newest; MATRIX_PYTEST_ARGS= brings it back here. So is the benchmark
# instruction count (tests/test_benchmarks_instructions.py, valgrind, under a minute),
# which measures our code, not the Python it runs on.
# tools/matrix.py --help for one run (`make matrix MATRIX_ARGS=floors`) and more.
MATRIX_ARGS ?=
MATRIX_PYTEST_ARGS ?= --ignore=tests/reliability --ignore=tests/test_benchmarks_instructions.py
matrix: $(STAMP)
	$(BIN)/python tools/matrix.py --pytest-args='$(MATRIX_PYTEST_ARGS)' $(MATRIX_ARGS)

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
	rm -rf $(VENV) .venv-matrix .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache .hypothesis
