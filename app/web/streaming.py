"""Where events become Server-Sent Events: the one module that uses sse-starlette.

Two kinds of client read our streams, and no single layout serves both, so each request gets
the framing it asks for (`framing_for`, from its `Accept` header):

**Standard**, for clients that send `Accept: text/event-stream` (EventSource, the npm
`eventsource`, `@microsoft/fetch-event-source`, httpx-sse): one block per event, LF endings,

    data: <JSON on one line, with "seq">
    id: <run_id>:<seq>
    <empty line>

Deliberate divergences from the usual `id:`-then-`data:` layout, do not "fix" them:
1. `data:` comes before `id:`. fetch-event-source records an id the moment it parses the line,
   before the event is dispatched; with `id:` first, a connection cut inside an event would make
   its retry resume *after* an event it never delivered. Data first leaves one byte (between the
   `id:` line and the empty line) where that can happen, instead of the whole event.
2. The stream opens with a bare `id: <run_id>:<after_seq>` line. fetch-event-source retries a
   failed POST with the last id it saw, and a retry with none would start a second turn; with
   the run's id in the first bytes, a connection cut inside the first event resumes this run.
   A WHATWG parser overwrites it with the first event's own id, so nothing else changes.
3. Keep-alive pings are a lone comment line, `: ping`, with no empty line after it:
   fetch-event-source dispatches *every* empty line as a message, and an empty message breaks
   the `JSON.parse(ev.data)` its README shows. A comment needs no empty line to be skipped.

**Seed**, for everything else (browsers' `fetch` sends `Accept: */*`; the seed's `useChat` and
`StreamingMessage` split the body on `\\n\\n`, keep blocks that begin with `data: ` and
`JSON.parse` them): every event is two blocks, written together,

    id: <run_id>:<seq>
    <empty line>
    data: <JSON on one line, with "seq">
    <empty line>

so those readers see one JSON object per event, and a spec-compliant reader that did not ask
for the standard framing still gets each event's id. Pings are whole comment blocks.

How a finished stream is told apart from a cut one is the routes' business (a 204 to a
reconnecting EventSource), not this module's.

**A client that stops reading** (a frozen tab, a proxy that stalls) is dropped once one write
has waited `SEND_TIMEOUT_SECONDS` (a setting, 30 s): sse-starlette's `send_timeout`. It raises
`SendTimeoutError` out of the response, which the server would log as a crash; `_Stream` ends
the response there instead, with a warning, and counts it (`todo_chat_streams_dropped_total`).
The run goes on; the client may resume with `Last-Event-ID`. ASGI has no way to abort a
connection: the server closes it once its buffer is flushed, or the client goes away; nothing
more is queued for it meanwhile. Until then such a stream holds what uvicorn's buffer took (it
stops taking writes past 64 KB) and one write: a write is one batch of events, and a batch is at
most `app.runs.live.BATCH_BYTES`, however far behind the client is (measured in
tests/faults/test_stopped_readers.py).

**`_Stream` runs sse-starlette's own watchers itself** (the body, pings, the server's exit with
its grace, the client's disconnect) as plain asyncio tasks instead of in the anyio task group
its `__call__` makes, and bounds each write with asyncio's timeout: half the memory an open
stream's response held, and fewer instructions per write (measurements in `_Stream`). These
are private parts of sse-starlette: the version is bounded in pyproject.toml, and
tests/unit/test_sse.py fails when one of them changes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

from app.events import LoggedEvent
from app.metrics import STREAMS_DROPPED

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"


class Framing(enum.Enum):
    STANDARD = "standard"
    SEED = "seed"


def framing_for(accept: str | None) -> Framing:
    """Standard framing for a client whose `Accept` names `text/event-stream` (with q > 0)."""
    for media_range in (accept or "").split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != EVENT_STREAM:
            continue
        quality = next((p[2:] for p in parameters if p.lower().startswith("q=")), "1")
        if _acceptable(quality):
            return Framing.STANDARD
    return Framing.SEED


def _acceptable(quality: str) -> bool:
    """`q=0` refuses a media type; any other weight, or one we cannot read, accepts it."""
    try:
        return float(quality) > 0
    except ValueError:
        return True


# The largest `seq` there can be: the log's column is a PostgreSQL integer.
MAX_SEQ = 2**31 - 1


def parse_event_id(raw: str) -> tuple[str, int]:
    """The run and sequence number in an event id as `frame` writes it (`<run_id>:<seq>`), or
    in a bare `<seq>` (then the run is ""). ValueError for anything else: `seq` is ASCII digits
    up to `MAX_SEQ` (`str.isdigit()` alone takes other scripts' digits, which `int()` refuses
    or reads as numbers no client was sent)."""
    run_id, _, seq = raw.rpartition(":")
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 10 and int(seq) <= MAX_SEQ):
        raise ValueError(f"not an event id: {raw!r}")
    return run_id, int(seq)


def frame(framing: Framing, run_id: str, event: LoggedEvent) -> bytes:
    if framing is Framing.STANDARD:
        return f"data: {event.data}\nid: {run_id}:{event.seq}\n\n".encode()
    return f"id: {run_id}:{event.seq}\n\ndata: {event.data}\n\n".encode()


def opening(framing: Framing, run_id: str, after_seq: int) -> bytes:
    """What a stream starts with: the run's id for a standard client (divergence 2)."""
    return f"id: {run_id}:{after_seq}\n".encode() if framing is Framing.STANDARD else b""


