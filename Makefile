# todo-chat: `make install && make run` to try it, `make test` to test it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
USER ?= alice
HOST ?= http://127.0.0.1:8000
USERS ?= 50
RUN_TIME ?= 30s

.PHONY: install run test lint typecheck migrate token bench loadtest

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The real JavaScript clients the tests run (tests/clients); skipped where Node is missing.
	if command -v npm >/dev/null; then npm ci --prefix tests/clients --no-audit --no-fund --silent; \
	else echo "npm not found: the JavaScript client tests will be skipped"; fi

run:
	$(BIN)/python -m app serve

test:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy app tests

migrate:
	$(BIN)/python -m app migrate

token:
	@$(BIN)/python -m app token $(USER)

BENCH_RUNS ?= 3

bench:
	$(BIN)/python -m tests.load.bench --runs $(BENCH_RUNS)

loadtest:
	$(BIN)/python -m pip install --quiet -e '.[load]'
	$(BIN)/locust -f tests/load/locustfile.py --headless --host $(HOST) --users $(USERS) \
		--spawn-rate 10 --run-time $(RUN_TIME) --stop-timeout 15 --only-summary

# The offline model against its corpus: failures, pass rate, and µs per understood message.
.PHONY: bench-intent
bench-intent:
	$(BIN)/python -m tests.unit.test_offline_corpus
