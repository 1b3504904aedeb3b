"""The event log's batching, with a writer of the test's own in place of PostgreSQL (the real
statement is tested in tests/integration/test_database.py, the whole path end to end)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from sqlalchemy.exc import IntegrityError

from app.events import LoggedEvent
from app.runs.event_log import EventLog, RunEvents


def _event(seq: int) -> LoggedEvent:
    return LoggedEvent(seq, f'{{"type":"text","content":"{seq}","seq":{seq}}}')


class Writer:
    """Records each batch; fails as told, run by run."""

    def __init__(self) -> None:
        self.batches: list[RunEvents] = []
        self.unreachable_once = False
        self.unreachable_times = 0
        self.refused_runs: set[str] = set()
        self.wrote = anyio.Event()
        self.writing = anyio.Event()
        self.hold: anyio.Event | None = None

    async def write(self, batch: RunEvents) -> None:
        self.writing.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.unreachable_once:
            self.unreachable_once = False
            raise OSError("connection refused")
        if self.unreachable_times:
            self.unreachable_times -= 1
            raise OSError("connection refused")
        if any(run_id in self.refused_runs for run_id, _ in batch):
            raise IntegrityError("INSERT", {}, Exception("foreign key"))
        self.batches.append(batch)
        self.wrote.set()
        self.wrote = anyio.Event()

    def written(self) -> list[tuple[str, int]]:
        return [(run_id, event.seq) for batch in self.batches for run_id, event in batch]


@asynccontextmanager
async def writing_log() -> AsyncIterator[tuple[EventLog, Writer]]:
    writer = Writer()
    log = EventLog(writer.write)
    async with anyio.create_task_group() as group:
        group.start_soon(log.write_forever)
        yield log, writer
        group.cancel_scope.cancel()


async def test_the_events_of_every_run_go_in_one_write() -> None:
    async with writing_log() as (log, writer):
        log.append("a", _event(1))
        log.append("b", _event(1))
        log.append("a", _event(2))
        with anyio.fail_after(5):
            await writer.wrote.wait()
        assert writer.batches == [[("a", _event(1)), ("b", _event(1)), ("a", _event(2))]]


async def test_a_finishing_run_takes_its_unwritten_events_back() -> None:
    async with writing_log() as (log, writer):
        log.append("a", _event(1))
        log.append("b", _event(1))
        log.append("a", _event(2))
        assert await log.take_unwritten("a") == [("a", _event(1)), ("a", _event(2))]
        with anyio.fail_after(5):
            await writer.wrote.wait()
        assert writer.written() == [("b", 1)]


@pytest.mark.parametrize("writes_before", [0, 1])
async def test_taking_back_waits_for_a_write_in_progress_of_that_run(writes_before: int) -> None:
    """Else the run's final statement could land before its earlier events. (After a first
    write too: the signal that a write has ended is renewed each time.)"""
    async with writing_log() as (log, writer):
        for _ in range(writes_before):
            log.append("before", _event(1))
            with anyio.fail_after(5):
                await writer.wrote.wait()
            writer.batches.clear()
            writer.writing = anyio.Event()
        writer.hold = anyio.Event()
        log.append("a", _event(1))
        with anyio.fail_after(5):
            await writer.writing.wait()  # the batch is being written, held
        log.append("a", _event(2))
        taken: RunEvents = []
        async with anyio.create_task_group() as group:

            async def take() -> None:
                taken.extend(await log.take_unwritten("a"))

            group.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            assert taken == [] and writer.written() == []
            writer.hold.set()
        assert writer.written() == [("a", 1)]
        assert taken == [("a", _event(2))]


async def test_events_put_back_are_written_first_and_in_order() -> None:
    async with writing_log() as (log, writer):
        log.append("a", _event(3))
        log.put_back([("a", _event(1)), ("a", _event(2))])
        with anyio.fail_after(5):
            await writer.wrote.wait()
        assert writer.written() == [("a", 1), ("a", 2), ("a", 3)]


async def test_an_unreachable_database_keeps_the_events_until_it_is_back() -> None:
    async with writing_log() as (log, writer):
        writer.unreachable_once = True
        log.append("a", _event(1))
        log.append("a", _event(2))
        with anyio.fail_after(10):
            await writer.wrote.wait()
        assert writer.written() == [("a", 1), ("a", 2)]


async def test_a_run_the_database_refuses_does_not_hold_up_the_others() -> None:
    async with writing_log() as (log, writer):
        writer.refused_runs = {"deleted"}
        log.append("deleted", _event(1))
        log.append("a", _event(1))
        with anyio.fail_after(5):
            await writer.wrote.wait()
        assert writer.written() == [("a", 1)]


async def test_events_the_database_could_not_take_even_run_by_run_wait_for_it() -> None:
    """Unreachable for the batch and again for the run's own write: the events go back in the
    queue and are written after `RETRY_SECONDS` (1 s), not dropped as if refused."""
    async with writing_log() as (log, writer):
        writer.unreachable_times = 2
        log.append("a", _event(1))
        with anyio.fail_after(10):
            await writer.wrote.wait()
        assert writer.written() == [("a", 1)]


async def test_a_round_with_nothing_to_write_leaves_the_log_writing() -> None:
    """A run took its events back before the batch window ended: that round finds nothing,
    and the next events are written all the same."""
    async with writing_log() as (log, writer):
        log.append("a", _event(1))
        assert await log.take_unwritten("a") == [("a", _event(1))]
        await anyio.wait_all_tasks_blocked()  # the writer's empty round has run
        log.append("b", _event(1))
        with anyio.fail_after(5):
            await writer.wrote.wait()
        assert writer.written() == [("b", 1)]
