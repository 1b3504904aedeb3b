"""A follower whose run's events are missing from the log (Redis restarted empty, nobody left to
append them again) gets a typed `events_missing` error, numbered just below the event the log
holds after the gap (`app.runs.reading`): each protocol says it as the error it is, after the
events before the gap and as the stream's end, never as a cut; a resuming client that was shown
the events before the gap gets it too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.events import LoggedEvent, Start, Text, encode, error_event
from app.protocols.ag_ui import AgUiStream
from app.protocols.ag_ui_request import AgUiVersion
from app.protocols.ai_sdk import UiMessageStream
from app.protocols.base import WireFormat
from app.protocols.native import SeedFraming, StandardFraming
from app.web.streaming import writes

RUN = "7c9e0000-0000-0000-0000-00000000beef"
BEFORE = [encode(Start(1, 2, RUN), 1), encode(Text("Hel"), 2)]
MISSING = encode(error_event("events_missing"), 4)  # event 3 lost, 5 the next the log holds


async def _wire(wire_format: WireFormat, *batches: list[LoggedEvent]) -> bytes:
    async def batched() -> AsyncIterator[list[LoggedEvent]]:
        for batch in batches:
            yield batch

    return b"".join([out async for out in writes(wire_format, batched())])


def _data(wire: bytes) -> list[Any]:
    lines = wire.decode().split("\n")
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


@pytest.mark.parametrize("framing", [StandardFraming, SeedFraming])
async def test_our_own_stream_ends_with_the_error_and_its_id(
    framing: type[StandardFraming] | type[SeedFraming],
) -> None:
    for after, batches in ((0, [BEFORE, [MISSING]]), (2, [[MISSING]])):
        wire = await _wire(framing(RUN, after), *batches)
        events = _data(wire)
        assert events[-1] == {**json.loads(MISSING.data)}
        assert events[-1]["code"] == "events_missing"
        assert f"id: {RUN}:4\n".encode() in wire
        assert [event["seq"] for event in events] == [*range(after + 1, 3), 4]


async def test_the_ai_sdk_stream_ends_with_an_error_chunk_saying_our_code() -> None:
    chunks = _data(await _wire(UiMessageStream(), BEFORE, [MISSING]))
    assert chunks[-1]["type"] == "error"
    assert json.loads(chunks[-1]["errorText"])["error"]["code"] == "events_missing"


@pytest.mark.parametrize("version", list(AgUiVersion))
@pytest.mark.parametrize("after", [0, 2])
async def test_ag_ui_ends_with_run_error_saying_our_code(version: AgUiVersion, after: int) -> None:
    """From the start, or resumed after the events before the gap (the route feeds a resume
    the run from its first event: those rebuild the translator)."""
    stream = AgUiStream(
        thread_id="thread",
        run_id="client-run",
        service_run_id=RUN,
        version=version,
        tasks=[],
        after_seq=after,
    )
    events = _data(await _wire(stream, BEFORE, [MISSING]))
    assert events[-1]["type"] == "RUN_ERROR"
    assert events[-1]["code"] == "events_missing"
