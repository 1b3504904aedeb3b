"""Errors as clients see them: a status code and `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from app.db.outage import is_outage
from app.domain import (
    ConversationNotFound,
    EventLogUnavailable,
    IdempotencyKeyReused,
    RegenerateUnsupported,
    RunActive,
    RunNotFound,
    ShuttingDown,
    TaskNotFound,
    TooManyFollowers,
    TooManyRuns,
)
from app.metrics import REFUSALS

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


class ApiError(Exception):
    def __init__(self, status_code: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **details: Any,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def invalid_request(error: ValidationError) -> ApiError:
    fields = [
        {"field": ".".join(str(part) for part in issue["loc"]) or "body", "message": issue["msg"]}
        for issue in error.errors(include_url=False, include_input=False, include_context=False)
    ]
    summary = "; ".join(f"{field['field']}: {field['message']}" for field in fields)
    return ApiError(422, "invalid_request", summary, fields=fields)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, **exc.details)


def _run_active(exc: Exception) -> ApiError:
    assert isinstance(exc, RunActive)
    message = (
        "This conversation is still answering. Wait for it, follow it, or cancel it "
        '(a new message may say "cancel_active": true).'
    )
    return ApiError(409, "run_active", message, run_id=exc.run_id)


def _too_many_runs(exc: Exception) -> ApiError:
    assert isinstance(exc, TooManyRuns)
    message = f"At most {exc.limit} answers can be in progress at once."
    return ApiError(429, "too_many_runs", message)


def _too_many_followers(exc: Exception) -> ApiError:
    assert isinstance(exc, TooManyFollowers)
    message = f"At most {exc.limit} streams can follow answers at once. Close one first."
    return ApiError(429, "too_many_streams", message)


def _fixed(status_code: int, code: str, message: str) -> Callable[[Exception], ApiError]:
    return lambda _: ApiError(status_code, code, message)


# The one table from domain errors to what clients see: a route raises the domain error and
# never words its response itself, so no route can forget a mapping or reword one.
DOMAIN_ERRORS: dict[type[Exception], Callable[[Exception], ApiError]] = {
    ConversationNotFound: _fixed(404, "conversation_not_found", "No such conversation."),
    TaskNotFound: _fixed(404, "task_not_found", "No such task."),
    RunNotFound: _fixed(404, "run_not_found", "No such run."),
    RunActive: _run_active,
    TooManyRuns: _too_many_runs,
    TooManyFollowers: _too_many_followers,
    IdempotencyKeyReused: _fixed(
        422,
        "idempotency_key_reused",
        "This Idempotency-Key was sent before with another request: use a new key.",
    ),
    RegenerateUnsupported: _fixed(
        422,
        "regenerate_unsupported",
        "An answer cannot be regenerated: send the message again as a new message.",
    ),
    ShuttingDown: _fixed(
        503, "shutting_down", "The service is restarting. Please try again shortly."
    ),
    EventLogUnavailable: _fixed(
        503,
        "event_log_unavailable",
        "The service cannot reach its event log. Please try again shortly.",
    ),
}


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    # By the class's ancestry, as Starlette chose this handler: a subclass answers as its base.
    answer = next(DOMAIN_ERRORS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_ERRORS)(exc)
    if answer.status_code in (409, 429):
        REFUSALS.labels(str(answer.status_code), answer.code).inc()
    if answer.status_code == 503:  # a refusal for now: when to ask again
        return error_response(
            503, answer.code, answer.message, headers={"Retry-After": "5"}, **answer.details
        )
    return await handle_api_error(request, answer)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = "No such resource." if exc.status_code == 404 else str(exc.detail)
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def handle_database_error(request: Request, exc: Exception) -> Response:
    """503 when the database cannot be reached (restarting, gone; see `app.db.outage`): the
    request may be sent again. Anything else the database raised is a bug: 500."""
    if not is_outage(exc):
        return await handle_unexpected(request, exc)
    logger.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return error_response(
        503,
        "database_unavailable",
        "The service cannot reach its database. Please try again shortly.",
        headers={"Retry-After": "5"},
    )


async def handle_busy(request: Request, exc: Exception) -> Response:
    logger.warning("no database connection in time for %s %s", request.method, request.url.path)
    return error_response(
        503, "busy", "The service is busy. Please try again shortly.", headers={"Retry-After": "5"}
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    if is_outage(exc):
        return await handle_database_error(request, exc)
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def not_authenticated(conn: HTTPConnection, code: str, message: str) -> JSONResponse:
    return error_response(401, code, message, headers={"WWW-Authenticate": "Bearer"})
