"""Where events become Server-Sent Events: the one module that uses sse-starlette.

Each event is one `data: <JSON on one line>` line and an empty line, LF only, which both
spec-compliant SSE clients and the seed's `split('\\n\\n')` parsers read. Keep-alive pings are
SSE comments, which both kinds of client skip.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from anyio.streams.memory import MemoryObjectReceiveStream
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.events import Event, to_payload

SEPARATOR = "\n"


def encode(event: Event) -> str:
    return json.dumps(to_payload(event), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def event_stream(
    events: MemoryObjectReceiveStream[Event], *, ping_seconds: float
) -> EventSourceResponse:
    async def body() -> AsyncIterator[ServerSentEvent]:
        with events:
            async for event in events:
                yield ServerSentEvent(data=encode(event), sep=SEPARATOR)

    return EventSourceResponse(
        body(),
        ping=ping_seconds,
        sep=SEPARATOR,
        headers={"Cache-Control": "no-cache, no-store"},
    )
