"""The one table from domain errors to HTTP: every error a service can raise has its answer."""

from __future__ import annotations

import inspect

import app.domain
from app.domain import AgentFailed, NotFound, RunActive, TooManyRuns
from app.web.errors import DOMAIN_ERRORS

# Not HTTP answers: the base class of the 404s, and a failure that ends a stream with an event.
NOT_IN_THE_TABLE = {NotFound, AgentFailed}


def test_every_domain_error_has_an_answer() -> None:
    errors = {
        cls
        for _, cls in inspect.getmembers(app.domain, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == app.domain.__name__
    }
    assert errors - NOT_IN_THE_TABLE == set(DOMAIN_ERRORS)


def test_answers_carry_what_the_client_needs() -> None:
    active = DOMAIN_ERRORS[RunActive](RunActive("run-1"))
    assert (active.status_code, active.code, active.details) == (
        409,
        "run_active",
        {"run_id": "run-1"},
    )
    too_many = DOMAIN_ERRORS[TooManyRuns](TooManyRuns(3))
    assert (too_many.status_code, too_many.code) == (429, "too_many_runs")
    assert "At most 3 " in too_many.message
    for error, answer in DOMAIN_ERRORS.items():
        if issubclass(error, NotFound):
            assert answer(error()).status_code == 404
