"""A run read from its log by a follower elsewhere (`app.runs.reading`), on the in-memory log
and record: an end stored while the log was away is in the record before its last events are
in the log, and a reader waits for them rather than calling the run broken."""

from __future__ import annotations

import uuid

import anyio

from app.domain import MessageStatus, NewMessage, Role, RunStatus
from app.events import Done, LoggedEvent, Start, Text, encode
from app.runs.ending import RunEnd
from app.runs.log.base import READ_LIMIT
from app.runs.log.memory import MemoryEventLog
from app.runs.reading import read_log
from app.runs.record.memory import MemoryRunRecord


class WatchedLog(MemoryEventLog):
    """The in-memory log, telling when a reader starts waiting for an append."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = anyio.Event()

    async def read(
        self,
        run_id: str,
        after_seq: int,
        *,
        limit: int = READ_LIMIT,
        budget: int | None = None,
        wait: float = 0.0,
    ) -> list[LoggedEvent]:
        if wait:
            self.waited.set()
        return await super().read(run_id, after_seq, limit=limit, budget=budget, wait=wait)


async def test_an_ended_runs_reader_waits_for_the_log_to_catch_up_with_its_final_event() -> None:
    log, record = WatchedLog(), MemoryRunRecord()
    run = record.start(str(uuid.uuid4()), "user", "owner")
    said = [
        encode(Start(run.conversation_id, run.user_message_id, run.id), 1),
        *(encode(Text(text), seq) for seq, text in ((2, "Hel"), (3, "lo"), (4, " you"))),
    ]
    answer_id = run.user_message_id + 1
    answer = NewMessage(run.conversation_id, Role.ASSISTANT, "Hello you", MessageStatus.COMPLETE)
    final = encode(Done(run.conversation_id, answer_id, {}), 5)
    # The end stored in the record alone (the log unreachable); the log has the first three.
    await record.store_end(RunEnd(run.id, RunStatus.COMPLETE, answer, answer_id, final))
    await log.append([(run.id, event) for event in said[:3]])
    ended = record.run(run.id)
    assert ended is not None and ended.status is RunStatus.COMPLETE

    read: list[LoggedEvent] = []

    async def follow() -> None:
        async for batch in read_log(log, record, ended, 0):
            read.extend(batch)

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        with anyio.fail_after(10):
            await log.waited.wait()  # it has read 1 to 3, and the record's end at 5
        await log.append([(run.id, said[3])])  # the owner's writer gets through

    assert read == [*said, final]
