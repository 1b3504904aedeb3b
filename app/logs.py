"""Log lines: each carries the id of the request it belongs to, as text or as JSON.

The request id lives in a context variable that the access log middleware sets for the whole
request (`app.web.access_log`). A run is started from its request's task, and asyncio copies a
task's context into the tasks it creates, so the run's background task, and every line it logs
until it ends, carries the id of the request that started it. Work that belongs to no request
(the event log's writer, heartbeats, recovery) logs `-`.

`LOG_FORMAT=json` writes one JSON object per line (what log platforms index); the default is
readable text. Either way the handler is ours, installed once on the root logger, replacing the
one installed before (tests build many apps in one process).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
NO_REQUEST = "-"
TEXT_FORMAT = "%(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Gives every record the request id of the context that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or NO_REQUEST
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _Installed(logging.StreamHandler[TextIO]):
    """The handler `configure` installs, told apart to be replaced."""


def make_handler(stream: TextIO, log_format: LogFormat) -> logging.StreamHandler[TextIO]:
    handler = _Installed(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    return handler


def configure(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Our handler on the root logger, in place of one installed before by `configure` or
    `logging.basicConfig`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Installed) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.addHandler(make_handler(sys.stderr, log_format))
    root.setLevel(level)
