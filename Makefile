# todo-chat: `make install && make run` to try it, `make test` to test it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
USER ?= alice

.PHONY: install run test lint typecheck migrate token

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'

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
