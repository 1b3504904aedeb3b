"""What clients are shown before the log has it, and the end of a run whose instance died, on
the in-memory log and record: followers are shown no event more than `UNLOGGED_WINDOW` past
what the log holds; the run of a gone instance ends with a final event numbered above anything
its clients were shown, which says where the stored answer ends; a reader of the log takes a
gap only where a final event declares it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import pytest

from app.domain import MessageStatus, NewMessage, Role, Run, RunStatus
from app.events import LoggedEvent, Start, Text, encode, error_event, interrupted
from app.metrics import exposition
from app.runs import registry as registry_module
from app.runs.ending import RunEnd
from app.runs.live import UNLOGGED_WINDOW, Subscription
from app.runs.log.base import RunEvents
from app.runs.log.memory import MemoryEventLog
from app.runs.record.memory import MemoryRunRecord
from app.runs.recovery import SILENT_SECONDS
from tests.unit.runs.engine import Clock, HeldLog, doomed_instance, everything, going, instance


def _seqs(events: list[LoggedEvent]) -> list[int]:
    return [event.seq for event in events]


async def _collect(subscription: Subscription, into: list[LoggedEvent]) -> None:
    async for batch in subscription.batches():
        into.extend(batch)


async def test_followers_are_shown_no_event_past_the_window_while_the_log_cannot_be_written() -> (
    None
):
    """The log stops taking appends: the run goes on, its followers get the first
    `UNLOGGED_WINDOW` events and no more; once the log takes them, the rest, then the end."""
    log = HeldLog()
    texts = tuple(f"t{n} " for n in range(UNLOGGED_WINDOW + 5))
    async with instance(log) as here:
        log.hold()
        run, script, live = await going(here, texts)
        shown: list[LoggedEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, live.subscribe(0), shown)
            late: list[LoggedEvent] = []
            group.start_soon(_collect, live.subscribe(UNLOGGED_WINDOW - 2), late)
            await anyio.wait_all_tasks_blocked()
            assert _seqs(shown) == list(range(1, UNLOGGED_WINDOW + 1))
            assert _seqs(late) == [UNLOGGED_WINDOW - 1, UNLOGGED_WINDOW]
            assert await log.read(run.id, 0) == []
            log.release()
            with anyio.fail_after(10):
                while len(shown) < len(texts) + 1:  # noqa: ASYNC110 (the writer's pace)
                    await anyio.sleep(0.01)
            script.go.set()
    assert _seqs(shown) == list(range(1, len(texts) + 3)) and shown[-1].type == "done"
    assert _seqs(late) == list(range(UNLOGGED_WINDOW - 1, len(texts) + 3))
    assert await log.read(run.id, 0, limit=len(shown)) == shown


class Unreachable(ConnectionError):
    pass


class BatchesRefused(MemoryEventLog):
    """A log that cannot take the writer's batches (each append fails as an outage) while the
    end of a run, one statement of its own, goes through."""

    async def append(self, events: RunEvents) -> None:
        raise Unreachable

    async def end_run(
        self, end: RunEnd, unwritten: RunEvents, store: Callable[[], Awaitable[LoggedEvent]]
    ) -> LoggedEvent:
        await MemoryEventLog.append(self, unwritten)
        stored = await store()
        await MemoryEventLog.append(self, [(end.run_id, stored)])
        return stored

    def is_outage(self, error: BaseException) -> bool:
        return isinstance(error, Unreachable)


async def test_a_run_whose_end_is_stored_shows_what_it_held_back_then_its_final_event() -> None:
    log = BatchesRefused()
    texts = tuple(f"t{n} " for n in range(UNLOGGED_WINDOW + 3))
    async with instance(log) as here:
        run, script, live = await going(here, texts)
        told: list[LoggedEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, live.subscribe(0), told)
            await anyio.wait_all_tasks_blocked()
            assert len(told) == UNLOGGED_WINDOW
            script.go.set()
        logged = await log.read(run.id, 0, limit=len(texts) + 2)
    assert _seqs(told) == list(range(1, len(texts) + 3)) and told[-1].type == "done"
    assert logged == told


async def test_a_killed_instances_run_ends_above_every_seq_its_clients_were_shown() -> None:
    """The owner shows events the log never gets, then dies. The survivor closes the run with
    a final event above them, saying where the stored answer ends: a client back with any id
    it was shown gets that one final event (and what the log holds after its id), and no seq
    names two events."""
    clock = Clock()
    log, record = HeldLog(clock=clock), MemoryRunRecord(clock=clock)
    shown: list[LoggedEvent] = []
    async with doomed_instance(log, record) as owner:
        run, _, live = await going(owner, ("Hel", "lo"))
        with anyio.fail_after(10):
            while len(await log.read(run.id, 0)) < 3:  # noqa: ASYNC110 (the writer's pace)
                await anyio.sleep(0.01)
        log.hold()
        for text in (" wor", "ld", "!"):  # shown at once; the log never gets them
            owner.registry.emit(live, encode(Text(text), live.next_seq))
        following = live.subscribe(0)
        async for batch in following.batches():
            shown.extend(batch)
            if len(shown) == 6:
                break
    log.release()
    clock.now += SILENT_SECONDS + 1
    async with instance(log, record) as survivor:
        assert await survivor.recovery.close_orphans() == 1
        ended = record.run(run.id)
        assert ended is not None
        back = {seq: await everything(survivor.registry.follow(ended, seq)) for seq in range(7)}
    logged = await log.read(run.id, 0)
    final = logged[-1]
    assert _seqs(shown) == [1, 2, 3, 4, 5, 6] and _seqs(logged[:-1]) == [1, 2, 3]
    assert final.seq == 3 + UNLOGGED_WINDOW + 1 > shown[-1].seq
    assert json.loads(final.data) == {
        **json.loads(encode(interrupted(retryable=True, stored_through=3), final.seq).data)
    }
    by_seq = {event.seq: event for event in logged}
    assert all(by_seq.get(event.seq, event) == event for event in shown), "a seq named twice"
    for seq, events in back.items():
        assert events == [*logged[seq:-1], final], f"back with id {seq}"
    answer = record.answer(run.id)
    assert answer is not None and (answer.content, answer.status) == (
        "Hello",
        MessageStatus.INCOMPLETE,
    )
    assert ended.last_seq == final.seq


async def test_a_run_of_this_instance_left_to_recovery_ends_right_after_its_last_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its own runs' unwritten events are still here: the end stores them all, and the final
    event follows the last, as the run's own end would have numbered it."""
    monkeypatch.setattr(registry_module, "FINISH_TIMEOUT_SECONDS", 0.3)
    log = HeldLog()
    async with instance(log) as here:
        run, script, live = await going(here)
        told: list[LoggedEvent] = []
        log.hold()
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, live.subscribe(0), told)
            script.go.set()
        log.release()
        assert await here.recovery.close_orphans() == 1
        logged = await log.read(run.id, 0)
    assert _seqs(told) == [1, 2, 3, 4] and json.loads(told[-1].data)["code"] == "interrupted"
    assert logged == told and "stored_through" not in told[-1].data