def keep_alive(framing: Framing) -> bytes:
    """A comment: one line for the standard framing (divergence 3), a whole block for seed
    readers (whose blocks must each begin with `data: ` or be skipped)."""
    return b": ping\n" if framing is Framing.STANDARD else b": ping\n\n"


class _Ping(ServerSentEvent):
    """sse-starlette sends what a ping event encodes to; this one encodes to given bytes
    (`keep_alive`)."""

    def __init__(self, ping: bytes) -> None:
        super().__init__(comment="ping")
        self._bytes = ping

    def encode(self) -> bytes:
        return self._bytes


class _Stream(EventSourceResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["type"] == "http" and scope["method"].upper() != "HEAD":
                await self._serve(receive, send)
            else:
                await super().__call__(scope, receive, send)
        except* SendTimeoutError:
            STREAMS_DROPPED.inc()
            logger.warning(
                "dropped a stream whose client stopped reading for %s s", self.send_timeout
            )

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        """sse-starlette's bound on one write (`send_timeout`), with asyncio's timeout rather
        than anyio's cancel scope: 4.5 µs a write here instead of 10.8, and 0.86 M fewer
        instructions per tool-using turn (tools/instructions.py; issue 17)."""
        timeout = asyncio.timeout(self.send_timeout)
        try:
            async with timeout:
                await send(message)
        except TimeoutError:
            if timeout.expired():
                raise SendTimeoutError() from None
            raise

    async def _serve(self, receive: Receive, send: Send) -> None:
        """sse-starlette's own watchers (the stream, its pings, the server's exit and its
        grace, the client's disconnect), each as it runs them, the first to end stopping the
        others; but as plain asyncio tasks, not in an anyio task group. With 200 streams open
        (tools/stream_memory.py, issue 17) the response held 24.1 KB of each stream's
        119.5 traced; this way 11.4."""
        watchers = [
            self._stream_response(send),
            self._listen_for_exit_signal_with_grace(),
            self._listen_for_disconnect(receive),
        ]
        if self.ping_interval > 0:
            watchers.append(self._ping(send))
        tasks = [asyncio.ensure_future(watcher) for watcher in watchers]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # Their cleanup (the body's, which lets its run's subscription go) runs to its end.
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        if self.background is not None:
            await self.background()


def event_stream(
    run_id: str,
    batches: AsyncIterator[list[LoggedEvent]],
    *,
    framing: Framing,
    after_seq: int,
    ping_seconds: float,
    send_timeout_seconds: float,
    shutdown_grace_seconds: float,
) -> _Stream:
    async def body() -> AsyncIterator[bytes]:
        first = opening(framing, run_id, after_seq)
        async with aclosing(batches):  # type: ignore[type-var]
            async for batch in batches:
                # One write per batch (at most `BATCH_BYTES` of events), not one per token.
                yield first + b"".join(frame(framing, run_id, event) for event in batch)
                first = b""

    return byte_stream(
        body(),
        ping=keep_alive(framing),
        ping_seconds=ping_seconds,
        send_timeout_seconds=send_timeout_seconds,
        shutdown_grace_seconds=shutdown_grace_seconds,
    )


def byte_stream(
    body: AsyncIterator[bytes],
    *,
    ping: bytes,
    ping_seconds: float,
    send_timeout_seconds: float,
    shutdown_grace_seconds: float,
    headers: dict[str, str] | None = None,
) -> _Stream:
    """A stream of bytes framed by the caller (`event_stream`, or another protocol's framing
    such as `app.ai_sdk`'s), sent with the same pings, slow-reader bound and shutdown grace."""
    keep_alive_ping = _Ping(ping)
    return _Stream(
        body,
        # A client that stops reading: once one write has waited this long (the socket's
        # buffers full), the stream is closed, and the run goes on without it.
        send_timeout=send_timeout_seconds,
        ping=ping_seconds,
        ping_message_factory=lambda: keep_alive_ping,
        headers={"Cache-Control": "no-cache, no-store", **(headers or {})},
        # When the server stops, keep the stream open until its run has sent its last event.
        # (The grace needs no `shutdown_event`: no body here watches one, and an anyio Event
        # for each stream held 0.74 KB of it, issue 17.)
        shutdown_grace_period=shutdown_grace_seconds,
    )


async def server_exiting() -> None:
    """Return once the server has been told to stop (SIGTERM or SIGINT under uvicorn).

    sse-starlette has no public API for this, only the private watcher its own responses use
    (it sees uvicorn's exit flag however uvicorn was started). We use that one rather than a
    second watcher that could disagree with it; the version is bounded in pyproject.toml and
    tests/unit/test_sse.py fails if the method changes."""
    await EventSourceResponse._listen_for_exit_signal()
