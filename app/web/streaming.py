"""The one streaming transport: a run's events, in any wire protocol, as an HTTP response. The
only module that uses sse-starlette.

A protocol (`app.protocols.base.WireFormat`) says what the bytes are; this module sends them
the same way for every protocol: one write per batch of events, keep-alive pings while there is
nothing to send, the bound on a client that stops reading, the grace given to open streams when
the server stops, the end of the response when the client goes away. `stream_response` is all
the routes call.

**A client that stops reading** (a frozen tab, a proxy that stalls) is dropped once one write
has waited `SEND_TIMEOUT_SECONDS` (a setting, 30 s): sse-starlette's `send_timeout`. It raises
`SendTimeoutError` out of the response, which the server would log as a crash; `_Stream` ends
the response there instead, with a warning, and counts it (`todo_chat_streams_dropped_total`).
The run goes on; the client may resume with `Last-Event-ID`. ASGI has no way to abort a
connection: the server closes it once its buffer is flushed, or the client goes away; nothing
more is queued for it meanwhile. Until then such a stream holds what uvicorn's buffer took (it
stops taking writes past 64 KB) and one write: a write is one batch of events, and a batch is at
most `app.runs.live.BATCH_BYTES`, however far behind the client is (tests/faults/
test_stopped_readers.py measures it).

**`_Stream` runs sse-starlette's own watchers itself** (the body, pings, the server's exit with
its grace, the client's disconnect) instead of in the anyio task group its `__call__` makes:
the body in the request's own task, the disconnect as a plain asyncio task, pings as timers (a
task only while one is sent), the server's exit watched once for all open streams; and bounds
each write with asyncio's timeout: less memory per open stream, fewer instructions per write,
and the first write sooner (docs/performance.md has the measurements). These are private parts
of sse-starlette: the version is bounded in pyproject.toml, and tests/unit/web/test_streaming.py
fails when one of them changes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from functools import cache
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app.events import LoggedEvent
from app.metrics import STREAMS_DROPPED, streams_open
from app.protocols.base import WireFormat
from app.settings import Settings

logger = logging.getLogger(__name__)

Batches = AsyncIterator[list[LoggedEvent]]


def stream_response(
    wire_format: WireFormat, batches: Batches, settings: Settings, *, source: str = "followed"
) -> Response:
    """`batches` of a run's events as `wire_format`'s stream, counted in
    `todo_chat_streams_open` under `source` (`local`: the turn this request started)."""
    return _Stream(
        writes(wire_format, batches),
        # A client that stops reading: once one write has waited this long (the socket's
        # buffers full), the stream is closed, and the run goes on without it.
        send_timeout=settings.send_timeout_seconds,
        ping=settings.sse_ping_seconds,
        ping_message_factory=_pings(wire_format.keep_alive),
        media_type=wire_format.media_type,
        headers={"Cache-Control": "no-cache, no-store", **wire_format.headers},
        # When the server stops, keep the stream open until its run has sent its last event.
        # (The grace needs no `shutdown_event`: no body here watches one, and each would cost
        # every open stream an anyio Event.)
        grace=settings.stream_close_seconds,
        keep_alive=wire_format.keep_alive,
        source=source,
    )


async def writes(wire_format: WireFormat, batches: Batches) -> AsyncIterator[bytes]:
    """What the transport writes: one write per batch (at most `BATCH_BYTES` of events, not
    one write per token), the opening with the first, the closing with the run's final event,
    and nothing after it. A batch that frames to nothing (a resume's events the client has
    already had) is no write at all."""
    first = wire_format.opening()
    async with aclosing(batches):  # type: ignore[type-var]
        async for batch in batches:
            out = first + wire_format.frames(batch)
            first = b""
            if wire_format.ended:
                out += wire_format.closing()
            if out:
                yield out
            if wire_format.ended:
                return


@cache
def _pings(keep_alive: bytes) -> Callable[[], ServerSentEvent]:
    """sse-starlette's ping factory for a protocol's keep-alive: one for every stream of the
    protocol (a few exist), not a ping and a function made for each stream."""
    ping = _Ping(keep_alive)
    return lambda: ping


class _Ping(ServerSentEvent):
    """sse-starlette sends what a ping event encodes to; this one encodes to given bytes (the
    protocol's `keep_alive`)."""

    def __init__(self, ping: bytes) -> None:
        super().__init__(comment="ping")
        self._bytes = ping

    def encode(self) -> bytes:
        return self._bytes


class _Stream(EventSourceResponse):
    # The watchers' state, on the response rather than in closures over `_serve`'s frame: four
    # functions and their cells for every open stream were a kilobyte of it.
    _request: asyncio.Task[Any] | None = None  # the request's task, serving the stream
    _sender: Send | None = None
    _stopping = False
    _pinging: asyncio.Task[None] | None = None  # a ping being sent (one at a time)
    _failure: BaseException | None = None  # a ping's, or the disconnect watcher's
    _ping_timer: asyncio.TimerHandle | None = None
    _exit_timer: asyncio.TimerHandle | None = None

    def __init__(
        self, *args: Any, grace: float, keep_alive: bytes, source: str, **kwargs: Any
    ) -> None:
        kwargs["shutdown_grace_period"] = grace
        super().__init__(*args, **kwargs)
        self._grace = grace
        self._keep_alive = keep_alive
        self._source = source
        # What sse-starlette's pings and its last write hold while they send: asyncio's lock
        # makes its queue of waiters only when one waits; anyio's holds a deque per stream.
        self._send_lock = asyncio.Lock()  # type: ignore[assignment]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Counted here rather than by a generator around the batches: one async generator
        # fewer for every open stream.
        counted = streams_open(self._source)
        counted.inc()
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
        finally:
            counted.dec()

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        """sse-starlette's bound on one write (`send_timeout`), with asyncio's timeout rather
        than anyio's cancel scope, which costs a write more than twice the time."""
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
        grace, the client's disconnect), the first to end stopping the others; but not in an
        anyio task group, which held half of what the response kept for each open stream. The
        stream runs in the request's own task: its first write (the run's start event, already
        queued) goes out in the step that returned the response, with no task of its own to
        create, schedule and keep. Pings are timers, each making a task only to send one. The
        server's exit is watched once for every open stream (`_ExitWatch`)."""
        disconnect = asyncio.ensure_future(self._listen_for_disconnect(receive))
        request = self._request = asyncio.current_task()
        assert request is not None
        self._sender = send
        disconnect.add_done_callback(self._watcher_ended)
        if self.ping_interval > 0:
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.ping_interval, self._send_ping)
        _ExitWatch.of_this_loop().add(self)
        try:
            await self._stream_response(send)
        except asyncio.CancelledError:
            # Cancelled by `_stop` alone: the stream is over. Cancelled from outside too
            # (the server's own cancel): go on unwinding.
            if not self._stopping or request.uncancel() > 0:
                raise
        finally:
            self._stopping = True  # a watcher ending from now on stops nothing
            _ExitWatch.of_this_loop().discard(self)
            for handle in (self._exit_timer, self._ping_timer):
                if handle is not None:
                    handle.cancel()
            pinging = self._pinging
            others = [disconnect] if pinging is None else [disconnect, pinging]
            for task in others:
                task.cancel()
            # Their cleanup runs to its end.
            await asyncio.gather(*others, return_exceptions=True)
        if self._failure is not None:
            raise self._failure
        if self.background is not None:
            await self.background()

    def _stop(self) -> None:
        """A watcher ended first (the client left, the server's grace is over, a ping
        failed): stop the stream, as asyncio.timeout stops what it bounds."""
        if not self._stopping and self._request is not None:
            self._stopping = True
            self._request.cancel()

    def _watcher_ended(self, task: asyncio.Task[None]) -> None:
        if task is self._pinging:
            self._pinging = None
        if self._failure is None and not task.cancelled():
            self._failure = task.exception()
        self._stop()

    def _send_ping(self) -> None:
        assert self._sender is not None
        self._pinging = asyncio.get_running_loop().create_task(self._ping_once(self._sender))
        self._pinging.add_done_callback(self._ping_sent)

    def _ping_sent(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._watcher_ended(task)
            return
        self._pinging = None
        if not self._stopping:
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.ping_interval, self._send_ping)

    async def _ping_once(self, send: Send) -> None:
        """One keep-alive, as sse-starlette's own pings send it (under the send lock, while
        the stream is active)."""
        async with self._send_lock:
            if self.active:
                message = {"type": "http.response.body", "body": self._keep_alive}
                await self._send_with_timeout(send, {**message, "more_body": True})

    def on_server_exit(self) -> None:
        """The server is stopping: the stream may go on for its grace period (its run's last
        events), then it is stopped, as sse-starlette's own watcher would."""
        if self._request is not None:
            loop = asyncio.get_running_loop()
            self._exit_timer = loop.call_later(self._grace, self._stop)


