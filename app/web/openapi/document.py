"""GET /openapi.json, built from the route table and the pydantic models; GET /docs to read it.

Nothing here is hand-copied JSON: paths and methods come from the app's routes (`walk`),
bodies from `app.schemas` (and `app.ai_sdk`'s request), the stream's events from the
dataclasses of `app.events`, and the
error codes of each operation from `app.errors.DOMAIN_ERRORS` (for the domain errors it may
raise) plus the few `ApiError`s its route raises itself. What a route takes (query parameters
with their bounds, headers) is said once per endpoint in `OPERATIONS`, next to the constants
the routes check (`MAX_CONVERSATIONS`…). Schemathesis holds the document to the service's real
answers in `make test` (tests/e2e/test_contract.py).

Two kinds of stream: ours, whose `data` is one JSON `Event`, and the Vercel AI SDK's UI message
stream (`/ai/chat`), whose chunks are the `ai` package's types, described here in words only
(`_UI_CHUNKS`): the package is their schema, and tests/clients runs it against us.

**OpenAPI 3.1, not 3.2.** 3.2 adds `itemSchema` for a stream's items. The tools that read this
document today, openapi-spec-validator, Schemathesis 4 and Swagger UI 5, all take 3.1, and
Schemathesis reads a 3.1 `text/event-stream` media type's `schema` as the schema of each event
(3.2's `itemSchema` by another name): an object whose `data` is JSON (`contentMediaType`) of the
`Event` union, discriminated by `type`. Moving to 3.2 is renaming `schema` to `itemSchema`.

**/docs** is Swagger UI 5 (the first major version that renders 3.1), its files from the
swagger-ui-py package, served by the service under /docs/assets: no CDN, nothing from another
origin. It is on outside production; in production only with `API_DOCS=on`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, compile_path
from starlette.staticfiles import StaticFiles

from app import events
from app.domain import (
    ConversationNotFound,
    IdempotencyKeyReused,
    RegenerateUnsupported,
    RunActive,
    RunNotFound,
    ShuttingDown,
    TaskNotFound,
    TooManyFollowers,
    TooManyRuns,
)
from app.protocols.ai_sdk import CHAT_ID_SCHEMA, DONE, AiChatRequest
from app.settings import Settings
from app.web.errors import DOMAIN_ERRORS
from app.web.routes import ai_sdk as ai_routes
from app.web.routes import runs as routes
from app.web.schemas import (
    ChatRequest,
    ChatResponse,
    ConversationPage,
    ErrorBody,
    MessagePage,
    RunOut,
    TaskCreate,
    TaskOut,
    TaskPage,
    TaskUpdate,
)
from app.web.streaming import MAX_SEQ

OPENAPI_VERSION = "3.1.0"
# The tag of routes `OPERATIONS` does not describe: documented from their docstrings only.
UNDESCRIBED = "undescribed"
EVENT_STREAM = "text/event-stream"
_REF = "#/components/schemas/"
# The largest id the routes read from a path or a query (18 digits: `routes._is_number`).
MAX_ID_ASKED = 10**18 - 1

Endpoint = Callable[..., Any]


def walk(table: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, list[str], Any]]:
    """Every route: its path template (as Starlette writes it), methods, and endpoint."""
    for route in table:
        if isinstance(route, Route):
            methods = sorted((route.methods or {"GET"}) - {"HEAD"})
            yield prefix + route.path, methods, route.endpoint
        elif isinstance(route, Mount):
            if route.routes:
                yield from walk(route.routes, prefix + route.path)
            else:
                yield prefix + route.path + "/{path:path}", ["GET"], route.app


class RouteTemplates:
    """The route template a request's path matches (`/api/{user_id}/tasks/{task_id}`), for
    metrics: a path that matches none is `unmatched`, so clients cannot mint labels."""

    def __init__(self, table: Sequence[BaseRoute]) -> None:
        self._patterns = [
            (compile_path(path)[0], _openapi_path(path)) for path, _, _ in walk(table)
        ]

    def __call__(self, path: str) -> str:
        return next((name for regex, name in self._patterns if regex.match(path)), "unmatched")


def _openapi_path(path: str) -> str:
    return re.sub(r"{(\w+)(:\w+)?}", r"{\1}", path)


# What each operation takes and answers, besides what the route table says.


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "query" or "header"
    schema: dict[str, Any]
    description: str
    example: Any = None


@dataclass(frozen=True)
class Operation:
    summary: str
    body: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None
    status: int = 200
    stream: bool = False
    ui_stream: bool = False  # the Vercel AI SDK's UI message stream, not our events
    no_content: str | None = None  # why it may answer 204
    params: tuple[Param, ...] = ()
    raises: tuple[type[Exception], ...] = ()
    errors: tuple[tuple[int, str], ...] = ()  # the ApiErrors its route raises itself
    fallback: bool = False


_LIMIT_CHECK = (422, "invalid_request")
_BODY_ERRORS = ((413, "body_too_large"), (422, "invalid_request"))
_ID_IN_PATH = ((404, "not_found"),)
_TURN_ERRORS = (ConversationNotFound, RunActive, TooManyRuns, IdempotencyKeyReused, ShuttingDown)


def _limit(default: int, maximum: int) -> Param:
    return Param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        f"How many, from 1 to {maximum}.",
    )


def _id_cursor(name: str, description: str) -> Param:
    return Param(
        name, "query", {"type": "integer", "minimum": 0, "maximum": MAX_ID_ASKED}, description
    )


_IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {
        "type": "string",
        "minLength": 1,
        "maxLength": routes.MAX_IDEMPOTENCY_KEY_CHARS,
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


_LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    {"type": "string", "pattern": f"^(([^:]*:)?{at_most(MAX_SEQ)})?$"},
    "Resume after this event: `<run_id>:<seq>` as the stream's `id:` lines say, or `<seq>` "
    "(empty: from the start).",
)
_LAST_EVENT_ID_QUERY = dataclasses.replace(_LAST_EVENT_ID, name="last_event_id", where="query")
_ACCESS_TOKEN = Param(
    "access_token",
    "query",
    {"type": "string"},
    "The token, for EventSource, which cannot send headers (this endpoint only).",
)

OPERATIONS: dict[Endpoint, Operation] = {
    routes.chat_stream: Operation(
        "One chat turn as a stream of events (or, with Last-Event-ID, a run resumed)",
        body=ChatRequest,
        stream=True,
        params=(_IDEMPOTENCY_KEY, _LAST_EVENT_ID),
        raises=(*_TURN_ERRORS, RunNotFound, TooManyFollowers),
        errors=_BODY_ERRORS,
    ),
    routes.chat: Operation(
        "One chat turn as one JSON object",
        body=ChatRequest,
        answer=ChatResponse,
        params=(_IDEMPOTENCY_KEY,),
        raises=(*_TURN_ERRORS, TooManyFollowers),
        errors=(
            *_BODY_ERRORS,
            (410, "replay_expired"),
            *((502, code) for code in events.ERROR_MESSAGES),
            *((503, code) for code in events.ERROR_MESSAGES),
        ),
    ),
    routes.list_conversations: Operation(
        "A page of the user's conversations, the most recently active first",
        answer=ConversationPage,
        params=(
            _limit(50, routes.MAX_CONVERSATIONS),
            Param(
                "before",
                "query",
                {"type": "string", "minLength": 1},
                "`next_before` of the previous page (opaque).",
            ),
        ),
        errors=(_LIMIT_CHECK,),
    ),
    routes.list_messages: Operation(
        "A conversation and its last messages, oldest first",
        answer=MessagePage,
        params=(
            _limit(200, routes.MAX_MESSAGES),
            _id_cursor("before", "`next_before` of the previous page: the messages before it."),
        ),
        raises=(ConversationNotFound,),
        errors=(*_ID_IN_PATH, _LIMIT_CHECK),
    ),
    routes.delete_conversation: Operation(
        "Delete a conversation and its messages",
        status=204,
        raises=(ConversationNotFound, RunActive),
        errors=_ID_IN_PATH,
    ),
    routes.conversation_stream: Operation(
        "The conversation's run in progress, as a stream",
        stream=True,
        no_content="No run is in progress, or the client has its last event.",
        params=(_LAST_EVENT_ID, _LAST_EVENT_ID_QUERY, _ACCESS_TOKEN),
        raises=(ConversationNotFound, TooManyFollowers),
        errors=(*_ID_IN_PATH, (422, "invalid_request")),
    ),
    routes.get_run: Operation(
        "A run: its status and last event", answer=RunOut, raises=(RunNotFound,)
    ),
    routes.run_events: Operation(
        "A run's events after Last-Event-ID, then followed live until its last",
        stream=True,
        no_content="The client has the last event of the ended run.",
        params=(_LAST_EVENT_ID, _LAST_EVENT_ID_QUERY, _ACCESS_TOKEN),
        raises=(RunNotFound, TooManyFollowers),
        errors=((422, "invalid_request"),),
    ),
    routes.cancel_run: Operation(
        "Stop a run (idempotent) and wait for its end", answer=RunOut, raises=(RunNotFound,)
    ),
    routes.list_tasks: Operation(
        "A page of the user's tasks, in the order they were added",
        answer=TaskPage,
        params=(
            Param(
                "status",
                "query",
                {"type": "string", "enum": ["pending", "completed", "all"], "default": "all"},
                "Which tasks.",
            ),
            _limit(200, routes.MAX_TASKS),
            _id_cursor("after", "`next_after` of the previous page."),
        ),
        errors=(_LIMIT_CHECK,),
    ),
    routes.create_task: Operation(
        "Add a task", body=TaskCreate, answer=TaskOut, status=201, errors=_BODY_ERRORS
    ),
    routes.update_task: Operation(
        "Change a task",
        body=TaskUpdate,
        answer=TaskOut,
        raises=(TaskNotFound,),
        errors=(*_ID_IN_PATH, *_BODY_ERRORS),
    ),
    routes.delete_task: Operation(
        "Delete a task", status=204, raises=(TaskNotFound,), errors=_ID_IN_PATH
    ),
    ai_routes.ai_chat: Operation(
        "One chat turn for the Vercel AI SDK's `useChat` (its `DefaultChatTransport`'s body), "
        "as the SDK's UI message stream",
        body=AiChatRequest,
        ui_stream=True,
        params=(_IDEMPOTENCY_KEY,),
        raises=(*_TURN_ERRORS, TooManyFollowers, RegenerateUnsupported),
        errors=_BODY_ERRORS,
    ),
    ai_routes.ai_chat_stream: Operation(
        "The run going in that chat, from its first event, as the SDK's stream (`useChat` "
        "with `resume: true`)",
        ui_stream=True,
        no_content="No run is going in that chat.",
        raises=(TooManyFollowers,),
        errors=_ID_IN_PATH,
    ),
    ai_routes.ai_chat_cancel: Operation(
        "Stop the run going in that chat (the SDK's `stop()` only aborts its fetch)",
        answer=RunOut,
        no_content="No run was going in that chat.",
        raises=(RunNotFound,),
        errors=_ID_IN_PATH,
    ),
    routes.health: Operation("200 while the process is up"),
    routes.ready: Operation(
        "200 when the database answers and its schema is current",
        errors=((503, "database_unavailable"), (503, "schema_outdated")),
    ),
    routes.metrics: Operation(
        "The service's metrics, in the Prometheus text format (summed over the workers)",
        errors=((401, "not_authenticated"),),
    ),
}

_AUTH_ERRORS = (
    (404, "not_found"),  # a path no route takes (an id that is not one)
    (401, "not_authenticated"),
    (401, "invalid_token"),
    (401, "token_expired"),
    (403, "forbidden"),
    (503, "auth_unavailable"),
    (503, "database_unavailable"),
    (503, "busy"),
)


def _domain_error(cls: type[Exception]) -> tuple[int, str]:
    """The status and code `DOMAIN_ERRORS` answers `cls` with, asked of the table itself."""
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except ValueError:  # Exception's own __init__: no arguments needed
        parameters = []
    sample_args = [
        "" if parameter.annotation in (str, "str") else 1
        for parameter in parameters
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    ]
    answer = next(DOMAIN_ERRORS[base] for base in cls.__mro__ if base in DOMAIN_ERRORS)
    error = answer(cls(*sample_args))
    return error.status_code, error.code


def _error_response(codes: Sequence[str]) -> dict[str, Any]:
    return {
        "description": "Error: " + ", ".join(f"`{code}`" for code in codes),
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        {"$ref": _REF + "ErrorBody"},
                        {
                            "properties": {
                                "error": {"properties": {"code": {"enum": sorted(set(codes))}}}
                            }
                        },
                    ]
                },
                "example": {"error": {"code": codes[0], "message": "…"}},
            }
        },
    }


def _stream_content(data: dict[str, Any], example: str, **fields: Any) -> dict[str, Any]:
    """A stream of Server-Sent Events, each with this `data` (and these other fields): the
    schema of each event, as OpenAPI 3.1 reads it (see the module's docstring)."""
    properties = {"data": data, **fields}
    schema = {"type": "object", "properties": properties}
    return {EVENT_STREAM: {"schema": schema, "example": example}}


_EVENTS = _stream_content(
    {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": _REF + "Event"},
    },
    'data: {"type":"text","content":"Added","seq":5}\n'
    "id: 7c9e6679-7425-40de-944b-e07fc1f90ae7:5\n\n",
    id={"type": "string", "description": "`<run_id>:<seq>`"},
)
_UI_CHUNKS = _stream_content(
    {
        "type": "string",
        "description": (
            "One UI message chunk as JSON (`start`, `text-delta`, `tool-output-available`, "
            "`finish`, `error`…: the `ai` package's `UIMessageChunk`), then `[DONE]` after the "
            "run's last (app/ai_sdk.py)."
        ),
    },
    'data: {"type":"text-delta","id":"text-2","delta":"Added"}\n\n' + DONE.decode(),
)


def _responses(operation: Operation, user_route: bool) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if operation.stream:
        answers["200"] = {"description": "The events", "content": _EVENTS}
    elif operation.ui_stream:
        answers["200"] = {"description": "The chunks", "content": _UI_CHUNKS}
    elif operation.status == 204:
        answers["204"] = {"description": "Done"}
    elif operation.answer is None:
        answers[str(operation.status)] = {"description": "OK"}
    else:
        answers[str(operation.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": _REF + operation.answer.__name__}}},
        }
    if operation.no_content:
        answers["204"] = {"description": operation.no_content}
    codes: dict[int, list[str]] = {}
    pairs = [
        *(_AUTH_ERRORS if user_route else ()),
        *(_domain_error(cls) for cls in operation.raises),
        *operation.errors,
    ]
    for status, code in pairs:
        if code not in codes.setdefault(status, []):
            codes[status].append(code)
    for status, names in sorted(codes.items()):
        answers[str(status)] = _error_response(names)
    if operation.fallback:
        answers["default"] = {
            "description": "An error",
            "content": {"application/json": {"schema": {"$ref": _REF + "ErrorBody"}}},
        }
    return answers


def _parameters(path: str, operation: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name, _ in re.findall(r"{(\w+)(:\w+)?}", path):
        schema: dict[str, Any] = {"type": "string"}
        if name.endswith(("conversation_id", "task_id")):
            schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID_ASKED}
        elif name == "user_id":
            schema = {"type": "string", "minLength": 1, "description": "The token's user."}
        elif name == "chat_id":
            schema = {**CHAT_ID_SCHEMA, "description": "The `id` the SDK's chat was given."}
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    for param in operation.params:
        entry: dict[str, Any] = {
            "name": param.name,
            "in": param.where,
            "required": False,
            "schema": param.schema,
            "description": param.description,
        }
        if param.example is not None:
            entry["example"] = param.example
        found.append(entry)
    return found


def _operation_id(method: str, path: str) -> str:
    return method.lower() + "_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _fallback(endpoint: Any) -> Operation:
    """A route `OPERATIONS` does not describe: its docstring, and the common answers."""
    doc = inspect.getdoc(endpoint) or str(getattr(endpoint, "__name__", ""))
    return Operation(doc.split("\n\n")[0].replace("\n", " "), fallback=True)


def event_schemas() -> dict[str, Any]:
    """Each event type of `app.events` as a JSON schema (its `type` a constant, with `seq`),
    and the `Event` union, discriminated by `type`."""
    found: dict[str, Any] = {}
    classes = get_args(events.Event)
    for cls in classes:
        schema = TypeAdapter(cls).json_schema()
        schema["properties"] = {
            "type": {"const": cls.type},
            **schema["properties"],
            "seq": {"type": "integer", "minimum": 1},
        }
        schema["required"] = ["type", *schema.get("required", []), "seq"]
        found[cls.__name__.removesuffix("Event") + "Event"] = schema
    found["Event"] = {
        "oneOf": [{"$ref": _REF + name} for name in found],
        "discriminator": {
            "propertyName": "type",
            "mapping": {cls.type: _REF + name for cls, name in zip(classes, found, strict=True)},
        },
    }
    return found


def _model_schemas(models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def document(table: Sequence[BaseRoute], settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of the routes in `table`."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods, endpoint in walk(table):
        operation = OPERATIONS.get(endpoint) or _fallback(endpoint)
        user_route = path.startswith("/api/{user_id}")
        for method in methods:
            entry: dict[str, Any] = {
                "operationId": _operation_id(method, path),
                "summary": operation.summary,
                "parameters": _parameters(path, operation),
                "responses": _responses(operation, user_route),
            }
            if operation.fallback:
                entry["tags"] = [UNDESCRIBED]
                entry["security"] = [{"bearer": []}] if user_route else []
            elif user_route:
                entry["tags"] = ["api"]
                entry["security"] = [{"bearer": []}] + (
                    [{"accessToken": []}] if _ACCESS_TOKEN in operation.params else []
                )
            elif endpoint is routes.metrics:
                entry["tags"] = ["service"]
                entry["security"] = [{"metricsToken": []}, {}]
            else:
                entry["tags"] = ["service"]
                entry["security"] = []
            if operation.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": _REF + operation.body.__name__}}
                    },
                }
            paths.setdefault(_openapi_path(path), {})[method.lower()] = entry
    models: list[type[BaseModel]] = [
        ChatRequest,
        ChatResponse,
        AiChatRequest,
        ConversationPage,
        MessagePage,
        TaskPage,
        TaskCreate,
        TaskUpdate,
        TaskOut,
        RunOut,
        ErrorBody,
    ]
    schemas = {**_model_schemas(models), **event_schemas()}
    schemas["ChatRequest"]["properties"]["message"]["maxLength"] = settings.max_message_chars
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "todo-chat",
            "version": "0.1.0",
            "description": (
                "The streaming backend of an AI todo-list assistant. Errors are "
                '`{"error": {"code", "message"}}`; the codes are stable. Streams are '
                "Server-Sent Events whose `data` is one JSON event (`Event`)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "accessToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "metricsToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


# The page at /docs, and its files.


def _swagger_ui_files() -> Path:
    """swagger-ui-py's copy of Swagger UI's files, found without importing the package (whose
    own code, for other frameworks, needs jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>todo-chat API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
});
"""
_DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
}


def docs_routes(settings: Settings, table: Callable[[], Sequence[BaseRoute]]) -> list[BaseRoute]:
    """/openapi.json always; /docs and its files when `settings.api_docs`."""
    cached: list[dict[str, Any]] = []

    async def openapi_json(request: Request) -> Response:
        if not cached:
            cached.append(document(table(), settings))
        return JSONResponse(cached[0])

    async def docs(request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE, headers=_DOCS_HEADERS)

    async def docs_init(request: Request) -> Response:
        return Response(_DOCS_INIT, media_type="text/javascript", headers=_DOCS_HEADERS)

    found: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    if settings.api_docs:
        found += [
            Route("/docs", docs, methods=["GET"]),
            Route("/docs/init.js", docs_init, methods=["GET"]),
            Mount("/docs/assets", StaticFiles(directory=_swagger_ui_files())),
        ]
    return found
