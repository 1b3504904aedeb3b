"""Every behaviour of the event log's interface (`app.runs.log.base`), against every backend
(`backend`: each entry of tests/integration/backends.py's `BACKENDS`), with the record it is
paired with, and two instances on one store where the backend has a store to share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial

import anyio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.domain import MessageStatus, NewMessage, Role, Run, RunStatus
from app.events import Done, LoggedEvent, Start, Text, encode, interrupted
from app.runs.ending import RunEnd
from app.runs.live import UNLOGGED_WINDOW, batch_size, utf8_length
from app.runs.log.base import EventLog
from app.runs.log.writer import EventWriter
from app.runs.record.base import RunRecord
from app.runs.registry import RunRegistry
from tests.integration.backends import Backend, Instance

ONE = "instance-one"


def _said(run_id: str, texts: tuple[str, ...] = ("Hel", "lo")) -> list[LoggedEvent]:
    """A run's first events: its start, then a text event for each of `texts`."""
    return [encode(Start(1, 1, run_id), 1)] + [
        encode(Text(text), seq) for seq, text in enumerate(texts, 2)
    ]


def _end(
    backend: Backend, run_id: str, seq: int, *, done: bool = True, content: str = "Hello"
) -> RunEnd:
    """How the run ends, with a final event at `seq`: `done`, or `interrupted`."""
    conversation_id, answer_id = backend.begun[run_id]
    final = Done(conversation_id, answer_id, {}) if done else interrupted(retryable=False)
    status = MessageStatus.COMPLETE if done else MessageStatus.INCOMPLETE
    answer = NewMessage(conversation_id, Role.ASSISTANT, content, status)
    return RunEnd(run_id, RunStatus(status.value), answer, answer_id, encode(final, seq))


async def _end_run(
    log: EventLog, record: RunRecord, end: RunEnd, unwritten: list[LoggedEvent]
) -> LoggedEvent:
    """End the run as the registry does: its unwritten events, then its end."""
    return await log.end_run(
        end, [(end.run_id, event) for event in unwritten], lambda: record.store_end(end)
    )


async def _parked(instance: Instance, looks_before: int, readers: int = 1) -> None:
    """Until the readers started on `instance` have looked in the log, found nothing, and
    wait: what is appended from now on reaches them only by a wake-up."""
    await anyio.wait_all_tasks_blocked()
    if instance.looks is not None:
        while instance.looks() < looks_before + readers:  # noqa: ASYNC110 (another's state)
            await anyio.sleep(0.01)
        await anyio.wait_all_tasks_blocked()


def _looks(instance: Instance) -> int:
    return 0 if instance.looks is None else instance.looks()


async def _read_on_the_other(
    backend: Backend, run: str, after_seq: int, meanwhile: Callable[[], Awaitable[object]]
) -> list[LoggedEvent]:
    """What a read on the other instance, waiting far longer than the test may take, answers
    when `meanwhile` runs once it has looked and waits: only a wake-up ends it in time."""
    read: list[LoggedEvent] = []

    async def wait_on_the_other() -> None:
        read.extend(await backend.other.log.read(run, after_seq, wait=600))

    looks = _looks(backend.other)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_on_the_other)
            await _parked(backend.other, looks)
            await meanwhile()
    return read


# Appending and reading


async def test_events_of_several_runs_in_one_append_are_read_back_per_run_in_order(
    backend: Backend,
) -> None:
    log = backend.one.log
    a, b = await backend.begin(ONE), await backend.begin(ONE)
    said_a, said_b = _said(a), _said(b, ("Bye",))
    await log.append([(a, said_a[0]), (b, said_b[0]), (a, said_a[1]), (b, said_b[1])])
    await log.append([(a, said_a[2])])
    assert await log.read(a, 0) == said_a
    assert await log.read(b, 0) == said_b
    assert await log.read(a, 1) == said_a[1:]
    assert await log.read(a, 3) == []
    assert await backend.other.log.read(a, 0) == said_a, "another instance reads the same"