class _ExitWatch:
    """The server's exit, watched by one task for every open stream of an event loop, as
    sse-starlette's own watcher tells every stream registered when it sees the exit; a stream
    opened after that starts a new watch, which sees the exit at once if it is still on."""

    def __init__(self) -> None:
        self._waiting: set[_Stream] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_this_loop(cls) -> _ExitWatch:
        loop = asyncio.get_running_loop()
        watch = _EXIT_WATCHES.get(loop)
        if watch is None:
            watch = _EXIT_WATCHES[loop] = cls()
        return watch

    def add(self, stream: _Stream) -> None:
        self._waiting.add(stream)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def discard(self, stream: _Stream) -> None:
        self._waiting.discard(stream)

    async def _watch(self) -> None:
        try:
            await server_exiting()
        finally:
            self._task = None
        told, self._waiting = self._waiting, set()
        for stream in told:
            stream.on_server_exit()


_EXIT_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ExitWatch] = (
    weakref.WeakKeyDictionary()
)


async def server_exiting() -> None:
    """Return once the server has been told to stop (SIGTERM or SIGINT under uvicorn).

    sse-starlette has no public API for this, only the private watcher its own responses use
    (it sees uvicorn's exit flag however uvicorn was started). We use that one rather than a
    second watcher that could disagree with it; the version is bounded in pyproject.toml and
    tests/unit/web/test_streaming.py fails if the method changes."""
    await EventSourceResponse._listen_for_exit_signal()
