"""A live run in memory: followers get every event once, in order, whenever they join; a
follower that leaves costs the run nothing; the first cancel reason counts."""

from __future__ import annotations

import gc
import itertools
import weakref

import anyio
from hypothesis import given
from hypothesis import strategies as st

from app.events import LoggedEvent
from app.runs.live import (
    BATCH_BYTES,
    CancelReason,
    LiveRun,
    Subscription,
    batch_size,
    utf8_length,
)


def _event(seq: int) -> LoggedEvent:
    return LoggedEvent(seq, f'{{"type":"text","content":"{seq}","seq":{seq}}}')


async def _drain(subscription: Subscription) -> list[list[int]]:
    return [[event.seq for event in batch] async for batch in subscription.batches()]


@given(st.integers(0, 20), st.integers(0, 20), st.booleans())
async def test_a_follower_gets_everything_after_its_seq_once_and_in_order(
    published_before: int, after_seq: int, ended_before: bool
) -> None:
    live = LiveRun("run")
    for seq in range(1, published_before + 1):
        live.publish(_event(seq))
    if ended_before:
        live.end()
    subscription = live.subscribe(after_seq)
    total = published_before
    if not ended_before:
        for seq in range(published_before + 1, published_before + 4):
            live.publish(_event(seq))
        total += 3
        live.end()
    with anyio.fail_after(5):
        batches = await _drain(subscription)
    assert [seq for batch in batches for seq in batch] == list(range(after_seq + 1, total + 1))


async def test_what_is_queued_is_taken_in_one_batch() -> None:
    live = LiveRun("run")
    subscription = live.subscribe(0)
    for seq in (1, 2, 3):
        live.publish(_event(seq))
    live.end()
    with anyio.fail_after(5):
        assert await _drain(subscription) == [[1, 2, 3]]


@given(
    st.lists(
        st.tuples(st.integers(1, BATCH_BYTES // 2), st.sampled_from(["x", "é", "€", "🙂"])),
        max_size=20,
    )
)
async def test_a_batch_holds_as_many_events_as_fit_in_batch_bytes_and_at_least_one(
    sizes: list[tuple[int, str]],
) -> None:
    """What a follower holds of what it has yet to send is bounded, however far behind it is
    (a client that stopped reading, one that joins a long run); characters of 1 to 4 bytes."""
    live = LiveRun("run")
    subscription = live.subscribe(0)
    events = [LoggedEvent(seq, char * size) for seq, (size, char) in enumerate(sizes, 1)]
    for event in events:
        live.publish(event)
    live.end()
    with anyio.fail_after(5):
        batches = [batch async for batch in subscription.batches()]
    assert [event for batch in batches for event in batch] == events

    def size(batch: list[LoggedEvent]) -> int:
        return sum(len(event.data.encode()) for event in batch)

    assert all(len(batch) == 1 or size(batch) <= BATCH_BYTES for batch in batches)
    for batch, following in itertools.pairwise(batches):
        assert size(batch) + size(following[:1]) > BATCH_BYTES, "one more would have fit"


def test_a_batch_may_fill_its_budget_exactly_and_not_a_byte_more() -> None:
    def sizes(*lengths: int) -> list[LoggedEvent]:
        return [LoggedEvent(seq, "x" * length) for seq, length in enumerate(lengths, 1)]

    assert batch_size(sizes(BATCH_BYTES - 1, 1, 1)) == 2
    assert batch_size(sizes(BATCH_BYTES - 1, 2)) == 1
    assert batch_size(sizes(BATCH_BYTES + 1, 1)) == 1, "one event, however long"


@given(st.text())
def test_utf8_length_is_the_length_of_the_encoding(text: str) -> None:
    assert utf8_length(text) == len(text.encode("utf-8", "surrogatepass"))


async def test_a_waiting_follower_wakes_for_each_event() -> None:
    live = LiveRun("run")
    subscription = live.subscribe(0)
    received: list[int] = []
    async with anyio.create_task_group() as group:

        async def follow() -> None:
            async for batch in subscription.batches():
                received.extend(event.seq for event in batch)

        group.start_soon(follow)
        for seq in (1, 2):
            await anyio.wait_all_tasks_blocked()
            live.publish(_event(seq))
        await anyio.wait_all_tasks_blocked()
        assert received == [1, 2]
        live.end()
    assert received == [1, 2]


async def test_a_follower_that_left_is_dropped_and_the_run_goes_on() -> None:
    live = LiveRun("run")
    leaving, staying = live.subscribe(0), live.subscribe(0)
    live.publish(_event(1))
    batches = leaving.batches()
    assert [e.seq for e in await anext(batches)] == [1]
    await batches.aclose()  # the client went away
    assert leaving.gone
    live.publish(_event(2))
    live.end()
    assert live.events == [_event(1), _event(2)]
    assert await _drain(staying) == [[1, 2]]


def test_the_first_cancel_reason_counts_and_the_agent_is_told_once() -> None:
    live = LiveRun("run")
    told: list[str] = []
    live.on_cancel = lambda: told.append("stop")
    live.cancel(CancelReason.SHUTDOWN)
    live.cancel(CancelReason.USER)
    assert live.cancel_reason is CancelReason.SHUTDOWN and told == ["stop"]


def test_a_run_that_ended_cannot_be_cancelled() -> None:
    live = LiveRun("run")
    live.end()
    live.cancel(CancelReason.USER)
    assert live.cancel_reason is None
    assert live.next_seq == 1


async def test_a_follower_that_left_is_let_go_at_the_next_event() -> None:
    """Not kept until the run ends: a long answer with many reconnects would hold every
    departed follower and its queue (found by make mutate)."""
    live = LiveRun("run")
    leaving = live.subscribe(0)
    batches = leaving.batches()
    live.publish(_event(1))
    await anext(batches)
    await batches.aclose()
    departed = weakref.ref(leaving)
    del leaving, batches
    live.publish(_event(2))
    gc.collect()
    assert departed() is None


def test_a_run_cancelled_before_its_agent_started_is_just_marked() -> None:
    """`on_cancel` is set once the agent runs; a cancel before that only records the reason
    (chat.py tells the agent when it starts)."""
    live = LiveRun("run")
    live.cancel(CancelReason.USER)
    assert live.cancel_reason is CancelReason.USER


# The window: shown before logged, within UNLOGGED_WINDOW of the log

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.just(0)),
        st.tuples(st.just("logged"), st.integers(0, 25)),
        st.tuples(st.just("subscribe"), st.integers(0, 25)),
    ),
    max_size=40,
)


