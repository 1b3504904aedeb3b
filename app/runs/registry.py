"""The runs this instance owns, and following any run from any instance.

A run's events are numbered (`seq`) and handed at once to its followers in this process (see
`live`); the event log writes them to PostgreSQL, and its notifications wake the followers on
other instances, who read them from the log. The registry starts runs outside any request (so a
run outlives its client), cancels them (here, or by notifying the instance that owns them), and
stops them at shutdown after a grace period. A run ends through `finish`, which stores its end
(see `ending`), retrying while the database is unreachable; one whose end could not be stored
in time is left to `recovery`, which closes it from its log with the same final event.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
from anyio.abc import TaskGroup

from app.db.notifications import Listener
from app.db.outage import is_outage
from app.db.uow import Database
from app.domain import Run, RunStatus
from app.events import LoggedEvent, Transcript, decode, encode, interrupted
from app.metrics import RunTiming, count_tokens
from app.runs.ending import RunEnd, store_end
from app.runs.event_log import EventLog, RunEvents
from app.runs.live import BATCH_BYTES, CancelReason, LiveRun
from app.settings import FINISH_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
READ_BATCH = 500
FINISH_RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0)

Answer = Callable[[LiveRun], Awaitable[None]]
"""The work of a run: it emits the run's events and ends it with `RunRegistry.finish()`."""