async def test_appends_are_idempotent_by_run_and_seq(backend: Backend) -> None:
    """A batch written twice (its first reply lost), or an event another closer logged first:
    what is kept stays as it is."""
    log = backend.one.log
    run = await backend.begin(ONE)
    said = _said(run)
    await log.append([(run, event) for event in said[:2]])
    other_first = LoggedEvent(1, said[0].data.replace('"start"', '"start" '))
    await log.append([(run, other_first), (run, said[1]), (run, said[2])])
    await log.append([(run, said[2])])
    assert await log.read(run, 0) == said


async def test_a_read_is_at_most_its_limit(backend: Backend) -> None:
    log = backend.one.log
    run = await backend.begin(ONE)
    said = _said(run, tuple("abcdefg"))
    await log.append([(run, event) for event in said])
    assert await log.read(run, 0, limit=3) == said[:3]
    assert await log.read(run, 3, limit=3) == said[3:6]
    assert await log.read(run, 6, limit=3) == said[6:]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=12),
    after=st.integers(0, 12),
    limit=st.integers(1, 12),
    budget=st.none() | st.integers(1, 24_000) | st.tuples(st.integers(1, 12), st.integers(-1, 1)),
)
# The edges themselves, every time: one byte short of two events, exactly two, one byte more.
@example(sizes=[5, 5, 5], after=0, limit=3, budget=(2, -1))
@example(sizes=[5, 5, 5], after=0, limit=3, budget=(2, 0))
@example(sizes=[5, 5, 5], after=0, limit=3, budget=(2, 1))
async def test_a_page_of_the_log_holds_as_many_events_as_fit_in_its_budget(
    backend: Backend,
    sizes: list[int],
    after: int,
    limit: int,
    budget: int | tuple[int, int] | None,
) -> None:
    """The log pages as a live run batches (`batch_size`): a follower reading a run from the
    log holds no more of it at once than one following it in memory. A budget drawn as
    (k, d) is the size of the page's first k events, plus d bytes: its very edge."""
    run = await backend.begin(ONE)
    # Two bytes a character in UTF-8: the budget counts bytes, as `batch_size` does.
    events = [encode(Text("é" * size), seq) for seq, size in enumerate(sizes, 1)]
    await backend.one.log.append([(run, event) for event in events])
    rest = events[after:][:limit]
    if isinstance(budget, tuple):
        count, more = budget
        budget = max(1, sum(utf8_length(event.data) for event in rest[:count]) + more)
    page = await backend.one.log.read(run, after, limit=limit, budget=budget)
    assert page == (rest if budget is None else rest[: batch_size(rest, budget)])


# Waiting


async def test_a_reader_waiting_is_woken_by_an_append_on_another_instance(
    backend: Backend,
) -> None:
    run = await backend.begin(ONE)
    said = _said(run)
    await backend.one.log.append([(run, said[0])])
    appended = partial(backend.one.log.append, [(run, said[1]), (run, said[2])])
    assert await _read_on_the_other(backend, run, 1, appended) == said[1:]


async def test_a_wait_outlasts_appends_of_events_before_the_readers_seq(backend: Backend) -> None:
    """An append that brings only events the reader is past (a follower ahead of the log: the
    instance running the run showed it events not yet logged) does not end its wait with
    nothing: the next event does. A second reader, of another run, tells when those appends
    have reached the waiting instance: appends reach it in the order they were made."""
    run, other_run = await backend.begin(ONE), await backend.begin(ONE)
    said = _said(run, ("Hel", "lo", "!"))
    await backend.one.log.append([(run, said[0])])
    read: list[LoggedEvent] = []
    reached = anyio.Event()

    async def wait_on_the_other() -> None:
        read.extend(await backend.other.log.read(run, 3, wait=600))

    async def see_the_other_run() -> None:
        await backend.other.log.read(other_run, 0, wait=600)
        reached.set()

    looks = _looks(backend.other)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_on_the_other)
            group.start_soon(see_the_other_run)
            await _parked(backend.other, looks, readers=2)
            await backend.one.log.append([(run, said[1])])
            await backend.one.log.append([(run, said[2])])
            await backend.one.log.append([(other_run, _said(other_run)[0])])
            await reached.wait()
            await anyio.wait_all_tasks_blocked()
            await backend.one.log.append([(run, said[3])])
    assert read == [said[3]]


