"""Each request's id, its access log line (never with the query string: it may hold an access
token) and its HTTP metrics.

The request id is the client's or the router's `X-Request-ID` (Heroku's router sends one) when
it is a sane one (1 to 200 printable ASCII characters), else one made here; it is sent back in
the response's `X-Request-ID` and set in `app.logs.REQUEST_ID` for every line the request logs,
and the run it starts (see `app.logs`).

The HTTP metrics count requests by method, route template (`/api/{user_id}/tasks/{task_id}`,
never the path itself, which holds user ids) and status, and time each one to the start of its
response: for a stream that is when it opened, so a stream's minutes stay out of the histogram
(a run's own duration is `todo_chat_run_duration_seconds`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import REQUEST_ID
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("app.access")

HEADER = b"x-request-id"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_REQUEST_ID_CHARS = 200


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER:
            given: str = value.decode("latin-1")
            if 0 < len(given) <= MAX_REQUEST_ID_CHARS and given.isascii() and given.isprintable():
                return given
    return uuid.uuid4().hex


class AccessLog:
    """Pure ASGI middleware: one line per request once it ends, streams included."""

    def __init__(self, app: ASGIApp, route_of: Callable[[str], str] | None = None) -> None:
        self.app = app
        self.route_of = route_of or (lambda path: "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = self.route_of(scope["path"])
        the_id = request_id(scope)
        token = REQUEST_ID.set(the_id)

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, the_id.encode())]
                HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            logger.info(
                "%s %s %d %.0fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )
            REQUEST_ID.reset(token)
