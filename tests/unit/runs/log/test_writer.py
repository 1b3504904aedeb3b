"""The writer's batching, over the in-memory log made to fail as each test says (the real
backends are tested in tests/integration/test_event_logs.py, the whole path end to end)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from app.events import LoggedEvent
from app.runs.log.base import RunEvents
from app.runs.log.memory import MemoryEventLog
from app.runs.log.writer import EventWriter


def _event(seq: int) -> LoggedEvent:
    return LoggedEvent(seq, f'{{"type":"text","content":"{seq}","seq":{seq}}}')


class Unreachable(ConnectionError):
    """What this log raises while it cannot be reached."""


class Refused(ValueError):
    """What it raises for a run whose events it will never take."""


class FlakyLog(MemoryEventLog):
    """The in-memory log, recording each append it takes; unreachable, or refusing a run's
    events, as told."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple[str, LoggedEvent]]] = []
        self.unreachable_once = False
        self.unreachable_times = 0
        self.refused_runs: set[str] = set()
        self.wrote = anyio.Event()
        self.writing = anyio.Event()
        self.hold: anyio.Event | None = None

    async def append(self, events: RunEvents) -> None:
        self.writing.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.unreachable_once:
            self.unreachable_once = False
            raise Unreachable
        if self.unreachable_times:
            self.unreachable_times -= 1
            raise Unreachable
        if any(run_id in self.refused_runs for run_id, _ in events):
            raise Refused
        await super().append(events)
        self.batches.append(list(events))
        self.wrote.set()
        self.wrote = anyio.Event()

    def is_outage(self, error: BaseException) -> bool:
        return isinstance(error, Unreachable)

    def written(self) -> list[tuple[str, int]]:
        return [(run_id, event.seq) for batch in self.batches for run_id, event in batch]


@asynccontextmanager
async def writing_log() -> AsyncIterator[tuple[EventWriter, FlakyLog]]:
    log = FlakyLog()
    writer = EventWriter(log)
    async with anyio.create_task_group() as group:
        group.start_soon(writer.write_forever)
        yield writer, log
        group.cancel_scope.cancel()


async def test_the_events_of_every_run_go_in_one_write() -> None:
    async with writing_log() as (writer, log):
        writer.add("a", _event(1))
        writer.add("b", _event(1))
        writer.add("a", _event(2))
        with anyio.fail_after(5):
            await log.wrote.wait()
        assert log.batches == [[("a", _event(1)), ("b", _event(1)), ("a", _event(2))]]


async def test_a_finishing_run_takes_its_unwritten_events_back() -> None:
    async with writing_log() as (writer, log):
        writer.add("a", _event(1))
        writer.add("b", _event(1))
        writer.add("a", _event(2))
        assert await writer.take_unwritten("a") == [("a", _event(1)), ("a", _event(2))]
        with anyio.fail_after(5):
            await log.wrote.wait()
        assert log.written() == [("b", 1)]


@pytest.mark.parametrize("writes_before", [0, 1])
async def test_taking_back_waits_for_a_write_in_progress_of_that_run(writes_before: int) -> None:
    """Else the run's final statement could land before its earlier events. (After a first
    write too: the signal that a write has ended is renewed each time.)"""
    async with writing_log() as (writer, log):
        for _ in range(writes_before):
            writer.add("before", _event(1))
            with anyio.fail_after(5):
                await log.wrote.wait()
            log.batches.clear()
            log.writing = anyio.Event()
        log.hold = anyio.Event()
        writer.add("a", _event(1))
        with anyio.fail_after(5):
            await log.writing.wait()  # the batch is being written, held
        writer.add("a", _event(2))
        taken: list[tuple[str, LoggedEvent]] = []
        async with anyio.create_task_group() as group:

            async def take() -> None:
                taken.extend(await writer.take_unwritten("a"))

            group.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            assert taken == [] and log.written() == []
            log.hold.set()
        assert log.written() == [("a", 1)]
        assert taken == [("a", _event(2))]


async def test_events_put_back_are_written_first_and_in_order() -> None:
    async with writing_log() as (writer, log):
        writer.add("a", _event(3))
        writer.put_back([("a", _event(1)), ("a", _event(2))])
        with anyio.fail_after(5):
            await log.wrote.wait()
        assert log.written() == [("a", 1), ("a", 2), ("a", 3)]


async def test_an_unreachable_log_keeps_the_events_until_it_is_back() -> None:
    async with writing_log() as (writer, log):
        log.unreachable_once = True
        writer.add("a", _event(1))
        writer.add("a", _event(2))
        with anyio.fail_after(10):
            await log.wrote.wait()
        assert log.written() == [("a", 1), ("a", 2)]


async def test_a_run_the_log_refuses_does_not_hold_up_the_others() -> None:
    async with writing_log() as (writer, log):
        log.refused_runs = {"deleted"}
        writer.add("deleted", _event(1))
        writer.add("a", _event(1))
        with anyio.fail_after(5):
            await log.wrote.wait()
        assert log.written() == [("a", 1)]


async def test_events_the_log_could_not_take_even_run_by_run_wait_for_it() -> None:
    """Unreachable for the batch and again for the run's own write: the events go back in the
    queue and are written after `RETRY_SECONDS` (1 s), not dropped as if refused."""
    async with writing_log() as (writer, log):
        log.unreachable_times = 2
        writer.add("a", _event(1))
        with anyio.fail_after(10):
            await log.wrote.wait()
        assert log.written() == [("a", 1)]


async def test_a_round_with_nothing_to_write_leaves_the_log_writing() -> None:
    """A run took its events back before the batch window ended: that round finds nothing,
    and the next events are written all the same."""
    async with writing_log() as (writer, log):
        writer.add("a", _event(1))
        assert await writer.take_unwritten("a") == [("a", _event(1))]
        await anyio.wait_all_tasks_blocked()  # the writer's empty round has run
        writer.add("b", _event(1))
        with anyio.fail_after(5):
            await log.wrote.wait()
        assert log.written() == [("b", 1)]


async def test_who_listens_is_told_each_runs_highest_seq_once_the_log_has_it() -> None:
    async with writing_log() as (writer, log):
        told: list[tuple[str, int]] = []
        writer.hear_logged(lambda run_id, seq: told.append((run_id, seq)))
        writer.add("a", _event(1))
        writer.add("b", _event(1))
        writer.add("a", _event(2))
        with anyio.fail_after(5):
            await log.wrote.wait()
        assert told == [("a", 2), ("b", 1)]


async def test_nothing_is_told_of_events_the_log_has_not_taken() -> None:
    """A run the log refuses is never told; events waiting for an unreachable log are told
    once they are written."""
    async with writing_log() as (writer, log):
        told: list[tuple[str, int]] = []
        writer.hear_logged(lambda run_id, seq: told.append((run_id, seq)))
        log.refused_runs = {"deleted"}
        log.unreachable_times = 2  # the batch, then run "a" on its own: it waits
        writer.add("a", _event(1))
        writer.add("deleted", _event(1))
        with anyio.fail_after(10):
            await log.wrote.wait()
        assert log.written() == [("a", 1)]
        assert told == [("a", 1)]
