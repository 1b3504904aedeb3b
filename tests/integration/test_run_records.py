"""The record's interface (`app.runs.record.base`), against its two implementations: PostgreSQL,
the service's, and memory, the one the engine's unit tests run on. They must not differ."""

from __future__ import annotations

import uuid

import anyio
import pytest

from app.domain import MessageStatus, NewMessage, Role, RunStatus
from app.events import Done, encode, interrupted
from app.runs.ending import RunEnd
from tests.integration.backends import Backend

# Every record, once: a further event log brings no further record.
pytestmark = pytest.mark.parametrize("opener", ["memory", "postgres"], indirect=True)


def _end(backend: Backend, run_id: str, *, done: bool = True) -> RunEnd:
    conversation_id, answer_id = backend.begun[run_id]
    final = Done(conversation_id, answer_id, {}) if done else interrupted(retryable=False)
    status = MessageStatus.COMPLETE if done else MessageStatus.INCOMPLETE
    answer = NewMessage(conversation_id, Role.ASSISTANT, "Hi", status)
    return RunEnd(run_id, RunStatus(status.value), answer, answer_id, encode(final, 3))


async def test_a_run_stands_active_until_its_end_is_stored_once(backend: Backend) -> None:
    record = backend.one.record
    run = await backend.begin("one")
    assert await record.state(str(uuid.uuid4())) is None
    before = await record.state(run)
    assert before is not None and (before.status, before.final, before.ended, before.last_seq) == (
        RunStatus.ACTIVE,
        None,
        False,
        0,
    )
    first, second = _end(backend, run, done=False), _end(backend, run)
    assert await backend.other.record.store_end(first) == first.final
    assert await record.store_end(second) == first.final, "the first end stored is the end"
    after = await record.state(run)
    assert after is not None and (after.status, after.final) == (RunStatus.INCOMPLETE, first.final)
    assert after.last_seq == first.final.seq, "the end's seq, kept after its event is not"


async def test_a_cancel_asked_anywhere_is_heard_by_every_instance_and_kept(
    backend: Backend,
) -> None:
    heard: list[str] = []
    arrived = anyio.Event()

    def hear(run_id: str) -> None:
        heard.append(run_id)
        arrived.set()

    backend.other.record.hear_cancels(hear)
    going, ended = await backend.begin("one"), await backend.begin("one")
    await backend.one.record.store_end(_end(backend, ended))
    await backend.one.record.request_cancel(ended)  # over: nothing to ask
    await backend.one.record.request_cancel(going)
    with anyio.fail_after(30):
        await arrived.wait()
    assert heard == [going]
    asked = await backend.one.record.cancels_requested([going, ended])
    assert asked == [going]


async def test_an_instance_silent_for_long_enough_is_gone_with_its_active_runs(
    backend: Backend,
) -> None:
    record = backend.one.record
    instance = f"instance-{uuid.uuid4().hex[:8]}"
    run = await backend.begin(instance)
    assert [r.id for r in await record.active_runs_of(instance)] == [run]
    # Never beat: it counts from its oldest active run's start.
    assert instance not in await record.gone_with_active_runs(silent_seconds=3_600)
    await record.beat(instance)
    assert instance not in await record.gone_with_active_runs(silent_seconds=3_600)
    assert instance in await record.gone_with_active_runs(silent_seconds=0)
    await record.store_end(_end(backend, run))
    assert await record.active_runs_of(instance) == []
    assert instance not in await record.gone_with_active_runs(silent_seconds=0)


async def test_answer_ids_reserved_are_new_each_time(backend: Backend) -> None:
    first = await backend.one.record.reserve_answer_id()
    second = await backend.other.record.reserve_answer_id()
    assert second > first
