"""The route table read as a list: each route's path template, methods and endpoint, for the
OpenAPI document (`app.web.openapi`) and for the metrics' route labels (`RouteTemplates`)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, compile_path

from app.web.openapi.operation import ApiRoute, Operation


@dataclass(frozen=True)
class Entry:
    path: str
    """The path template, as Starlette writes it (`{path:path}`)."""
    methods: list[str]
    endpoint: Any
    operation: Operation | None
    """What the route declared for /openapi.json (`ApiRoute`), if anything."""


def walk(table: Sequence[BaseRoute], prefix: str = "") -> Iterator[Entry]:
    """Every route, in the table's order, mounted ones with their mount's prefix."""
    for route in table:
        if isinstance(route, Route):
            methods = sorted((route.methods or {"GET"}) - {"HEAD"})
            operation = route.operation if isinstance(route, ApiRoute) else None
            yield Entry(prefix + route.path, methods, route.endpoint, operation)
        elif isinstance(route, Mount):
            if route.routes:
                yield from walk(route.routes, prefix + route.path)
            else:
                yield Entry(prefix + route.path + "/{path:path}", ["GET"], route.app, None)


def openapi_path(path: str) -> str:
    """A path template without Starlette's convertors: `{path:path}` is `{path}`."""
    return re.sub(r"{(\w+)(:\w+)?}", r"{\1}", path)


class RouteTemplates:
    """The route template a request's path matches (`/api/{user_id}/tasks/{task_id}`), for
    metrics: a path that matches none is `unmatched`, so clients cannot mint labels."""

    def __init__(self, table: Sequence[BaseRoute]) -> None:
        self._patterns = [
            (compile_path(entry.path)[0], openapi_path(entry.path)) for entry in walk(table)
        ]

    def __call__(self, path: str) -> str:
        return next((name for regex, name in self._patterns if regex.match(path)), "unmatched")
