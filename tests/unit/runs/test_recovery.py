"""Recovery on the in-memory log and record, no database: the runs of an instance gone silent,
a run whose end could not be stored in time, a cancel whose announcement was lost, old logs."""

from __future__ import annotations

import json
import uuid

import anyio
import pytest

from app.domain import MessageStatus, RunStatus
from app.events import LoggedEvent, Start, Text, encode, error_event
from app.runs import registry as registry_module
from app.runs.ending import RunEnd
from app.runs.live import UNLOGGED_WINDOW
from app.runs.log.memory import MemoryEventLog
from app.runs.record.memory import MemoryRunRecord
from app.runs.recovery import SILENT_SECONDS
from tests.unit.runs.engine import Clock, ended, everything, going, instance


class Unreachable(ConnectionError):
    pass


class FlakyRecord(MemoryRunRecord):
    """The in-memory record, unreachable for storing ends while `down`."""

    down = False

    async def store_end(self, end: RunEnd) -> LoggedEvent:
        if self.down:
            raise Unreachable
        return await super().store_end(end)

    def is_outage(self, error: BaseException) -> bool:
        return isinstance(error, Unreachable)


async def test_the_runs_of_a_silent_instance_are_closed_from_their_log() -> None:
    clock = Clock()
    log, record = MemoryEventLog(clock=clock), MemoryRunRecord(clock=clock)
    run = record.start(str(uuid.uuid4()), "user", instance="gone")
    said = [encode(Start(run.conversation_id, run.user_message_id, run.id), 1)]
    said += [encode(Text(text), seq) for seq, text in ((2, "Hel"), (3, "lo"))]
    await log.append([(run.id, event) for event in said])
    async with instance(log, record) as survivor:
        await survivor.recovery.beat()
        assert await survivor.recovery.close_orphans() == 0, "not silent for long enough yet"
        clock.now += SILENT_SECONDS + 1
        await survivor.recovery.beat()
        assert await survivor.recovery.close_orphans() == 1
        assert await survivor.recovery.close_orphans() == 0, "closed once"
        followed = await everything(survivor.registry.follow(record.run(run.id) or run, 0))
    state = await record.state(run.id)
    assert state is not None and state.status is RunStatus.INCOMPLETE
    final = json.loads(followed[-1].data)
    assert followed[:-1] == said
    assert (final["type"], final["code"]) == ("error", "interrupted")
    assert (final["stored_through"], final["seq"]) == (3, 3 + UNLOGGED_WINDOW + 1)
    assert state.final == followed[-1]
    answer = record.answer(run.id)
    assert answer is not None
    assert (answer.content, answer.status) == ("Hello", MessageStatus.INCOMPLETE)


async def test_a_run_whose_end_could_not_be_stored_in_time_is_closed_with_the_same_final_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its followers got `interrupted` when the record could not be reached in time; once it
    can, recovery stores the end with that same event, at the same place."""
    monkeypatch.setattr(registry_module, "FINISH_TIMEOUT_SECONDS", 0.3)
    record = FlakyRecord()
    async with instance(record=record) as here:
        run, script, live = await going(here)
        following = live.subscribe(0)
        record.down = True
        script.go.set()
        with anyio.fail_after(10):
            told = await everything(following.batches())
        still = await record.state(run.id)
        assert still is not None and still.status is RunStatus.ACTIVE
        record.down = False
        assert await here.recovery.close_orphans() == 1
        state = await record.state(run.id)
        logged = await here.log.read(run.id, 0)
    assert json.loads(told[-1].data)["code"] == "interrupted"
    assert state is not None and state.final == told[-1]
    assert logged == told, "the log holds what the followers were told, final event included"


async def test_a_cancel_whose_announcement_was_lost_is_found_by_recovery() -> None:
    async with instance() as here:
        run, _, live = await going(here)
        here.record.ask_cancel_unannounced(run.id)
        await anyio.wait_all_tasks_blocked()
        assert not live.ended.is_set()
        await here.recovery.recheck_cancels()
        with anyio.fail_after(10):
            events = await everything(live.subscribe(0).batches())
    assert json.loads(events[-1].data)["status"] == "cancelled"


async def test_old_logs_are_forgotten_and_a_reader_short_of_their_end_is_told_so() -> None:
    """Past retention the log and the record's final event are gone: a reader that has not
    had the run's end gets `events_missing` in its place, never a stream that just stops as
    if the run were whole; one that has had it gets nothing more."""
    clock = Clock()
    log, record = MemoryEventLog(clock=clock), MemoryRunRecord(clock=clock, final_kept_seconds=60)
    async with instance(log, record, retention_seconds=60) as here:
        run = await ended(here)
        with anyio.fail_after(10):  # a prune that forgets nothing says so, and ends
            await here.recovery.prune()
        kept = await everything(here.registry.follow(run, 0))
        clock.now += 61
        with anyio.fail_after(10):
            await here.recovery.prune()
        forgotten = await everything(here.registry.follow(run, 0))
        resumed = await everything(here.registry.follow(run, 2))
        past_the_end = await everything(here.registry.follow(run, 4))
    assert [event.seq for event in kept] == [1, 2, 3, 4]
    missing = encode(error_event("events_missing"), 4)  # in place of the end, at its seq
    assert forgotten == [missing] and resumed == [missing]
    assert past_the_end == []
