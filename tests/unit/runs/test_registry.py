"""The registry on the in-memory log and record, no database: a turn, followers here and on
another instance, resuming, cancelling, reading an ended run, and a run someone else ended."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import anyio
import pytest

from app.domain import MessageStatus, NewMessage, Role, RunStatus
from app.events import MAX_SEQ, LoggedEvent, encode, error_event, interrupted
from app.runs.ending import RunEnd
from app.runs.log.base import READ_LIMIT, RunEvents
from app.runs.log.memory import MemoryEventLog
from app.runs.record.memory import MemoryRunRecord
from tests.unit.runs.engine import HeldLog, Script, ended, everything, going, instance


def _types(events: list[LoggedEvent]) -> list[str]:
    return [event.type for event in events]


def _seqs(events: list[LoggedEvent]) -> list[int]:
    return [event.seq for event in events]


async def test_a_turn_streams_to_its_follower_and_ends_in_the_log_and_the_record() -> None:
    async with instance() as here:
        run = here.begin(str(uuid.uuid4()))
        script = Script(here.registry, run)
        script.go.set()
        live = here.start(run.id, script)
        with anyio.fail_after(10):
            streamed = await everything(live.subscribe(0).batches())
        await here.registry.wait_idle()
        logged = await here.log.read(run.id, 0)
        state = await here.record.state(run.id)
    assert _types(streamed) == ["start", "text", "text", "done"]
    assert _seqs(streamed) == [1, 2, 3, 4]
    assert logged == streamed, "the log holds what the follower was shown, its end included"
    assert state is not None and state.status is RunStatus.COMPLETE
    assert state.final == streamed[-1]
    answer = here.record.answer(run.id)
    assert answer is not None and answer.content == "Hello"


async def test_a_follower_joining_late_gets_every_event_once() -> None:
    async with instance() as here:
        run, script, _ = await going(here)
        following = everything(here.registry.follow(run, 0))
        script.go.set()
        with anyio.fail_after(10):
            joined = await following
    assert _seqs(joined) == [1, 2, 3, 4] and joined[-1].type == "done"


async def test_followers_on_another_instance_resume_after_the_seq_they_had() -> None:
    """The run goes on on one instance; on the other, a follower reads it from the shared log
    after the seq it names, woken by the owner's appends."""
    log, record = MemoryEventLog(), MemoryRunRecord()
    async with instance(log, record) as owner, instance(log, record) as other:
        run, script, _ = await going(owner)
        assert not other.registry.is_running_here(run.id)
        async with anyio.create_task_group() as group:
            resumed: list[LoggedEvent] = []
            whole: list[LoggedEvent] = []

            async def follow(after: int, into: list[LoggedEvent]) -> None:
                into.extend(await everything(other.registry.follow(run, after)))

            group.start_soon(follow, 2, resumed)
            group.start_soon(follow, 0, whole)
            await anyio.wait_all_tasks_blocked()
            script.go.set()
    assert _seqs(resumed) == [3, 4] and resumed[-1].type == "done"
    assert _seqs(whole) == [1, 2, 3, 4]


async def test_a_cancel_asked_on_another_instance_stops_the_run_where_it_runs() -> None:
    log, record = MemoryEventLog(), MemoryRunRecord()
    async with instance(log, record) as owner, instance(log, record) as other:
        run, _, live = await going(owner)
        await other.registry.cancel(run)
        with anyio.fail_after(10):
            await live.ended.wait()
        followed = await everything(other.registry.follow(run, 0))
        state = await record.state(run.id)
    final = json.loads(followed[-1].data)
    assert (final["type"], final["status"]) == ("done", "cancelled")
    assert state is not None and state.status is RunStatus.CANCELLED


async def test_a_cancel_asked_where_the_run_runs_stops_it() -> None:
    async with instance() as here:
        run, _, live = await going(here)
        await here.registry.cancel(run)
        with anyio.fail_after(10):
            events = await everything(live.subscribe(0).batches())
    assert json.loads(events[-1].data)["status"] == "cancelled"


async def test_a_follower_of_an_ended_run_reads_it_from_the_log() -> None:
    log, record = MemoryEventLog(), MemoryRunRecord()
    async with instance(log, record) as owner:
        run = await ended(owner)
    async with instance(log, record) as later:
        whole = await everything(later.registry.follow(run, 0))
        rest = await everything(later.registry.follow(run, 3))
        past_the_end = await everything(later.registry.follow(run, 4))
    assert _seqs(whole) == [1, 2, 3, 4] and whole[-1].type == "done"
    assert rest == whole[3:]
    assert past_the_end == []


