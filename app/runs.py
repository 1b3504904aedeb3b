"""Runs: chat turns owned by the server, their durable event log, and following them from any
instance.

A run's events are numbered (`seq`) and handed at once to the subscribers in this process; the
`EventLog` writes them to PostgreSQL in batches, one statement (with its NOTIFY) per batch, so
other instances (and later readers) can follow. `RunRegistry` knows the runs in progress in
this process, cancels them, stops them at shutdown, and closes the runs of dead instances.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.exc import OperationalError

from app.db.gate import Priority
from app.db.notifications import Listener
from app.db.uow import Database
from app.domain import NewMessage, Role, Run, RunStatus
from app.events import Error, LoggedEvent, Transcript, decode, encode

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.02
POLL_SECONDS = 2.0
READ_BATCH = 500
MAINTENANCE_SECONDS = 30.0
PRUNE_BATCH = 200
ORPHAN_CONFIRM_SECONDS = 3.0


class Subscription:
    """One follower's queue of a live run's events. The run pushes without waiting; the
    follower takes everything queued at once, so a busy stream costs one write per batch."""

    def __init__(self) -> None:
        self._queue: deque[LoggedEvent] = deque()
        # asyncio's own Event: this wait happens once per token and stream, and anyio's adds
        # a backend lookup to every one (the service runs on asyncio: asyncpg needs it).
        self._ready = asyncio.Event()
        self._closed = False
        self.gone = False

    def push(self, event: LoggedEvent) -> None:
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def batches(self) -> AsyncIterator[list[LoggedEvent]]:
        try:
            while True:
                if self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    yield batch
                elif self._closed:
                    return
                else:
                    self._ready.clear()
                    await self._ready.wait()
        finally:
            self.gone = True


class LiveRun:
    """A run in progress in this process: every event so far, in memory, and its subscribers."""

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self.events: list[LoggedEvent] = []
        self.cancel_reason: str | None = None
        self.on_cancel: Callable[[], None] | None = None
        self.ended = anyio.Event()
        self._subscribers: set[Subscription] = set()

    @property
    def next_seq(self) -> int:
        return len(self.events) + 1

    def publish(self, event: LoggedEvent) -> None:
        self.events.append(event)
        for subscriber in list(self._subscribers):
            if subscriber.gone:
                self._subscribers.discard(subscriber)  # the client has left; the run goes on
            else:
                subscriber.push(event)

    def subscribe(self, after_seq: int) -> Subscription:
        """Everything after `after_seq`, then what comes, until the run ends."""
        subscription = Subscription()
        for event in self.events[after_seq:]:
            subscription.push(event)
        if self.ended.is_set():
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None and not self.ended.is_set():
            self.cancel_reason = reason
            if self.on_cancel is not None:
                self.on_cancel()

    def end(self) -> None:
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
        self.ended.set()


ERROR_MESSAGES = {
    "agent_failed": "Sorry, something went wrong while answering. Please try again.",
    "max_turns_exceeded": "The assistant took too many steps on this request and was stopped.",
    "rate_limited": "The assistant is busy right now. Please try again in a moment.",
    "model_timeout": "The assistant took too long to answer. Please try again.",
    "model_unavailable": "The assistant can't be reached right now. Please try again shortly.",
    "model_error": "The assistant gave an answer that could not be used. Please try again.",
    "storage_failed": "The answer could not be saved. Please try again.",
    "interrupted": "The answer was interrupted. Please send your message again.",
    "server_restarting": "The service is restarting. Please send your message again.",
}


def error_event(code: str, *, retryable: bool = False) -> Error:
    return Error(code, ERROR_MESSAGES[code], retryable)


def interrupted() -> Error:
    return error_event("interrupted", retryable=True)


class EventLog:
    """Writes the runs' events to PostgreSQL in batches, and tells every instance."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: list[tuple[str, LoggedEvent]] = []
        self._writing: set[str] = set()
        self._wakeup = anyio.Event()
        self._written = anyio.Event()

    def append(self, run_id: str, event: LoggedEvent) -> None:
        self._pending.append((run_id, event))
        self._wakeup.set()

    async def settle(self, run_id: str) -> list[tuple[str, LoggedEvent]]:
        """Take back a finishing run's unwritten events, once none of its events is being
        written, so that its last statement writes them, in order, with its final event."""
        while run_id in self._writing:
            await self._written.wait()
        mine = [item for item in self._pending if item[0] == run_id]
        self._pending = [item for item in self._pending if item[0] != run_id]
        return mine

    def restore(self, events: list[tuple[str, LoggedEvent]]) -> None:
        """Put back events taken by `settle()` whose writing failed."""
        self._pending[:0] = events
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            await anyio.sleep(BATCH_SECONDS)  # gather the tokens of every run into one write
            self._wakeup = anyio.Event()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            self._writing = {run_id for run_id, _ in batch}
            failed = False
            try:
                await self._write(batch)
            except Exception:
                logger.exception("could not write %d run events; retrying run by run", len(batch))
                failed = await self._write_each_run(batch)
            finally:
                self._writing = set()
                self._written.set()
                self._written = anyio.Event()
            if failed:
                await anyio.sleep(1)

    async def _write_each_run(self, batch: list[tuple[str, LoggedEvent]]) -> bool:
        """After a failed batch: write each run's events on their own, so that one run whose
        events cannot be written (its conversation was deleted) does not hold up the others.
        Events that fail for an unreachable database go back in the queue; those of a run
        the database refuses are dropped. True if the database seemed unreachable."""
        by_run: dict[str, list[tuple[str, LoggedEvent]]] = defaultdict(list)
        for item in batch:
            by_run[item[0]].append(item)
        unreachable = False
        for run_id, events in by_run.items():
            try:
                await self._write(events)
            except (OSError, TimeoutError, OperationalError):
                unreachable = True
                self._pending[:0] = events
                self._wakeup.set()
            except Exception:
                logger.exception("dropping %d events of run %s", len(events), run_id)
        return unreachable

    async def _write(self, batch: list[tuple[str, LoggedEvent]]) -> None:
        last: dict[str, int] = {}
        for run_id, event in batch:
            last[run_id] = event.seq
        async with self._database.single_statement(Priority.END) as uow:
            notifications = (f"{run_id}:{seq}" for run_id, seq in last.items())
            await uow.run_events.append_and_notify(batch, *notifications)


