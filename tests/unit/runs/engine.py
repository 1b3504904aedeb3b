"""The run engine on the in-memory log and record, with no database: instances of it in this
process, and scripted runs whose steps a test releases."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from app.domain import MessageStatus, NewMessage, Role, Run, RunStatus
from app.events import Done, LoggedEvent, Start, Text, encode
from app.runs.ending import RunEnd
from app.runs.live import LiveRun
from app.runs.log.base import RunEvents
from app.runs.log.memory import MemoryEventLog
from app.runs.log.writer import EventWriter
from app.runs.record.memory import MemoryRunRecord
from app.runs.recovery import Recovery
from app.runs.registry import Answer, RunRegistry


class Clock:
    """Seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class HeldLog(MemoryEventLog):
    """The in-memory log, whose appends wait while it is `held` (a log that cannot be written
    for a while, whose writes land once it can)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self._open = anyio.Event()
        self._open.set()

    def hold(self) -> None:
        self._open = anyio.Event()

    def release(self) -> None:
        self._open.set()

    async def append(self, events: RunEvents) -> None:
        await self._open.wait()
        await super().append(events)


@dataclass
class Instance:
    """One instance of the service's run engine: its registry and recovery, on a log and a
    record it may share with other instances in this process."""

    registry: RunRegistry
    recovery: Recovery
    log: MemoryEventLog
    record: MemoryRunRecord

    def start(self, run_id: str, answer: Answer) -> LiveRun:
        return self.registry.start_run(run_id, answer)

    def begin(self, run_id: str, user_id: str = "user") -> Run:
        """The run stored as `ChatService.begin` stores it."""
        return self.record.start(run_id, user_id, self.registry.instance_id)


@asynccontextmanager
async def instance(
    log: MemoryEventLog | None = None,
    record: MemoryRunRecord | None = None,
    *,
    retention_seconds: float = 3_600.0,
) -> AsyncIterator[Instance]:
    log = MemoryEventLog() if log is None else log
    record = MemoryRunRecord() if record is None else record
    writer = EventWriter(log)
    async with anyio.create_task_group() as group:
        group.start_soon(writer.write_forever)
        registry = RunRegistry(log, writer, record, group, grace_seconds=5)
        recovery = Recovery(log, record, registry, retention_seconds=retention_seconds)
        yield Instance(registry, recovery, log, record)
        with anyio.fail_after(10):
            await registry.wait_idle()
        group.cancel_scope.cancel()


@asynccontextmanager
async def doomed_instance(log: MemoryEventLog, record: MemoryRunRecord) -> AsyncIterator[Instance]:
    """An instance that dies as the block ends, as a process killed with SIGKILL would: its
    runs, its writer and its appends in flight stop where they are, and it beats no more."""
    writer = EventWriter(log)
    async with anyio.create_task_group() as group:
        group.start_soon(writer.write_forever)
        registry = RunRegistry(log, writer, record, group, grace_seconds=5)
        recovery = Recovery(log, record, registry, retention_seconds=3_600.0)
        yield Instance(registry, recovery, log, record)
        group.cancel_scope.cancel()


@dataclass
class Script:
    """A run that says `texts`, then waits for `go` (or a cancel) to end: `done`, or `done`
    with status `cancelled`."""

    registry: RunRegistry
    run: Run
    texts: tuple[str, ...] = ("Hel", "lo")
    go: anyio.Event = field(default_factory=anyio.Event)
    said: anyio.Event = field(default_factory=anyio.Event)

    async def __call__(self, live: LiveRun) -> None:
        run, emit = self.run, self.registry.emit
        emit(live, encode(Start(run.conversation_id, run.user_message_id, run.id), live.next_seq))
        for text in self.texts:
            emit(live, encode(Text(text), live.next_seq))
        live.on_cancel = self.go.set
        self.said.set()
        await self.go.wait()
        cancelled = live.cancel_reason is not None
        status = MessageStatus.CANCELLED if cancelled else MessageStatus.COMPLETE
        answer_id = run.user_message_id + 1
        done = Done(run.conversation_id, answer_id, {}, status.value)
        answer = NewMessage(run.conversation_id, Role.ASSISTANT, "".join(self.texts), status)
        final = encode(done, live.next_seq)
        await self.registry.finish(
            live, RunEnd(run.id, RunStatus(status), answer, answer_id, final)
        )


async def going(
    here: Instance, texts: tuple[str, ...] = ("Hel", "lo")
) -> tuple[Run, Script, LiveRun]:
    """A run begun and started on `here`, once it has said `texts` and waits for `go`."""
    run = here.begin(str(uuid.uuid4()))
    script = Script(here.registry, run, texts)
    live = here.start(run.id, script)
    with anyio.fail_after(10):
        await script.said.wait()
    return run, script, live


async def ended(here: Instance) -> Run:
    """A run begun, answered and ended on `here`: as the record holds it afterwards."""
    run = here.begin(str(uuid.uuid4()))
    script = Script(here.registry, run)
    script.go.set()
    here.start(run.id, script)
    await here.registry.wait_idle()
    stored = here.record.run(run.id)
    assert stored is not None and stored.status is RunStatus.COMPLETE
    return stored


async def everything(batches: AsyncIterator[list[LoggedEvent]]) -> list[LoggedEvent]:
    return [event async for batch in batches for event in batch]
