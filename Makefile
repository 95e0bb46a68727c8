# The two commands of the README:
#   make run    set up and start ChartVault on its embedded defaults at http://127.0.0.1:8000
#   make test   set up (with test dependencies) and run the whole test suite
.PHONY: run test setup setup-test setup-bench bench bench-quality bench-load lint

PY := .venv/bin/python

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh test

setup-bench:
	scripts/setup.sh bench

run: setup
	@mkdir -p "$${CHARTVAULT_DATA_DIR:-data}"
	@echo "ChartVault: data in $${CHARTVAULT_DATA_DIR:-./data}; API docs at http://$${CHARTVAULT_HOST:-127.0.0.1}:$${CHARTVAULT_PORT:-8000}/docs"
	@echo "Every route but /health needs a token. Make the first admin token with:"
	@echo "  .venv/bin/chartvault token create --role admin --name 'first admin'"
	.venv/bin/chartvault serve

test: setup-test
	.venv/bin/ruff check chartvault tests bench
	OMP_THREAD_LIMIT=1 $(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup-bench
	nice -n 5 $(PY) -m bench.pipeline

bench-quality: setup-test
	$(PY) -m bench.quality --preprocess both

bench-load: setup-test
	nice -n 10 $(PY) -m bench.load

lint: setup-test
	.venv/bin/ruff check chartvault tests bench
	.venv/bin/ruff format --check chartvault tests bench