class RunRegistry:
    def __init__(
        self,
        database: Database,
        task_group: TaskGroup,
        *,
        grace_seconds: float,
        retention_seconds: float,
    ) -> None:
        self.instance_id = uuid.uuid4().hex
        self.accepting = True
        self.log = EventLog(database)
        self._database = database
        self._task_group = task_group
        self._grace_seconds = grace_seconds
        self._retention_seconds = retention_seconds
        self._local: dict[str, LiveRun] = {}
        self._waiters: defaultdict[str, set[anyio.Event]] = defaultdict(set)
        self._shutdown_started = False
        self._grace_over = False
        self.unsettled: set[str] = set()
        self.listener = Listener(database.engine, self.instance_id, self._notified)

    def start(self) -> None:
        self._task_group.start_soon(self.log.run)
        self._task_group.start_soon(self.listener.run)
        self._task_group.start_soon(self._maintain)

    # Runs of this process

    def register(self, run_id: str) -> LiveRun:
        live = LiveRun(run_id)
        self._local[run_id] = live
        if self._grace_over:
            live.cancel("shutdown")  # begun just as the grace period ended
        return live

    def launch(self, live: LiveRun, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` in the background, outside any request, so that it outlives its client."""
        self._task_group.start_soon(self._run_safely, live, work)

    async def _run_safely(self, live: LiveRun, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except Exception:
            # One broken run must not take the task group, and every other run, down with it.
            logger.exception("run %s crashed", live.id)
        finally:
            if not live.ended.is_set():
                self.unsettled.add(live.id)  # maintenance closes it from its log
                self.ended(live)

    def local(self, run_id: str) -> LiveRun | None:
        return self._local.get(run_id)

    def emit(self, live: LiveRun, event: LoggedEvent) -> None:
        live.publish(event)
        self.log.append(live.id, event)

    def ended(self, live: LiveRun) -> None:
        live.end()
        self._local.pop(live.id, None)

    @property
    def active(self) -> int:
        return len(self._local)

    async def wait_idle(self) -> None:
        while self._local:
            await next(iter(self._local.values())).ended.wait()

    # Following any run

    async def follow(self, run: Run, after_seq: int) -> AsyncIterator[list[LoggedEvent]]:
        """The run's events after `after_seq`, in order and in batches, until its last: from
        memory when it runs here, else from the log, woken by the notifications of the instance
        running it."""
        live = self._local.get(run.id)
        if live is not None:
            async for batch in live.subscribe(after_seq).batches():
                yield batch
            return
        last = after_seq
        while True:
            woken = anyio.Event()
            self._waiters[run.id].add(woken)
            try:
                async with self._database.unit_of_work() as uow:
                    # The status first: if it says ended, the events read next include the end.
                    current = await uow.runs.get(run.user_id, run.id)
                    events = await uow.run_events.after(run.id, last, limit=READ_BATCH)
                if events:
                    terminal = next((i for i, e in enumerate(events) if e.terminal), None)
                    if terminal is not None:
                        yield events[: terminal + 1]
                        return
                    yield events
                    last = events[-1].seq
                    continue
                if current is None or current.status is not RunStatus.ACTIVE:
                    return  # ended, and its log is read (or was pruned)
                with anyio.move_on_after(POLL_SECONDS):
                    await woken.wait()
            finally:
                self._waiters[run.id].discard(woken)
                if not self._waiters[run.id]:
                    del self._waiters[run.id]

    def _notified(self, message: str) -> None:
        run_id, _, what = message.partition(":")
        if what == "cancel":
            live = self._local.get(run_id)
            if live is not None:
                live.cancel("cancelled")
            return
        for woken in self._waiters.get(run_id, ()):
            woken.set()

    # Cancelling

    async def cancel(self, run: Run) -> None:
        live = self._local.get(run.id)
        if live is not None:
            live.cancel("cancelled")
            return
        async with self._database.unit_of_work() as uow:
            await uow.runs.request_cancel(run.id)
            await uow.run_events.notify(f"{run.id}:cancel")
            await uow.commit()

    # Stopping

    def begin_shutdown(self) -> None:
        """Take no new runs; give the running ones the grace period, then stop them."""
        if self._shutdown_started:
            return
        self._shutdown_started = True
        self.accepting = False
        self._task_group.start_soon(self._stop_after_grace)

    async def _stop_after_grace(self) -> None:
        with anyio.move_on_after(self._grace_seconds):
            await self.wait_idle()
        self._grace_over = True
        for live in list(self._local.values()):
            live.cancel("shutdown")

    async def shutdown(self) -> None:
        self.begin_shutdown()
        with anyio.move_on_after(self._grace_seconds + 10):
            await self.wait_idle()

    # Maintenance: the runs of dead instances, and old event logs

    async def _maintain(self) -> None:
        with anyio.move_on_after(5):
            await self.listener.ready.wait()  # it tells which instances are alive
        while True:
            try:
                await self.close_orphans()
                await self.recheck_cancels()
                await self.prune()
            except Exception:
                logger.exception("run maintenance failed")
            await anyio.sleep(MAINTENANCE_SECONDS)

    async def recheck_cancels(self) -> None:
        """Cancels asked of this instance's runs whose notification it missed (while its
        listening connection was down)."""
        if not self._local:
            return
        async with self._database.unit_of_work() as uow:
            requested = await uow.runs.cancel_requested(list(self._local))
        for run_id in requested:
            live = self._local.get(run_id)
            if live is not None:
                live.cancel("cancelled")

    async def close_orphans(self) -> int:
        """Close the runs left active by instances that are gone, and this instance's own runs
        whose end could not be stored (the database was down then): what their log holds
        becomes an incomplete answer, and their followers get a final event."""
        async with self._database.unit_of_work(Priority.END) as uow:
            instances = await uow.runs.active_instances()
        closed = 0
        for instance in instances:
            mine = instance == self.instance_id
            if not mine and not await self._dead(instance):
                continue
            async with self._database.unit_of_work(Priority.END) as uow:
                orphans = await uow.runs.active_of_instance(instance)
            for run in orphans:
                if mine and (run.id in self._local or run.id not in self.unsettled):
                    continue  # still running here
                if await self._close_orphan(run):
                    closed += 1
                    self.unsettled.discard(run.id)
        return closed

    async def _dead(self, instance: str) -> bool:
        """Dead, and still dead a while later: a live instance whose listening connection is
        reconnecting lacks its lock for a moment."""
        if await self.listener.is_alive(instance):
            return False
        await anyio.sleep(ORPHAN_CONFIRM_SECONDS)
        return not await self.listener.is_alive(instance)

    async def _close_orphan(self, run: Run) -> bool:
        unwritten = await self.log.settle(run.id)  # events of our own, not yet in the log
        async with self._database.unit_of_work(Priority.END) as uow:
            await uow.run_events.append(unwritten)
            logged = await uow.run_events.after(run.id, 0, limit=100_000)
            transcript = Transcript()
            for event in logged:
                transcript.record(decode(event))
            seq = (logged[-1].seq if logged else 0) + 1
            status = transcript.failed_status()
            message = await uow.messages.add(
                NewMessage(
                    run.conversation_id,
                    Role.ASSISTANT,
                    transcript.content,
                    status,
                    tuple(transcript.tool_calls.values()),
                )
            )
            if not await uow.runs.finish(run.id, RunStatus(status.value), message.id, seq):
                self.log.restore(unwritten)
                return False  # another instance closed it first; roll back
            final = encode(interrupted(), seq)
            await uow.run_events.append([(run.id, final)])
            await uow.run_events.notify(f"{run.id}:{seq}")
            await uow.commit()
        logger.warning("closed the unfinished run %s as %s", run.id, status.value)
        return True

    async def prune(self) -> None:
        while True:
            async with self._database.unit_of_work() as uow:
                deleted = await uow.run_events.prune(
                    older_than_seconds=self._retention_seconds, limit=PRUNE_BATCH
                )
                await uow.commit()
            if deleted == 0:
                return
            await anyio.sleep(0.1)  # let requests have the database between batches
