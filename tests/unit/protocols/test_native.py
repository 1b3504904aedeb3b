"""The two framings, read by ports of the clients' own parsers, over every way the network can
split or cut the bytes (hypothesis). The real clients run against the service in
tests/e2e/test_sse_clients.py and test_seed_clients.py; these find the byte-level cases."""

from __future__ import annotations

import inspect
import json

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sse_starlette import EventSourceResponse
from sse_starlette.sse import AppStatus

from app.events import LoggedEvent
from app.web.streaming import (
    MAX_SEQ,
    Framing,
    frame,
    framing_for,
    keep_alive,
    opening,
    parse_event_id,
    server_exiting,
)
from tests.support import seed_parse

RUN_ID = "0b6f3c1e-5a4d-4d7e-9a53-2f1c8e7d6b5a"


def _events(texts: list[str]) -> list[LoggedEvent]:
    return [
        LoggedEvent(seq, json.dumps({"type": "text", "content": text, "seq": seq}))
        for seq, text in enumerate(texts, start=1)
    ]


def _wire(framing: Framing, events: list[LoggedEvent], pings: set[int]) -> bytes:
    """A stream as the service writes it: the opening, then the events with pings between."""
    parts = [opening(framing, RUN_ID, 0)]
    for index, event in enumerate(events):
        if index in pings:
            parts.append(keep_alive(framing))
        parts.append(frame(framing, RUN_ID, event))
    return b"".join(parts)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class FetchEventSourceParser:
    """`getLines` + `getMessages` of @microsoft/fetch-event-source 2.0.1, line for line in
    what matters here: every empty line dispatches (even with no data), and an `id:` line sets
    the id its retry will send the moment it is parsed."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.retry_id: str | None = None
        self._buffer = b""
        self._data: str | None = None
        self._id = ""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line.decode())

    def _line(self, line: str) -> None:
        if not line:
            self.messages.append((self._data or "", self._id))
            self._data, self._id = None, ""
            return
        field, colon, value = line.partition(":")
        if not colon or not field:
            return  # no field name: a comment (or a line without a colon)
        value = value.removeprefix(" ")
        if field == "data":
            self._data = value if self._data is None else f"{self._data}\n{value}"
        elif field == "id":
            self._id = value
            self.retry_id = value


texts = st.lists(st.text(max_size=20), min_size=1, max_size=12)
cut_points = st.lists(st.integers(min_value=0, max_value=4_000), max_size=8)
ping_positions = st.sets(st.integers(min_value=0, max_value=12), max_size=6)


@given(texts, ping_positions, cut_points)
def test_standard_framing_gives_fetch_event_source_one_message_per_event(
    contents: list[str], pings: set[int], cuts: list[int]
) -> None:
    events = _events(contents)
    parser = FetchEventSourceParser()
    for chunk in _split(_wire(Framing.STANDARD, events, pings), cuts):
        parser.feed(chunk)
    assert parser.messages == [(e.data, f"{RUN_ID}:{e.seq}") for e in events]


@given(texts, ping_positions, st.integers(min_value=1))
def test_a_cut_standard_stream_resumes_after_the_last_event_delivered(
    contents: list[str], pings: set[int], at: int
) -> None:
    """Wherever the connection breaks, fetch-event-source retries with this run's id (never
    without one, which would start a second turn) naming the last event it delivered; except
    in the one byte between an event's `id:` line and the empty line that ends it."""
    wire = _wire(Framing.STANDARD, events := _events(contents), pings)
    received = wire[: at % len(wire)]
    parser = FetchEventSourceParser()
    parser.feed(received)
    delivered = len(parser.messages)
    in_the_window = received.endswith(f"\nid: {RUN_ID}:{delivered + 1}\n".encode())
    if not received.startswith(opening(Framing.STANDARD, RUN_ID, 0)):
        assert parser.retry_id is None  # cut before the stream's first line
    elif in_the_window:
        assert parser.retry_id == f"{RUN_ID}:{delivered + 1}"
    else:
        assert parser.retry_id == f"{RUN_ID}:{delivered}"
    assert [data for data, _ in parser.messages] == [e.data for e in events[:delivered]]


@given(texts, ping_positions, cut_points)
def test_seed_framing_gives_the_seed_loops_one_json_object_per_event(
    contents: list[str], pings: set[int], cuts: list[int]
) -> None:
    events = _events(contents)
    chunks = _split(_wire(Framing.SEED, events, pings), cuts)
    assert seed_parse(chunk.decode() for chunk in chunks) == [json.loads(e.data) for e in events]


