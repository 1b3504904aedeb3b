"""What the routes read from a request, read one way for all of them: the body (within its size
bound), ids in the path and the query, page sizes, `Last-Event-ID` and `Idempotency-Key`.

Each refuses what it cannot read with an `ApiError` (422, or 404 for an id in a path, which
names no resource), never a 500; /openapi.json documents the same bounds (`app.web.openapi`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from app.domain import Thread
from app.protocols.client_input import client_id_is_valid
from app.protocols.native import parse_event_id
from app.web.errors import ApiError, invalid_request
from app.web.state import state_of

Body = TypeVar("Body", bound=BaseModel)

MAX_IDEMPOTENCY_KEY_CHARS = 255
ID_DIGITS = 18
MAX_ID_ASKED = 10**ID_DIGITS - 1
"""The largest id read from a path or a query (a PostgreSQL bigint holds every one)."""


def user_id(request: Request) -> str:
    """The user the request acts for: the path's, which `RequireUser` held to the token's."""
    user: str = request.path_params["user_id"]
    return user


def thread_in_path(request: Request, protocol: str, name: str) -> Thread:
    """The client's thread (a chat, an AG-UI thread) the path names; 404 for an id no thread
    can have."""
    client_id: str = request.path_params[name]
    if not client_id_is_valid(client_id):
        raise ApiError(404, "not_found", "No such resource.")
    return Thread(protocol, client_id)


def is_number(raw: str, *, digits: int) -> bool:
    """ASCII digits, at most `digits` of them (`str.isdigit()` alone also takes other scripts'
    digits and superscripts, which `int()` refuses or no column holds)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= digits


def id_in_path(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not is_number(raw, digits=ID_DIGITS):
        raise ApiError(404, "not_found", "No such resource.")
    return int(raw)


def id_in_query(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not is_number(raw, digits=ID_DIGITS):
        raise ApiError(422, "invalid_request", f"{name}: must be an id from the previous page")
    return int(raw)


def page_size(request: Request, default: int, maximum: int) -> int:
    """The `limit` query parameter."""
    raw = request.query_params.get("limit", str(default))
    if not is_number(raw, digits=6) or not 1 <= int(raw) <= maximum:
        raise ApiError(422, "invalid_request", f"limit: must be a whole number from 1 to {maximum}")
    return int(raw)


async def read_body(
    request: Request, schema: type[Body], *, limit: int | None = None, **context: Any
) -> Body:
    """The JSON body as `schema`, validated with `context`; 413 past `limit` bytes (by default
    the `MAX_BODY_BYTES` setting), whatever `Content-Length` said."""
    limit = limit or state_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if is_number(declared, digits=30) and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"The body must be at most {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"The body must be at most {limit} bytes.")
    try:
        return schema.model_validate_json(bytes(body), context=context)
    except ValidationError as error:
        raise invalid_request(error) from None


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (
        0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isascii() and key.isprintable()
    ):
        raise ApiError(
            422,
            "invalid_request",
            f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
        )
    return key


def sent_last_event_id(request: Request) -> str | None:
    """`Last-Event-ID` as sent, or the `last_event_id` parameter (for an EventSource, which
    cannot send the header on its first connection)."""
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id")


def last_event_id(request: Request, run_id: str | None = None) -> tuple[str | None, int]:
    """The run and sequence number a client asks to resume after (`sent_last_event_id`); when
    `run_id` is given, the id must name that run, or none."""
    raw = sent_last_event_id(request)
    if not raw:
        return run_id, 0
    try:
        named_run, seq = parse_event_id(raw)
        if run_id is not None and named_run not in ("", run_id):
            raise ValueError("another run's event id")
    except ValueError:
        raise ApiError(
            422, "invalid_request", "last_event_id: not an event id of this run"
        ) from None
    return named_run or run_id, seq