async def test_the_end_of_a_run_wakes_a_reader_on_another_instance(backend: Backend) -> None:
    run = await backend.begin(ONE)
    said = _said(run)
    await backend.one.log.append([(run, event) for event in said])
    end = _end(backend, run, 4)
    ended = partial(_end_run, backend.one.log, backend.one.record, end, [])
    assert await _read_on_the_other(backend, run, 3, ended) == [end.final]


async def test_a_wait_with_nothing_appended_ends_with_nothing(backend: Backend) -> None:
    run, elsewhere = await backend.begin(ONE), await backend.begin(ONE)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            results: list[list[LoggedEvent]] = []

            async def wait() -> None:
                results.append(await backend.other.log.read(run, 0, wait=0.2))

            group.start_soon(wait)
            await backend.one.log.append([(elsewhere, _said(elsewhere)[0])])
    assert results == [[]], "another run's append wakes no reader of this one"


# The final event, pruning


async def test_the_final_event_is_the_runs_first_done_or_error(backend: Backend) -> None:
    log = backend.one.log
    run = await backend.begin(ONE)
    said = _said(run)
    await log.append([(run, event) for event in said])
    assert await log.final(run) is None
    final = encode(interrupted(retryable=True), 4)
    await log.append([(run, final)])
    assert await log.final(run) == final
    assert await log.final(await backend.begin(ONE)) is None


async def test_prune_forgets_runs_that_ended_longer_ago_a_batch_at_a_time(
    backend: Backend,
) -> None:
    log, record = backend.one.log, backend.one.record
    while await log.prune(older_than_seconds=0, limit=1000):
        pass  # what earlier tests of this module ended
    ended = [await backend.begin(ONE) for _ in range(3)]
    going = await backend.begin(ONE)
    for run in ended:
        await _end_run(log, record, _end(backend, run, 4), _said(run))
    await log.append([(going, event) for event in _said(going)])
    if backend.expires:
        assert await log.prune(older_than_seconds=0, limit=2) == 0
        for run in ended:
            assert await log.read(run, 0) == [*_said(run), _end(backend, run, 4).final]
        return
    assert await log.prune(older_than_seconds=3_600, limit=10) == 0
    assert await log.prune(older_than_seconds=0, limit=2) == 2
    assert await log.prune(older_than_seconds=0, limit=2) == 1
    assert await log.prune(older_than_seconds=0, limit=2) == 0
    for run in ended:
        assert await log.read(run, 0) == []
    assert await log.read(going, 0) == _said(going), "a run going on keeps its events"


# The end of a run


async def test_ending_a_run_logs_its_unwritten_events_and_final_event_and_stores_its_end(
    backend: Backend,
) -> None:
    log, record = backend.one.log, backend.one.record
    run = await backend.begin(ONE)
    said = _said(run)
    await log.append([(run, said[0])])
    end = _end(backend, run, 4)
    assert await _end_run(log, record, end, said[1:]) == end.final
    assert await log.read(run, 0) == [*said, end.final]
    assert await log.final(run) == end.final
    state = await record.state(run)
    assert state is not None and (state.status, state.final) == (RunStatus.COMPLETE, end.final)


async def test_a_second_closer_gets_the_final_event_stored_first(backend: Backend) -> None:
    """Recovery on another instance closed the run first: the owner's late end stores
    nothing, and is answered that end's final event, which the log holds."""
    run = await backend.begin(ONE)
    said = _said(run)
    await backend.one.log.append([(run, event) for event in said])
    first = _end(backend, run, 4, done=False, content="Hel")
    assert await _end_run(backend.other.log, backend.other.record, first, []) == first.final
    late = _end(backend, run, 4)
    assert await _end_run(backend.one.log, backend.one.record, late, []) == first.final
    assert await backend.one.log.read(run, 0) == [*said, first.final]
    state = await backend.one.record.state(run)
    assert state is not None and (state.status, state.final) == (RunStatus.INCOMPLETE, first.final)