class RunRegistry:
    def __init__(self, database: Database, task_group: TaskGroup, *, grace_seconds: float) -> None:
        self.instance_id = uuid.uuid4().hex
        self.accepting = True
        self.listener = Listener(database.engine, self._notified)
        self._log = EventLog.to(database)
        self._database = database
        self._task_group = task_group
        self._grace_seconds = grace_seconds
        self._local: dict[str, LiveRun] = {}
        self._timings: dict[str, RunTiming] = {}
        self._waiters: defaultdict[str, set[anyio.Event]] = defaultdict(set)
        self._remote: dict[str, LiveRun] = {}
        self._following: Counter[str] = Counter()
        self._left_to_recovery: set[str] = set()
        self._shutdown_started = False
        self._grace_over = False

    def start_writing_and_listening(self) -> None:
        self._task_group.start_soon(self._log.write_forever)
        self._task_group.start_soon(self.listener.listen_forever)

    # Runs of this process

    def start_run(self, run_id: str, answer: Answer) -> LiveRun:
        """Run `answer` in the background, outside any request, so that it outlives its
        client. Subscribe to the returned run for its events."""
        live = LiveRun(run_id)
        self._local[run_id] = live
        self._timings[run_id] = RunTiming()
        if self._grace_over:
            live.cancel(CancelReason.SHUTDOWN)  # begun just as the grace period ended
        self._task_group.start_soon(self._answer_safely, live, answer)
        return live

    async def _answer_safely(self, live: LiveRun, answer: Answer) -> None:
        try:
            await answer(live)
        except Exception:
            # One broken run must not take the task group, and every other run, down with it.
            logger.exception("run %s crashed", live.id)
        finally:
            if not live.ended.is_set():
                # Recovery closes it from its log, with this same final event.
                self._left_to_recovery.add(live.id)
                said = Transcript.of(decode(event) for event in live.events)
                final = interrupted(retryable=said.safe_to_retry)
                self._publish_end(live, encode(final, live.next_seq))

    def emit(self, live: LiveRun, event: LoggedEvent) -> None:
        live.publish(event)
        self._log.append(live.id, event)
        self._timings[live.id].saw(event)

    async def finish(self, live: LiveRun, end: RunEnd) -> None:
        """Store the run's end, with its events not yet in the log, then hand its followers
        the final event the log holds. While the database cannot be reached the statement is
        retried, for up to `FINISH_TIMEOUT_SECONDS`, shielded from cancellation; past that,
        the followers get `interrupted`, and recovery stores the end later with that event."""
        count_tokens(end.answer.usage)
        unwritten = await self._log.take_unwritten(live.id)
        final = await self._store_end_in_time(end, unwritten)
        if final is None:
            self._log.put_back(unwritten)
            self._left_to_recovery.add(live.id)
            final = encode(interrupted(retryable=not end.answer.tool_calls), end.final.seq)
        self._publish_end(live, final)

    async def _store_end_in_time(self, end: RunEnd, unwritten: RunEvents) -> LoggedEvent | None:
        with anyio.move_on_after(FINISH_TIMEOUT_SECONDS, shield=True):
            for attempt in itertools.count():
                try:
                    return await store_end(self._database, end, unwritten)
                except Exception as error:
                    if not is_outage(error):
                        logger.exception("could not store the end of run %s", end.run_id)
                        return None
                    logger.warning("run %s: database unreachable at its end", end.run_id)
                pause = FINISH_RETRY_SECONDS[min(attempt, len(FINISH_RETRY_SECONDS) - 1)]
                await anyio.sleep(pause)
        logger.error("could not store the end of run %s in time", end.run_id)
        return None

    def _publish_end(self, live: LiveRun, final: LoggedEvent) -> None:
        live.publish(final)
        live.end()
        self._local.pop(live.id, None)
        self._timings.pop(live.id).ended(final)
        logger.info("run %s ended: %s", live.id, final.data[:80])

    async def wait_idle(self) -> None:
        while self._local:
            await next(iter(self._local.values())).ended.wait()

    # What recovery asks

    def is_running_here(self, run_id: str) -> bool:
        return run_id in self._local

    def running_here(self) -> list[str]:
        return list(self._local)

    def has_left_to_recovery(self) -> bool:
        return bool(self._left_to_recovery)

    def cut_off(self) -> None:
        """This instance could not prove it is alive for long enough that others may soon
        close its runs: stop them first."""
        for live in list(self._local.values()):
            live.cancel(CancelReason.CUT_OFF)

    def is_left_to_recovery(self, run_id: str) -> bool:
        return run_id in self._left_to_recovery

    def recovered(self, run_id: str) -> None:
        self._left_to_recovery.discard(run_id)

    async def take_unwritten(self, run_id: str) -> RunEvents:
        """A run's events not yet in the log, taken from the log's queue for the statement
        that closes the run."""
        return await self._log.take_unwritten(run_id)

    def put_back_unwritten(self, unwritten: Sequence[tuple[str, LoggedEvent]]) -> None:
        self._log.put_back(unwritten)

    def cancel_here(self, run_id: str) -> None:
        live = self._local.get(run_id)
        if live is not None:
            live.cancel(CancelReason.USER)

    # Following any run

    def following(self, user_id: str) -> int:
        """How many streams this instance is sending that follow a run of this user."""
        return self._following[user_id]

    async def follow(self, run: Run, after_seq: int) -> AsyncIterator[list[LoggedEvent]]:
        """The run's events after `after_seq`, in order and in batches, until its last: from
        memory when it runs here; else, while it runs, from one reader of its log per
        instance, shared by every follower here and woken by the notifications of the instance
        running it; once it has ended, from the log."""
        self._following[run.user_id] += 1
        try:
            live = self._local.get(run.id) or (
                self._remote_reader(run) if run.status is RunStatus.ACTIVE else None
            )
            if live is not None:
                async for batch in live.subscribe(after_seq).batches():
                    yield batch
            else:
                async for batch in self._read_log(run, after_seq):
                    yield batch
        finally:
            self._following[run.user_id] -= 1
            if not self._following[run.user_id]:
                del self._following[run.user_id]

    def _remote_reader(self, run: Run) -> LiveRun:
        """The in-memory copy of another instance's run, filled from its log by one reader."""
        remote = self._remote.get(run.id)
        if remote is None:
            remote = self._remote[run.id] = LiveRun(run.id)
            self._task_group.start_soon(self._copy_log, run, remote)
        return remote

    async def _copy_log(self, run: Run, remote: LiveRun) -> None:
        try:
            while not remote.ended.is_set():
                try:
                    async for batch in self._read_log(run, len(remote.events)):
                        for event in batch:
                            remote.publish(event)
                    break
                except Exception as error:
                    if not is_outage(error):
                        raise
                    # The database is restarting: read on from where the copy stopped.
                    logger.warning("following run %s: database unreachable", run.id)
                    await anyio.sleep(POLL_SECONDS)
        except Exception:
            logger.exception("following run %s failed", run.id)
        finally:
            remote.end()
            self._remote.pop(run.id, None)

    async def _read_log(self, run: Run, after_seq: int) -> AsyncIterator[list[LoggedEvent]]:
        last = after_seq
        while True:
            woken = anyio.Event()
            self._waiters[run.id].add(woken)
            try:
                async with self._database.unit_of_work() as uow:
                    # The status first: if it says ended, the events read next include the end.
                    current = await uow.runs.get(run.user_id, run.id)
                    events = await uow.run_events.after(
                        run.id, last, limit=READ_BATCH, budget=BATCH_BYTES
                    )
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
            self.cancel_here(run_id)
            return
        for woken in self._waiters.get(run_id, ()):
            woken.set()

    # Cancelling

    async def cancel(self, run: Run) -> None:
        """Ask the run to stop, here or on the instance that owns it."""
        if self.is_running_here(run.id):
            self.cancel_here(run.id)
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
            live.cancel(CancelReason.SHUTDOWN)

    async def shutdown(self) -> None:
        self.begin_shutdown()
        with anyio.move_on_after(self._grace_seconds + FINISH_TIMEOUT_SECONDS):
            await self.wait_idle()