async def test_an_end_stored_first_by_another_closer_is_the_one_followers_get() -> None:
    """Another instance closed the run (it took this one for dead) while it still ran: its
    late finish stores nothing, and its followers get the final event stored first."""
    async with instance() as here:
        run, script, live = await going(here)
        following = live.subscribe(0)
        earlier = encode(interrupted(retryable=True), 4)
        said = NewMessage(run.conversation_id, Role.ASSISTANT, "Hello", MessageStatus.INCOMPLETE)
        closed = await here.record.store_end(
            RunEnd(run.id, RunStatus.INCOMPLETE, said, 99, earlier)
        )
        assert closed == earlier
        script.go.set()
        with anyio.fail_after(10):
            events = await everything(following.batches())
        state = await here.record.state(run.id)
        logged_final = await here.log.final(run.id)
    assert events[-1] == earlier, "followers get the final event stored first"
    assert state is not None and state.status is RunStatus.INCOMPLETE
    assert logged_final == earlier


class RefusingLog(MemoryEventLog):
    """The in-memory log, handing out a run's events up to seq `refused_after`, then refusing
    (not away: an error `is_outage` does not know), as a log holding an event it cannot hand
    out would."""

    def __init__(self, refused_after: int) -> None:
        super().__init__()
        self.refused_after = refused_after

    async def read(
        self,
        run_id: str,
        after_seq: int,
        *,
        limit: int = READ_LIMIT,
        budget: int | None = None,
        wait: float = 0.0,
    ) -> list[LoggedEvent]:
        if after_seq >= self.refused_after:
            raise RuntimeError("the log refused")
        page = await super().read(run_id, after_seq, limit=limit, budget=budget, wait=wait)
        return [event for event in page if event.seq <= self.refused_after]


FOLLOW_FAILED = encode(error_event("follow_failed"), MAX_SEQ)


async def test_a_copy_of_a_run_elsewhere_whose_log_refuses_ends_with_a_typed_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one reader of a run going on elsewhere meets an error that is no outage: every
    follower here gets a `follow_failed` error after what it was shown, never a stream that
    just stops, and the error is logged."""
    log, record = RefusingLog(refused_after=3), MemoryRunRecord()
    async with instance(log, record) as owner, instance(log, record) as other:
        run, script, _ = await going(owner)
        with anyio.fail_after(10):
            whole = await everything(other.registry.follow(run, 0))
            resumed = await everything(other.registry.follow(run, 3))
        script.go.set()
    assert _seqs(whole) == [1, 2, 3, MAX_SEQ] and whole[-1] == FOLLOW_FAILED
    assert resumed == [FOLLOW_FAILED]
    failures = [
        r.exc_info[1] for r in caplog.records if r.name == "app.runs.registry" and r.exc_info
    ]
    assert failures and "the log refused" in str(failures[0])


async def test_a_replay_whose_log_refuses_ends_with_a_typed_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log, record = RefusingLog(refused_after=2), MemoryRunRecord()
    async with instance(log, record) as owner:
        run = await ended(owner)
        with anyio.fail_after(10):
            replayed = await everything(owner.registry.follow(run, 0))
    assert _seqs(replayed) == [1, 2, MAX_SEQ] and replayed[-1] == FOLLOW_FAILED
    assert any(r.name == "app.runs.registry" and r.exc_info for r in caplog.records)


class Unreachable(ConnectionError):
    pass


class AwayAtTheEnd(HeldLog):
    """The in-memory log, unreachable for a run's end (so the registry stores it in the record
    alone and leaves its events to the writer), whose appends wait while it is held and then
    are refused (an error that is no outage: the writer drops them) while `refusing`."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False
        self.appending = anyio.Event()
        """Set once an append has begun since the log was last held."""

    def hold(self) -> None:
        super().hold()
        self.appending = anyio.Event()

    async def append(self, events: RunEvents) -> None:
        self.appending.set()
        await super().append([])  # waits while held
        if self.refusing:
            raise RuntimeError("the log refused")
        await super().append(events)

    async def end_run(
        self, end: RunEnd, unwritten: RunEvents, store: Callable[[], Awaitable[LoggedEvent]]
    ) -> LoggedEvent:
        raise Unreachable

    def is_outage(self, error: BaseException) -> bool:
        return isinstance(error, Unreachable)


@pytest.mark.parametrize("refused", [False, True], ids=["appended", "dropped"])
async def test_a_run_ended_while_its_log_was_away_is_let_go_once_the_writer_is_done_with_it(
    refused: bool,
) -> None:
    """Its events are kept for the writer (to append again if the log comes back without the
    earlier ones) only while the writer holds some of them: let go once they are appended,
    and as well once the writer drops them (refused), which would otherwise keep them for
    ever."""
    log = AwayAtTheEnd()
    async with instance(log) as here:
        run, script, live = await going(here)
        with anyio.fail_after(10):
            while live.logged_seq < 3:  # noqa: ASYNC110 (the writer's pace)
                await anyio.sleep(0.01)
        log.hold()
        script.go.set()
        with anyio.fail_after(10):
            await live.ended.wait()
            await log.appending.wait()  # the writer appends the run's end, held meanwhile
        assert here.registry.keeps_unlogged_end(run.id), "kept while the writer holds them"
        log.refusing = refused
        log.release()
        await anyio.wait_all_tasks_blocked()
        assert not here.registry.keeps_unlogged_end(run.id)
        logged = await log.final(run.id)
    assert (logged is None) == refused