async def test_an_end_not_stored_past_the_window_gives_followers_no_final_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log was down long enough for the run to hold events back, and its end could not be
    stored: followers get what they were shown and no final event (another closer could number
    it otherwise), and read the end from the log once recovery has stored it."""
    monkeypatch.setattr(registry_module, "FINISH_TIMEOUT_SECONDS", 0.3)
    log = HeldLog()
    texts = tuple(f"t{n} " for n in range(UNLOGGED_WINDOW + 2))
    async with instance(log) as here:
        log.hold()
        run, script, live = await going(here, texts)
        told: list[LoggedEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, live.subscribe(0), told)
            script.go.set()
        log.release()
        assert await here.recovery.close_orphans() == 1
        stored = here.record.run(run.id)
        assert stored is not None
        rest = await everything(here.registry.follow(stored, told[-1].seq))
    assert _seqs(told) == list(range(1, UNLOGGED_WINDOW + 1)), "no final event, nothing held"
    assert _seqs(rest) == list(range(UNLOGGED_WINDOW + 1, len(texts) + 3))
    assert json.loads(rest[-1].data)["code"] == "interrupted"


# Reading the log: a gap only where a final event declares it


def _said(run_id: str, count: int) -> list[LoggedEvent]:
    return [encode(Start(1, 1, run_id), 1)] + [
        encode(Text(f"t{seq}"), seq) for seq in range(2, count + 1)
    ]


def _final(seq: int, stored_through: int | None) -> LoggedEvent:
    return encode(interrupted(retryable=True, stored_through=stored_through), seq)


async def _ended(
    here: MemoryEventLog, record: MemoryRunRecord, logged: list[LoggedEvent], final: LoggedEvent
) -> Run:
    """A run of a gone instance whose log holds `logged`, ended by storing `final`."""
    run = record.start(str(uuid.uuid4()), "user", instance="gone")
    await here.append([(run.id, event) for event in logged])
    answer = NewMessage(run.conversation_id, Role.ASSISTANT, "", MessageStatus.INCOMPLETE)
    end = RunEnd(run.id, RunStatus.INCOMPLETE, answer, 99, final)
    await here.end_run(end, [], partial(record.store_end, end))
    ended = record.run(run.id)
    assert ended is not None
    return ended


@pytest.mark.parametrize("after", [0, 2, 5, 6, 500])
async def test_a_reader_crosses_a_gap_its_final_event_declares(after: int) -> None:
    log, record = MemoryEventLog(), MemoryRunRecord()
    said = _said("run", 5)
    run = await _ended(log, record, said, _final(1006, stored_through=5))
    async with instance(log, record) as here:
        events = await everything(here.registry.follow(run, after))
    assert _seqs(events) == [*range(after + 1, 6), 1006]


LOST = {
    "an event missing in the middle": ([1, 2, 4, 5], 1006, 5),
    "the last events stored missing": ([1, 2, 3], 1006, 5),
    "a final event right after a gap it does not declare": ([1, 2, 3], 5, None),
}


def _missing(seq: int) -> LoggedEvent:
    return encode(error_event("events_missing"), seq)


def _told_missing() -> float:
    """The counter of followers told events are missing, as /metrics shows it."""
    body, _ = exposition()
    for line in body.decode().splitlines():
        if line.startswith("todo_chat_events_missing_total "):
            return float(line.split()[1])
    raise AssertionError("no todo_chat_events_missing_total in the metrics")


@pytest.mark.parametrize(("kept", "final_seq", "declared"), LOST.values(), ids=LOST.keys())
async def test_a_reader_never_passes_a_gap_off_as_a_whole_run(
    kept: list[int], final_seq: int, declared: int | None
) -> None:
    """Events lost from the log (a store that lost them, a bug): whichever instance reads,
    after the run's end, from the start or from an id, gets the events up to the gap, then a
    typed `events_missing` error numbered just below what follows the gap (a reader back with
    that id reads on from there), and nothing after it."""
    log, record = MemoryEventLog(), MemoryRunRecord()
    said = {event.seq: event for event in _said("run", 5)}
    run = await _ended(log, record, [said[seq] for seq in kept], _final(final_seq, declared))
    whole = next(n for n, seq in enumerate(kept, 1) if kept[n : n + 1] != [seq + 1])
    found = kept[whole] if whole < len(kept) else final_seq
    told = _told_missing()
    async with instance(log, record) as here:
        events = await everything(here.registry.follow(run, 0))
        resumed = await everything(here.registry.follow(run, 1))
    expected = [said[seq] for seq in kept[:whole]]
    assert events == [*expected, _missing(found - 1)]
    assert resumed == [*expected[1:], _missing(found - 1)]
    assert _told_missing() == told + 2, "each follower told is counted"


async def test_a_copy_of_a_run_going_on_elsewhere_stops_at_a_gap_with_a_typed_error() -> None:
    """A follower on another instance, while the run goes on: its stream ends with an
    `events_missing` error, so its client is told, not shown a cut or a finished answer."""
    log, record = MemoryEventLog(), MemoryRunRecord()
    run = record.start(str(uuid.uuid4()), "user", instance="elsewhere")
    said = _said(run.id, 5)
    await log.append([(run.id, said[0]), (run.id, said[1]), (run.id, said[3])])
    told = _told_missing()
    async with instance(log, record) as here:
        followed: dict[int, list[LoggedEvent]] = {}

        async def follow(after: int) -> None:
            followed[after] = await everything(here.registry.follow(run, after))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:  # two followers of one copy
                group.start_soon(follow, 0)
                group.start_soon(follow, 1)
    assert followed == {0: [said[0], said[1], _missing(3)], 1: [said[1], _missing(3)]}
    assert _told_missing() == told + 2, "each follower told is counted, not each copy"


async def test_the_final_event_from_the_record_is_checked_as_well() -> None:
    """The log lost the events before the final one, which only the record holds."""
    log, record = MemoryEventLog(), MemoryRunRecord()
    run = record.start(str(uuid.uuid4()), "user", instance="gone")
    said = _said(run.id, 3)
    await log.append([(run.id, said[0])])
    answer = NewMessage(run.conversation_id, Role.ASSISTANT, "", MessageStatus.INCOMPLETE)
    await record.store_end(RunEnd(run.id, RunStatus.INCOMPLETE, answer, 99, _final(4, None)))
    ended = record.run(run.id)
    assert ended is not None
    async with instance(log, record) as here:
        assert await everything(here.registry.follow(ended, 0)) == [said[0], _missing(3)]
        assert _seqs(await everything(here.registry.follow(ended, 3))) == [4]
