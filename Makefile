# The two commands a newcomer needs (see README.md):
#   make dev    set up, then run Chorus on SQLite with the demo campaign, the worker and a dev mailbox
#   make test   set up, then run every check and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: dev test lint setup bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Chorus needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

dev: $(STAMP)
	$(BIN)/chorus dev

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests migrations bench
	$(BIN)/mypy app tests bench

# pytest exits non-zero when no test ran (exit 5), so an empty run fails here too.
test: $(STAMP) lint
	scripts/ensure-browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The benchmark (see README, "Performance"): needs PostgreSQL on 127.0.0.1:5432 and wrk, and
# about 12 minutes of an otherwise quiet machine, plus eight webhook rounds of 30 s and the
# console's phase. BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