@given(_steps, st.integers(1, 4))
async def test_followers_see_no_event_past_the_window_and_every_other_once_in_order(
    steps: list[tuple[str, int]], window: int
) -> None:
    """Whatever the order of events published, the log's progress and followers joining (after
    any seq), each follower has, at every moment, exactly the events after its seq up to
    `window` past the highest seq logged (or the last published, if lower)."""
    live = LiveRun("run", window=window)
    followers: list[tuple[int, list[int]]] = []
    published = logged = 0
    async with anyio.create_task_group() as group:

        async def follow(subscription: Subscription, into: list[int]) -> None:
            async for batch in subscription.batches():
                into.extend(event.seq for event in batch)

        for step, value in steps:
            if step == "publish":
                published += 1
                live.publish(_event(published))
            elif step == "logged":
                logged = max(logged, min(value, published))  # the log never runs ahead
                live.logged(min(value, published))
            else:
                received: list[int] = []
                followers.append((value, received))
                group.start_soon(follow, live.subscribe(value), received)
            await anyio.wait_all_tasks_blocked()
            shown = min(published, logged + window)
            for after, received in followers:
                assert received == list(range(after + 1, shown + 1))
        live.end()


async def test_a_run_ends_with_its_final_event_after_what_was_shown_and_never_what_was_held() -> (
    None
):
    """Its end was stored by another closer, who numbered the final event above the window:
    followers get it after what they were shown; the events held back are never shown."""
    live = LiveRun("run", window=2)
    following = live.subscribe(0)
    for seq in range(1, 6):
        live.publish(_event(seq))
    final = LoggedEvent(1003, '{"type":"error","code":"interrupted","stored_through":0,"seq":1003}')
    live.finish(final)
    late = live.subscribe(1)
    with anyio.fail_after(5):
        assert await _drain(following) == [[1, 2, 1003]]
        assert await _drain(late) == [[2, 1003]]


async def test_a_run_may_end_without_a_final_event_for_its_followers() -> None:
    live = LiveRun("run", window=2)
    following = live.subscribe(0)
    for seq in range(1, 6):
        live.publish(_event(seq))
    live.finish(None)
    with anyio.fail_after(5):
        assert await _drain(following) == [[1, 2]]
    assert live.ended.is_set()


async def test_a_copy_of_the_log_shows_everything_and_resumes_by_seq_across_a_declared_gap() -> (
    None
):
    copy = LiveRun("run", window=None)
    final = LoggedEvent(1003, '{"type":"error","code":"interrupted","stored_through":2,"seq":1003}')
    for event in (_event(1), _event(2), final):
        copy.publish(event)
    copy.end()
    with anyio.fail_after(5):
        assert await _drain(copy.subscribe(0)) == [[1, 2, 1003]]
        assert await _drain(copy.subscribe(2)) == [[1003]]
        assert await _drain(copy.subscribe(40)) == [[1003]], "a client shown more than was logged"
        assert await _drain(copy.subscribe(1003)) == []
