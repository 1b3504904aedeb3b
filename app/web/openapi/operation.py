"""How a routes module documents an endpoint: an `ApiRoute` carries its OpenAPI `Operation`, and
`document` reads it off the route table. Adding an endpoint is adding an `ApiRoute` beside its
function; nothing central changes.

What an operation says beyond the route itself: its summary, what it takes (body, query
parameters and headers with their bounds, path parameters that are not plain strings), what it
answers (a body, a stream, a 204), and which errors (the domain errors it may raise, whose
status and code `app.web.errors.DOMAIN_ERRORS` gives, the `ApiError`s its route raises
itself, and what each of its parameters is refused with). The parameters several routes share
are here, next to the constants they document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain import (
    ConversationNotFound,
    EventLogUnavailable,
    IdempotencyKeyReused,
    RunActive,
    ShuttingDown,
    TooManyRuns,
)
from app.events import MAX_SEQ
from app.protocols.base import EVENT_STREAM
from app.web.requests import MAX_ID_ASKED, MAX_IDEMPOTENCY_KEY_CHARS

REF = "#/components/schemas/"

Schema = dict[str, Any]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    """A query parameter or a header."""

    name: str
    where: str  # "query" or "header"
    schema: Schema
    description: str
    example: Any = None
    errors: tuple[tuple[int, str], ...] = ((422, "invalid_request"),)
    """What the route answers a value it cannot read with."""


@dataclass(frozen=True)
class Stream:
    """A stream of Server-Sent Events, as its 200 answer documents it."""

    description: str
    content: Schema


@dataclass(frozen=True)
class Operation:
    summary: str
    body: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None
    status: int = 200
    stream: Stream | None = None
    no_content: str | None = None  # why it may answer 204
    params: tuple[Param, ...] = ()
    path_params: Mapping[str, Schema] = field(default_factory=dict)  # others are strings
    raises: tuple[type[Exception], ...] = ()
    errors: tuple[tuple[int, str], ...] = ()  # the ApiErrors its route raises itself
    security: tuple[Mapping[str, list[str]], ...] | None = None  # outside /api: none
    fallback: bool = False  # no operation was declared: the route's docstring only


class ApiRoute(Route):
    """A route and the operation that documents it in /openapi.json."""

    def __init__(
        self, path: str, endpoint: Endpoint, *, methods: list[str], operation: Operation
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.operation = operation


# What several operations share.

BODY_ERRORS = ((413, "body_too_large"), (422, "invalid_request"))
ID_SCHEMA: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID_ASKED}
TURN_ERRORS = (
    ConversationNotFound,
    RunActive,
    TooManyRuns,
    IdempotencyKeyReused,
    ShuttingDown,
    EventLogUnavailable,
)
"""What `ChatService.send` refuses a send with."""


def limit_param(default: int, maximum: int) -> Param:
    return Param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        f"How many, from 1 to {maximum}.",
    )


def id_cursor(name: str, description: str) -> Param:
    return Param(name, "query", ID_SCHEMA, description)


IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
        "pattern": "^[\\x20-\\x7e]+$",
    },
    "A send sent again with the same key gets the first send's run instead of a new turn.",
    "send-7f3a",
)


def at_most(limit: int) -> str:
    """A regular expression for the decimal numbers from 0 to `limit` written in at most as
    many digits as `limit` has (leading zeros allowed): what `parse_event_id` reads as a seq."""
    digits = str(limit)
    alternatives = [f"[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for at, digit in enumerate(digits):
        if digit != "0":  # this digit smaller, anything after it
            rest = len(digits) - at - 1
            alternatives.append(f"{digits[:at]}[0-{int(digit) - 1}][0-9]{{{rest}}}")
    alternatives.append(digits)
    return "(" + "|".join(alternatives) + ")"


LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    {"type": "string", "pattern": f"^(([^:]*:)?{at_most(MAX_SEQ)})?$"},
    "Resume after this event: `<run_id>:<seq>` as the stream's `id:` lines say, or `<seq>` "
    "(empty: from the start).",
)
LAST_EVENT_ID_QUERY = dataclasses.replace(LAST_EVENT_ID, name="last_event_id", where="query")
ACCESS_TOKEN = Param(
    "access_token",
    "query",
    {"type": "string"},
    "The token, for EventSource, which cannot send headers (this endpoint only).",
    errors=((401, "invalid_token"),),
)
RESUME_PARAMS = (LAST_EVENT_ID, LAST_EVENT_ID_QUERY, ACCESS_TOKEN)
"""What a GET an EventSource reconnects to takes: where to resume, and its token."""


def stream_content(data: Schema, example: str, **fields: Any) -> Schema:
    """A stream of Server-Sent Events, each with this `data` (and these other fields): the
    schema of each event, as OpenAPI 3.1 reads it (see `app.web.openapi.document`)."""
    properties = {"data": data, **fields}
    schema = {"type": "object", "properties": properties}
    return {EVENT_STREAM: {"schema": schema, "example": example}}


EVENTS = Stream(
    "The events",
    stream_content(
        {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": REF + "Event"},
        },
        'data: {"type":"text","content":"Added","seq":5}\n'
        "id: 7c9e6679-7425-40de-944b-e07fc1f90ae7:5\n\n",
        id={"type": "string", "description": "`<run_id>:<seq>`"},
    ),
)
"""Our own stream (`app.protocols.native`): each event's `data` is one JSON `Event`."""
