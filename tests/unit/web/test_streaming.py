"""The one streaming transport: what it writes for any protocol, and the private parts of
sse-starlette it runs (their versions move; these fail when one changes)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Sequence

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import AppStatus
from starlette.types import Message

from app.events import Done, LoggedEvent, Text, encode
from app.protocols.base import WireFormat
from app.settings import Settings
from app.web.streaming import server_exiting, stream_response, writes


class _Tagged(WireFormat):
    """A protocol whose every part is visible in its bytes."""

    @property
    def keep_alive(self) -> bytes:
        return b"ping;"

    def opening(self) -> bytes:
        return b"open;"

    def frames(self, batch: Sequence[LoggedEvent]) -> bytes:
        self.ended = self.ended or any(event.terminal for event in batch)
        return b"".join(f"{event.seq};".encode() for event in batch)

    def closing(self) -> bytes:
        return b"close;"


async def _batches(*batches: list[LoggedEvent]) -> AsyncIterator[list[LoggedEvent]]:
    for batch in batches:
        yield batch


TEXT = [encode(Text(f"t{seq}"), seq) for seq in range(1, 4)]
FINAL = encode(Done(1, 2, {}), 4)


async def test_one_write_per_batch_the_opening_with_the_first_the_closing_with_the_final() -> None:
    out = [w async for w in writes(_Tagged(), _batches(TEXT[:2], [TEXT[2], FINAL]))]
    assert out == [b"open;1;2;", b"3;4;close;"]


async def test_nothing_is_written_or_read_after_the_final_event() -> None:
    """The batches are let go at once (a follower's subscription ends with them)."""
    read: list[int] = []

    async def batches() -> AsyncIterator[list[LoggedEvent]]:
        for batch in ([FINAL], TEXT):
            read.append(batch[0].seq)
            yield batch

    out = [w async for w in writes(_Tagged(), batches())]
    assert out == [b"open;4;close;"]
    assert read == [4]


async def test_a_stream_cut_before_the_final_event_has_no_closing() -> None:
    out = [w async for w in writes(_Tagged(), _batches(TEXT[:1], TEXT[1:]))]
    assert out == [b"open;1;", b"2;3;"]


class _Replaying(_Tagged):
    """A protocol that frames the events up to seq 2 as nothing, as a resume frames the events
    its client already has."""

    def opening(self) -> bytes:
        return b""

    def frames(self, batch: Sequence[LoggedEvent]) -> bytes:
        return super().frames([event for event in batch if event.seq > 2])


async def test_a_batch_that_frames_to_nothing_is_no_write() -> None:
    out = [w async for w in writes(_Replaying(), _batches(TEXT[:1], TEXT[1:2], [TEXT[2], FINAL]))]
    assert out == [b"3;4;close;"]


async def test_a_run_with_no_events_left_writes_nothing() -> None:
    assert [w async for w in writes(_Tagged(), _batches())] == []


async def test_the_private_exit_signal_we_await_is_still_there() -> None:
    """`server_exiting` awaits sse-starlette's private `_listen_for_exit_signal`: this fails
    when a new version renames it or changes what it waits on (uvicorn's flag, AppStatus)."""
    listen = inspect.getattr_static(EventSourceResponse, "_listen_for_exit_signal")
    assert isinstance(listen, staticmethod)
    assert inspect.signature(listen.__func__).parameters == {}
    AppStatus.should_exit = True
    try:
        with anyio.fail_after(1):
            await server_exiting()  # returns at once when the flag is set
    finally:
        AppStatus.should_exit = False


def test_the_private_parts_of_sse_starlette_our_stream_runs_are_still_there() -> None:
    """`app.web.streaming._Stream` runs sse-starlette's own watchers itself (as asyncio tasks,
    not in an anyio task group: half the memory per open stream) and bounds each write itself:
    this fails when a new version renames one, changes what it takes, or stops sending through
    `_send_with_timeout` (the version is also bounded in pyproject.toml)."""
    expected = {
        "_stream_response": ["self", "send"],
        "_listen_for_disconnect": ["self", "receive"],
        "_send_with_timeout": ["self", "send", "message"],
    }
    for name, parameters in expected.items():
        method = inspect.getattr_static(EventSourceResponse, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name
    sends = inspect.getsource(EventSourceResponse._stream_response)
    assert "self._send_with_timeout(" in sends
    response = EventSourceResponse(iter(()), ping=15, send_timeout=3)
    assert (response.active, response.ping_interval, response.send_timeout) == (True, 15, 3)
    assert "async with self._send_lock:" in sends  # the lock the stream replaces
    assert hasattr(response, "_send_lock")
    assert response.background is None


async def test_the_stream_writes_from_the_requests_task_and_stops_when_the_client_leaves() -> None:
    """The first batch is written by the task that called the response (no task of its own for
    the stream), and the client's leaving stops a stream that has nothing more to send, its
    batches let go (a follower's subscription ends with them)."""
    let_go = anyio.Event()
    left = anyio.Event()

    async def batches() -> AsyncIterator[list[LoggedEvent]]:
        try:
            yield TEXT[:1]
            await anyio.sleep_forever()
            yield TEXT[1:]
        finally:
            let_go.set()

    writers: list[asyncio.Task[object] | None] = []
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            writers.append(asyncio.current_task())
            sent.append(message["body"])
            left.set()

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    settings = Settings(jwt_secret="s" * 40, sse_ping_seconds=3600)
    response = stream_response(_Tagged(), batches(), settings)
    scope = {"type": "http", "method": "POST", "headers": []}
    with anyio.fail_after(5):
        await response(scope, receive, send)
    assert sent == [b"open;1;"]
    assert writers == [asyncio.current_task()]
    assert let_go.is_set()


async def test_a_ping_the_client_does_not_take_drops_the_stream() -> None:
    """A stream with nothing to send still finds a client that stopped reading: its ping's
    write is bounded as every write is, and the stream is dropped, its batches let go."""
    let_go = anyio.Event()

    async def batches() -> AsyncIterator[list[LoggedEvent]]:
        try:
            yield TEXT[:1]
            await anyio.sleep_forever()
            yield TEXT[1:]
        finally:
            let_go.set()

    sent: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])
            if message["body"] == b"ping;":
                await anyio.sleep_forever()  # the client's buffers are full

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError

    settings = Settings(jwt_secret="s" * 40, sse_ping_seconds=0.01, send_timeout_seconds=0.01)
    response = stream_response(_Tagged(), batches(), settings)
    with anyio.fail_after(5):
        await response({"type": "http", "method": "GET", "headers": []}, receive, send)
    assert sent == [b"open;1;", b"ping;"]
    assert let_go.is_set()
