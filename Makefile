# The two commands of the README:
#   make run    set up and start ChartVault on its embedded defaults at http://127.0.0.1:8000
#   make test   set up (with test dependencies) and run the whole test suite
.PHONY: run test test-fast checks setup setup-test setup-bench bench bench-quality bench-load bench-cli bench-reports lint

PY := .venv/bin/python

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh test

setup-bench:
	scripts/setup.sh bench

run: setup
	@mkdir -p "$${CHARTVAULT_DATA_DIR:-data}"
	@echo "ChartVault: data in $${CHARTVAULT_DATA_DIR:-./data}"
	@echo "  web pages: http://$${CHARTVAULT_HOST:-127.0.0.1}:$${CHARTVAULT_PORT:-8000}/   API docs: http://$${CHARTVAULT_HOST:-127.0.0.1}:$${CHARTVAULT_PORT:-8000}/docs"
	@echo "Make the first user (an administrator; it asks for a password of 12+ characters), then sign in:"
	@echo "  .venv/bin/chartvault user create admin --role admin --name 'First Admin'"
	@echo "API clients need a token of a user:  .venv/bin/chartvault token create --user admin --name 'first admin'"
	.venv/bin/chartvault serve

# Three test processes (pytest-xdist), each module kept whole on one of them so its fixtures are built once.
# Three on two cores: the suite waits as well as computes (servers starting, subprocesses, the browser,
# killed runs): 909 s of CPU in a 650 s run with three processes; four measured the same 643 s.
# Modules go out heaviest first (tests/weights.json; refresh it with scripts/test_weights.py after a run with
# --durations=0). The 20 slowest tests are listed at the end, for whoever keeps the suite under ten minutes.
TEST_WORKERS ?= 3

test: setup-test checks
	OMP_THREAD_LIMIT=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20 $(PYTEST_ARGS)

# The edit-test loop (about three minutes): the tests not marked slow (none over 10 s; no live server,
# browser or whole pipeline run), on SQLite only. `make test` runs everything, PostgreSQL included.
test-fast: setup-test
	OMP_THREAD_LIMIT=1 $(PY) -m pytest -q -m "not slow and not postgres" $(PYTEST_ARGS)

bench: setup-bench
	nice -n 5 $(PY) -m bench.pipeline

bench-quality: setup-test
	$(PY) -m bench.quality --preprocess both

bench-load: setup-test
	nice -n 10 $(PY) -m bench.load

bench-cli: setup-test
	$(PY) -m bench.cli

bench-reports: setup-test
	nice -n 5 $(PY) -m bench.reports --docs 1000000

lint: setup-test checks

# Style, the architecture's import contracts (pyproject.toml [tool.importlinter]) and types (mypy: strict on
# the services, search, OCR and classification): what `make test` (and so CI) runs before the tests.
checks:
	.venv/bin/ruff check chartvault tests bench
	.venv/bin/ruff format --check chartvault tests bench
	.venv/bin/lint-imports
	.venv/bin/mypy