async def test_ending_again_after_a_lost_reply_changes_nothing(backend: Backend) -> None:
    log, record = backend.one.log, backend.one.record
    run = await backend.begin(ONE)
    said = _said(run)
    end = _end(backend, run, 4)
    assert await _end_run(log, record, end, said) == end.final
    assert await _end_run(log, record, end, said) == end.final
    assert await log.read(run, 0) == [*said, end.final]


async def test_a_reader_takes_the_final_event_from_the_record_when_the_log_lacks_it(
    backend: Backend,
) -> None:
    """The process died between storing the end and appending the final event (the second
    and third steps of `EventLog.end_run`): every event before the final one is in the log, the
    final one only in the record. A follower on another instance gets them all, once."""
    run_id = await backend.begin(ONE)
    said = _said(run_id)
    end = _end(backend, run_id, 4)
    await backend.one.log.append([(run_id, event) for event in said])
    assert await backend.one.record.store_end(end) == end.final
    assert await backend.one.log.final(run_id) is None
    async with _registry(backend.other.log, backend.other.record) as other:
        state = await backend.other.record.state(run_id)
        assert state is not None and state.ended
        run = await _run_as_stored(backend, run_id)
        followed = [e async for batch in other.follow(run, 0) for e in batch]
        resumed = [e async for batch in other.follow(run, 2) for e in batch]
    assert followed == [*said, end.final]
    assert resumed == [said[2], end.final]


async def test_a_final_event_after_the_gap_it_declares_is_kept_and_read_across_it(
    backend: Backend,
) -> None:
    """The run of a gone instance, closed by another: its final event is numbered above
    anything that instance could have shown, and says where the stored answer ends. The log
    keeps it, a reader on another instance crosses the gap from any seq, and the record holds
    it as the run's last."""
    run_id = await backend.begin(ONE)
    said = _said(run_id)
    await backend.one.log.append([(run_id, event) for event in said])
    conversation_id, answer_id = backend.begun[run_id]
    final = encode(interrupted(retryable=True, stored_through=3), 3 + UNLOGGED_WINDOW + 1)
    answer = NewMessage(conversation_id, Role.ASSISTANT, "Hello", MessageStatus.INCOMPLETE)
    end = RunEnd(run_id, RunStatus.INCOMPLETE, answer, answer_id, final)
    assert await _end_run(backend.other.log, backend.other.record, end, []) == final
    assert await backend.one.log.read(run_id, 0) == [*said, final]
    assert await backend.one.log.read(run_id, 3) == [final]
    assert await backend.one.log.read(run_id, 40) == [final], "a client shown more"
    assert await backend.one.log.final(run_id) == final
    async with _registry(backend.other.log, backend.other.record) as other:
        run = await _run_as_stored(backend, run_id)
        followed = {
            after: [e async for batch in other.follow(run, after) for e in batch]
            for after in (0, 2, 3, 40)
        }
    assert followed == {0: [*said, final], 2: [said[2], final], 3: [final], 40: [final]}


async def _run_as_stored(backend: Backend, run_id: str) -> Run:
    """The run as a route hands it to `follow`: its status from the record."""
    state = await backend.one.record.state(run_id)
    assert state is not None
    now = datetime.now(UTC)
    return Run(run_id, "suite", 1, state.status, 1, 2, 4, now, now)


@asynccontextmanager
async def _registry(log: EventLog, record: RunRecord) -> AsyncIterator[RunRegistry]:
    """The registry of an instance that runs nothing, to follow runs with."""
    async with anyio.create_task_group() as group:
        writer = EventWriter(log)
        group.start_soon(writer.write_forever)
        yield RunRegistry(log, writer, record, group, grace_seconds=1)
        group.cancel_scope.cancel()
