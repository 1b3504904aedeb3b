# todo-chat: `make install && make run` to try it, `make test` to test it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
USER ?= alice
HOST ?= http://127.0.0.1:8000
USERS ?= 50
RUN_TIME ?= 30s

.PHONY: install run test test-fast test-deploy lint typecheck migrate token bench loadtest faults

# uv installs from uv.lock, the lock the Heroku buildpack installs from; this is the uv version
# that buildpack pins (its requirements/uv.txt), so both read and check the lock alike.
UV_VERSION ?= 0.12.5
# The pinned uv lives beside the environment, not in it: in a .venv that uv made (`uv sync`,
# `uv venv`), `uv sync` removes every package the lock does not name, uv and pip among them.
UV_HOME := $(VENV)/uv-tool
UV := $(UV_HOME)/bin/uv

# The JavaScript clients' installer: NPM=none skips them (the deploy test of this target does).
NPM ?= npm

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# A .venv that uv made has no pip: the standard library's ensurepip puts one in first.
	$(UV) --version 2>/dev/null | grep -qF 'uv $(UV_VERSION) ' || { \
		$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null; \
		$(BIN)/python -m pip install -qq --disable-pip-version-check --upgrade \
			--target $(UV_HOME) uv==$(UV_VERSION); }
	@# --compile-bytecode, as pip did: without it each start compiles what it imports where
	@# PYTHONDONTWRITEBYTECODE is set, as on this project's machines (import app.main: 9 s, not 5).
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --extra dev --compile-bytecode \
		--python $(BIN)/python
	@# .venv/bin/uv, as the README and the tests name it: a link the sync leaves alone.
	ln -sf ../uv-tool/bin/uv $(BIN)/uv
	@# The real JavaScript clients the tests run (tests/clients); skipped where Node is missing.
	if command -v $(NPM) >/dev/null; then $(NPM) ci --prefix tests/clients --no-audit --no-fund --silent; \
	else echo "npm not found: the JavaScript client tests will be skipped"; fi

run:
	$(BIN)/python -m app serve

test:
	$(BIN)/python -m pytest

# The unit tests alone (tests/unit: no database, no Node, no browser): seconds, not minutes.
test-fast:
	$(BIN)/python -m pytest -q tests/unit

test-deploy:
	$(BIN)/python -m pytest -m deploy tests/deploy

# The fault suite at the sizes its issue names (make test runs it smaller): 50 streams through a
# PostgreSQL restart, 500 clients hanging up, 200 that stop reading, 20 runs of a killed
# instance, 10 followed runs through SIGTERM. Prints what it measured.
faults:
	FAULT_SCALE=full $(BIN)/python -m pytest tests/faults -rP -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy app tests tools

migrate:
	$(BIN)/python -m app migrate

token:
	@$(BIN)/python -m app token $(USER)

BENCH_RUNS ?= 3

bench:
	$(BIN)/python -m tools.bench --runs $(BENCH_RUNS)
	$(MAKE) --no-print-directory bench-log bench-instances

# The event log's ceiling, PostgreSQL beside Redis (a redis-server of its own on a free port),
# with the ratio and CPU per 1,000 events; then two instances on one PostgreSQL, without and
# with Redis: the most runs streaming 50 tokens a second at once within a p99 lag of 50 ms.
.PHONY: bench-log bench-instances
bench-log:
	$(BIN)/python -m tools.log_ceiling --output bench-log-ceiling.json

bench-instances:
	$(BIN)/python -m tools.bench_instances --output bench-instances.json

# A flame graph of the service under one bench scenario (py-spy, sampling from outside the
# process without pausing it): `make profile` (a32), `make profile SCENARIO=c2000`.
SCENARIO ?= a32
PROFILE ?= profile-$(SCENARIO).svg

.PHONY: profile
profile:
	$(BIN)/python -m tools.bench --scenario $(SCENARIO) --runs 1 --profile $(PROFILE) \
		--output bench-profile-$(SCENARIO).json
	@echo "flame graph: $(PROFILE)"

loadtest:
	$(BIN)/locust -f tools/locustfile.py --headless --host $(HOST) --users $(USERS) \
		--spawn-rate 10 --run-time $(RUN_TIME) --stop-timeout 15 --only-summary

# The README's picture of the page, taken mid-answer by a browser test (docs/chat-page.png).
.PHONY: screenshot
screenshot:
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/browser/test_chat_page.py -k streams

# Mutation testing (tools/mutation.py, [tool.mutmut] in pyproject.toml): its survivors are
# explained in docs/mutation-report.md. Not part of make test.
.PHONY: mutate
mutate:
	$(BIN)/python -m tools.mutation --children $(MUTATE_CHILDREN)

MUTATE_CHILDREN ?= 2

# The offline model against its corpus: failures, pass rate, and µs per understood message.
.PHONY: bench-intent
bench-intent:
	$(BIN)/python -m tools.bench_intent

# The contract fuzzed longer than make test does: Schemathesis, 100 examples per operation.
.PHONY: fuzz
fuzz:
	CONTRACT_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/e2e/test_contract.py

FUZZ_EXAMPLES ?= 100