MEDIA_TYPES = ["text/event-stream", "TEXT/Event-Stream", "*/*", "text/*", "application/json"]


@given(
    st.lists(
        st.tuples(st.sampled_from(MEDIA_TYPES), st.sampled_from(["", "1", "0.5", "0", "0.0"])),
        max_size=4,
    )
)
def test_the_standard_framing_goes_to_clients_that_name_event_streams(
    ranges: list[tuple[str, str]],
) -> None:
    accept = ", ".join(f"{media};q={q}" if q else media for media, q in ranges)
    wanted = any(
        media.lower() == "text/event-stream" and q not in ("0", "0.0") for media, q in ranges
    )
    expected = Framing.STANDARD if wanted else Framing.SEED
    assert framing_for(accept) is expected


def test_clients_that_send_no_accept_or_any_get_the_seed_framing() -> None:
    assert framing_for(None) is Framing.SEED  # the seed's fetch in Node sends */*, or nothing
    assert framing_for("*/*") is Framing.SEED
    assert framing_for("text/event-stream") is Framing.STANDARD  # EventSource


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


@given(st.uuids().map(str) | st.just(""), st.integers(0, MAX_SEQ))
def test_an_event_id_as_written_reads_back_as_its_run_and_seq(run_id: str, seq: int) -> None:
    written = frame(Framing.STANDARD, run_id, LoggedEvent(seq, "{}")).split(b"\nid: ")[1]
    raw = written.split(b"\n")[0].decode()
    assert parse_event_id(raw) == (run_id, seq)
    assert parse_event_id(str(seq)) == ("", seq)


@given(st.text())
def test_an_event_id_is_read_only_when_its_seq_is_ascii_digits_within_range(raw: str) -> None:
    """Whatever a client sends: a run and a seq a database integer holds, or ValueError (never
    another exception, never a number from another script's digits)."""
    run, _, seq = raw.rpartition(":")
    readable = seq.isascii() and seq.isdigit() and len(seq) <= 10 and int(seq) <= MAX_SEQ
    try:
        parsed = parse_event_id(raw)
    except ValueError:
        assert not readable
    else:
        assert readable and parsed == (run, int(seq))


def test_the_largest_seq_a_database_integer_holds_is_an_event_id() -> None:
    assert parse_event_id(f"run:{MAX_SEQ}") == ("run", MAX_SEQ)  # the bound, not past it


def test_event_ids_no_client_was_sent_are_refused() -> None:
    # "run:00000000001": eleven digits, a small number, still refused (make mutate found the
    # length bound untested: hypothesis seldom writes leading zeros).
    for raw in (
        "",
        ":",
        "run:",
        "run:-1",
        "run:1.5",
        "run:١٢",
        "run:²",
        f"run:{MAX_SEQ + 1}",
        "run:00000000001",
    ):
        with pytest.raises(ValueError, match="not an event id"):
            parse_event_id(raw)


def test_a_weight_that_cannot_be_read_accepts_the_event_stream() -> None:
    """Only q=0 refuses; `q=high` is read as yes (found by make mutate)."""
    assert framing_for("text/event-stream;q=high") is Framing.STANDARD
    assert framing_for("text/event-stream;q=0, */*") is Framing.SEED


def test_the_opening_and_the_pings_are_what_the_module_docstring_says() -> None:
    """The divergences' bytes, pinned: every client parser tolerates a wrong ping or an id
    line in the seed framing, so the property tests above do not see one (make mutate did)."""
    assert opening(Framing.STANDARD, RUN_ID, 7) == f"id: {RUN_ID}:7\n".encode()
    assert opening(Framing.SEED, RUN_ID, 7) == b""
    assert keep_alive(Framing.STANDARD) == b": ping\n"
    assert keep_alive(Framing.SEED) == b": ping\n\n"


def test_the_private_parts_of_sse_starlette_our_stream_runs_are_still_there() -> None:
    """`app.sse._Stream` runs sse-starlette's own watchers itself (as asyncio tasks, not in an
    anyio task group: half the memory per open stream) and bounds each write itself: this
    fails when a new version renames one, changes what it takes, or stops sending through
    `_send_with_timeout` (the version is also bounded in pyproject.toml)."""
    expected = {
        "_stream_response": ["self", "send"],
        "_listen_for_exit_signal_with_grace": ["self"],
        "_listen_for_disconnect": ["self", "receive"],
        "_ping": ["self", "send"],
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
    assert response.background is None
