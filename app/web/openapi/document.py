"""GET /openapi.json, built from the route table, the operations its routes declare, and the
pydantic models.

Nothing here is hand-copied JSON, and nothing names an endpoint: paths and methods come from the
app's routes (`walk`); what each takes and answers from the `Operation` its `ApiRoute` carries
(`app.web.openapi.operation`), declared beside the endpoint in its routes module; the bodies'
schemas from the models those operations name; the stream's events from the dataclasses of
`app.events`; the error codes of each operation from `app.web.errors.DOMAIN_ERRORS` (for the
domain errors it may raise) plus the few `ApiError`s its route raises itself. A route that
declares no operation (the page, its files, /docs) is documented from its docstring, tagged
`undescribed`. Schemathesis holds the document to the service's real answers in `make test`
(tests/e2e/test_contract.py).

Each protocol's stream is described by its own routes module: ours, whose `data` is one JSON
`Event` (`operation.EVENTS`); the Vercel AI SDK's UI message stream, whose chunks are the `ai`
package's types, described in words only: the package is their schema, and tests/clients
runs it against us.

**OpenAPI 3.1, not 3.2.** 3.2 adds `itemSchema` for a stream's items. The tools that read this
document today, openapi-spec-validator, Schemathesis 4 and Swagger UI 5, all take 3.1, and
Schemathesis reads a 3.1 `text/event-stream` media type's `schema` as the schema of each event
(3.2's `itemSchema` by another name): an object whose `data` is JSON (`contentMediaType`) of the
`Event` union, discriminated by `type`. Moving to 3.2 is renaming `schema` to `itemSchema`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, get_args, runtime_checkable

from pydantic import BaseModel, TypeAdapter
from starlette.routing import BaseRoute

from app import events
from app.settings import Settings
from app.web.errors import DOMAIN_ERRORS
from app.web.openapi.operation import ACCESS_TOKEN, REF, Operation, Schema
from app.web.route_table import openapi_path, walk
from app.web.schemas import ErrorBody

OPENAPI_VERSION = "3.1.0"
# The tag of routes that declare no operation: documented from their docstrings only.
UNDESCRIBED = "undescribed"
USER_PATHS = "/api/{user_id}"

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


@runtime_checkable
class BoundBySettings(Protocol):
    """A body whose schema has a bound a setting sets (`ChatRequest`: `MAX_MESSAGE_CHARS`)."""

    @classmethod
    def bound_schema(cls, schema: Schema, settings: Settings) -> None: ...


def document(table: Sequence[BaseRoute], settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of the routes in `table`."""
    paths: dict[str, dict[str, Any]] = {}
    models: dict[str, type[BaseModel]] = {}
    for entry in walk(table):
        operation = entry.operation or _fallback(entry.endpoint)
        for model in (operation.body, operation.answer):
            if model is not None:
                models.setdefault(model.__name__, model)
        for method in entry.methods:
            paths.setdefault(openapi_path(entry.path), {})[method.lower()] = _operation(
                method, entry.path, operation
            )
    models.setdefault(ErrorBody.__name__, ErrorBody)
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
            "schemas": {**_model_schemas(models.values(), settings), **event_schemas()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "accessToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "metricsToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _operation(method: str, path: str, operation: Operation) -> dict[str, Any]:
    user_route = path.startswith(USER_PATHS)
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
            [{"accessToken": []}] if ACCESS_TOKEN in operation.params else []
        )
    else:
        entry["tags"] = ["service"]
        entry["security"] = [dict(scheme) for scheme in operation.security or ()]
    if operation.body is not None:
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF + operation.body.__name__}}},
        }
    return entry


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
                        {"$ref": REF + "ErrorBody"},
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


def _responses(operation: Operation, user_route: bool) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if operation.stream is not None:
        answers["200"] = {
            "description": operation.stream.description,
            "content": operation.stream.content,
        }
    elif operation.status == 204:
        answers["204"] = {"description": "Done"}
    elif operation.answer is None:
        answers[str(operation.status)] = {"description": "OK"}
    else:
        answers[str(operation.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": REF + operation.answer.__name__}}},
        }
    if operation.no_content:
        answers["204"] = {"description": operation.no_content}
    codes: dict[int, list[str]] = {}
    pairs = [
        *(_AUTH_ERRORS if user_route else ()),
        *(_domain_error(cls) for cls in operation.raises),
        *operation.errors,
        *(error for param in operation.params for error in param.errors),
    ]
    for status, code in pairs:
        if code not in codes.setdefault(status, []):
            codes[status].append(code)
    for status, names in sorted(codes.items()):
        answers[str(status)] = _error_response(names)
    if operation.fallback:
        answers["default"] = {
            "description": "An error",
            "content": {"application/json": {"schema": {"$ref": REF + "ErrorBody"}}},
        }
    return answers


def _parameters(path: str, operation: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name, _ in re.findall(r"{(\w+)(:\w+)?}", path):
        schema: Schema = {"type": "string"}
        if name in operation.path_params:
            schema = operation.path_params[name]
        elif name == "user_id":
            schema = {"type": "string", "minLength": 1, "description": "The token's user."}
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
    """A route that declares no operation: its docstring, and the common answers."""
    doc = inspect.getdoc(endpoint) or str(getattr(endpoint, "__name__", ""))
    return Operation(doc.split("\n\n")[0].replace("\n", " "), fallback=True)


def event_schemas() -> dict[str, Any]:
    """Each event type of `app.events` as a JSON schema (its `type` a constant, with `seq`),
    and the `Event` union, discriminated by `type`."""
    found: dict[str, Any] = {}
    classes = get_args(events.Event)
    for cls in classes:
        schema = TypeAdapter(cls).json_schema()
        for name in events.omitted_when_none(cls):
            schema["properties"][name] = _never_null(schema["properties"][name])
        schema["properties"] = {
            "type": {"const": cls.type},
            **schema["properties"],
            "seq": {"type": "integer", "minimum": 1},
        }
        schema["required"] = ["type", *schema.get("required", []), "seq"]
        found[cls.__name__.removesuffix("Event") + "Event"] = schema
    found["Event"] = {
        "oneOf": [{"$ref": REF + name} for name in found],
        "discriminator": {
            "propertyName": "type",
            "mapping": {cls.type: REF + name for cls, name in zip(classes, found, strict=True)},
        },
    }
    return found


def _never_null(field: dict[str, Any]) -> dict[str, Any]:
    """A field the event's JSON leaves out rather than sending null: its schema without the
    null, and with no default."""
    kept = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    types = [option for option in field.get("anyOf", []) if option != {"type": "null"}]
    return {**(types[0] if len(types) == 1 else {"anyOf": types}), **kept}


def _model_schemas(models: Iterable[type[BaseModel]], settings: Settings) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF + "{model}")
        found.update(schema.pop("$defs", {}))
        if isinstance(model, BoundBySettings):
            model.bound_schema(schema, settings)
        found[model.__name__] = schema
    return found
