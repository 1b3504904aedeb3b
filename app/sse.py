"""Where events become Server-Sent Events: the one module that uses sse-starlette.

Every event is framed as two blocks, written together:

    id: <run_id>:<seq>
    <empty line>
    data: <JSON on one line, with "seq">
    <empty line>

A spec-compliant client (EventSource, fetch-event-source, httpx-sse) takes the id from the
first block (a block without data sets the last event id and dispatches nothing), then gets
the event with that id, and resumes from it with `Last-Event-ID`. The seed's clients split on
an empty line and read only blocks that begin with `data: `, so they see exactly one JSON
object per event. LF line endings; keep-alive pings are comments, which both kinds skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
from sse_starlette import EventSourceResponse

from app.events import LoggedEvent

SEPARATOR = "\n"


def frame(run_id: str, event: LoggedEvent) -> bytes:
    return f"id: {run_id}:{event.seq}\n\ndata: {event.data}\n\n".encode()


def event_stream(
    run_id: str,
    batches: AsyncIterator[list[LoggedEvent]],
    *,
    ping_seconds: float,
    shutdown_grace_seconds: float,
) -> EventSourceResponse:
    async def body() -> AsyncIterator[bytes]:
        async with aclosing(batches):  # type: ignore[type-var]
            async for batch in batches:
                # Whatever is queued goes out in one write: one send per batch, not per token.
                yield b"".join(frame(run_id, event) for event in batch)

    return EventSourceResponse(
        body(),
        ping=ping_seconds,
        sep=SEPARATOR,
        headers={"Cache-Control": "no-cache, no-store"},
        # When the server stops, keep the stream open until its run has sent its last event.
        shutdown_event=anyio.Event(),
        shutdown_grace_period=shutdown_grace_seconds,
    )


async def server_exiting() -> None:
    """Return once the server has been told to stop (SIGTERM or SIGINT under uvicorn)."""
    await EventSourceResponse._listen_for_exit_signal()
