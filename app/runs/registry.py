"""The runs this instance owns, and following any run from any instance.

A run's events are numbered (`seq`) and handed at once to its followers in this process (see
`live`), up to `live.UNLOGGED_WINDOW` past what the writer has told it the log holds; the writer
appends them to the event log (`log`), whose appends wake the followers on other instances, who
read them from the log. A reader of the log sees each seq after the one before, or a final
event that declares where the stored answer ends (`events.stored_through`): any other gap is
`EventsMissing`, never passed off as a whole run.

The registry starts runs outside any request (so a run outlives its client), cancels them (here,
or through the record, which tells the instance that owns them), and stops them at shutdown
after a grace period. A run ends through `finish`, which ends it in the log and the record
(`EventLog.end_run`), retrying while either cannot be reached; one whose end could not be
stored in time is left to `recovery`, which closes it from its log with the same final event.

The log, its writer and the record come from the composition root (`app.main`): the registry
builds none of them, and reaches no database but through them.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import anyio
from anyio.abc import TaskGroup

from app.domain import EventLogUnavailable, Run, RunStatus
from app.events import LoggedEvent, Transcript, decode, encode, interrupted
from app.metrics import EVENTS_MISSING, RunTiming, count_tokens
from app.runs.background import RunTasks
from app.runs.ending import RunEnd
from app.runs.live import CancelReason, LiveRun
from app.runs.log.base import EventLog, EventsMissing, RunEvents, RunLogLost
from app.runs.log.writer import EventWriter
from app.runs.reading import POLL_SECONDS, failed_event, is_missing_event, missing_event, read_log
from app.runs.record.base import RunRecord
from app.settings import FINISH_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

FINISH_RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0)

Answer = Callable[[LiveRun], Awaitable[None]]
"""The work of a run: it emits the run's events and ends it with `RunRegistry.finish()`."""


class RunRegistry:
    def __init__(
        self,
        log: EventLog,
        writer: EventWriter,
        record: RunRecord,
        task_group: TaskGroup,
        *,
        grace_seconds: float,
    ) -> None:
        """`writer` appends to `log`; both, and `record`, are served by the composition root
        (`write_forever`, `serve`, the record's listener) in `task_group`, where runs go too."""
        self.instance_id = uuid.uuid4().hex
        self.accepting = True
        self._log = log
        self._writer = writer
        self._record = record
        self._task_group = task_group
        self._runs = RunTasks(task_group)
        self._grace_seconds = grace_seconds
        self._local: dict[str, LiveRun] = {}
        self._timings: dict[str, RunTiming] = {}
        self._remote: dict[str, LiveRun] = {}
        self._following: Counter[str] = Counter()
        self._left_to_recovery: set[str] = set()
        self._unlogged_ends: dict[str, list[LoggedEvent]] = {}
        """Runs ended while their log could not be reached: all their events, kept while the
        writer holds any of them to append (in case the log comes back without the earlier
        ones), and let go once it holds none (appended, dropped or taken back)."""
        self._shutdown_started = False
        self._grace_over = False
        record.hear_cancels(self.cancel_here)
        writer.hear_logged(self._logged)
        writer.hear_released(self._released)
        writer.refill_from(self._events_again)

    # Runs of this process

    def start_run(self, run_id: str, answer: Answer) -> LiveRun:
        """Run `answer` in the background, outside any request, so that it outlives its
        client. Subscribe to the returned run for its events."""
        live = LiveRun(run_id)
        self._local[run_id] = live
        self._timings[run_id] = RunTiming()
        if self._grace_over:
            live.cancel(CancelReason.SHUTDOWN)  # begun just as the grace period ended
        self._runs.start(partial(self._answer_safely, live, answer))
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
                self._publish_end(live, encode(final, live.next_seq), stored=False)

    def emit(self, live: LiveRun, event: LoggedEvent) -> None:
        live.publish(event)
        self._writer.add(live.id, event)
        self._timings[live.id].saw(event)

    def _logged(self, run_id: str, seq: int) -> None:
        live = self._local.get(run_id)
        if live is not None:
            live.logged(seq)

    def _released(self, run_id: str) -> None:
        self._unlogged_ends.pop(run_id, None)

    def keeps_unlogged_end(self, run_id: str) -> bool:
        """Whether the run ended while its log was away, and its events are still kept here
        for the writer, which has yet to append them."""
        return run_id in self._unlogged_ends

    def _events_again(self, run_id: str, held: int, through: int) -> RunEvents:
        """A run's events after `held` up to `through`, from memory, for a log that lost them
        (`app.runs.log.writer`): a run going on here, or one that ended while the log could not
        be reached; none for any other."""
        live = self._local.get(run_id)
        if live is not None:
            return _after(live, held, through)
        ended = self._unlogged_ends.get(run_id, [])
        return [(run_id, event) for event in ended if held < event.seq <= through]

    async def check_log(self) -> None:
        """Refuse a send (`EventLogUnavailable`, a 503) while the event log cannot be reached,
        rather than start a run that no other instance could follow or recover."""
        try:
            await self._log.ping()
        except Exception as error:
            if self._log.is_outage(error):
                raise EventLogUnavailable from error
            raise

    async def finish(self, live: LiveRun, end: RunEnd) -> None:
        """End the run in the log and the record, with its events not yet in the log, then
        hand its followers the final event stored. While either cannot be reached the end is
        retried, for up to `FINISH_TIMEOUT_SECONDS`, shielded from cancellation; past that,
        the followers get `interrupted`, and recovery stores the end later with that event."""
        count_tokens(end.answer.usage)
        unwritten = await self._writer.take_unwritten(live.id)
        final = await self._store_end_in_time(live, end, unwritten)
        if final is None:
            self._writer.put_back(unwritten)
            self._left_to_recovery.add(live.id)
            final = encode(interrupted(retryable=not end.answer.tool_calls), end.final.seq)
            self._publish_end(live, final, stored=False)
        else:
            self._publish_end(live, final, stored=True)

    async def _store_end_in_time(
        self, live: LiveRun, end: RunEnd, unwritten: RunEvents
    ) -> LoggedEvent | None:
        """The end stored, in the log and the record (`EventLog.end_run`): a log that lost the
        run's earlier events gets them again from memory; a log apart from the record that
        cannot be reached is left to the writer (the end, with its last events, is appended
        once it is back), and the end is stored in the record alone: the answer is kept, and
        the conversation freed, whatever the log's state."""
        log_away = False
        with anyio.move_on_after(FINISH_TIMEOUT_SECONDS, shield=True):
            for attempt in itertools.count():
                try:
                    if log_away:
                        final = await self._record.store_end(end)
                        said = [event for _, event in _after(live, 0, live.next_seq - 1)]
                        self._unlogged_ends[end.run_id] = [*said, final]
                        self._writer.put_back([*unwritten, (end.run_id, final)])
                        return final
                    return await self._log.end_run(
                        end, unwritten, partial(self._record.store_end, end)
                    )
                except RunLogLost as lost:
                    logger.warning("run %s: the event log lost it; appending again", end.run_id)
                    unwritten = _after(live, lost.held.get(end.run_id, 0), live.next_seq - 1)
                    if attempt < len(FINISH_RETRY_SECONDS):
                        continue
                    log_away = not self._log.in_the_record
                except Exception as error:
                    if not self.is_outage(error):
                        logger.exception("could not store the end of run %s", end.run_id)
                        return None
                    logger.warning("run %s: log or record unreachable at its end", end.run_id)
                    log_away = log_away or (
                        self._log.is_outage(error) and not self._log.in_the_record
                    )
                pause = FINISH_RETRY_SECONDS[min(attempt, len(FINISH_RETRY_SECONDS) - 1)]
                await anyio.sleep(pause)
        logger.error("could not store the end of run %s in time", end.run_id)
        return None

    def _publish_end(self, live: LiveRun, final: LoggedEvent, *, stored: bool) -> None:
        """Hand the followers here the run's final event and end the run.

        Stored right after the run's last event (its own end, which stored every event before
        it): followers get the events held back first, then it. Stored by another closer (who
        took this instance for gone): only that event, which says where the stored answer
        ends. Not stored (recovery stores it later, with the events still unwritten): only if
        the window shows it, every event before it shown; else followers get no final event
        from here (their streams end cut) and read the one stored from the log."""
        if stored and final.seq == live.next_seq:
            live.logged(final.seq)
        live.finish(final if stored or live.shows(final.seq) else None)
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
        """A run's events not yet in the log, taken from the writer's queue for the end that
        closes the run."""
        return await self._writer.take_unwritten(run_id)

    def put_back_unwritten(self, unwritten: RunEvents) -> None:
        self._writer.put_back(unwritten)

    def is_outage(self, error: BaseException) -> bool:
        """Whether `error` says the log or the record cannot be reached right now."""
        return self._log.is_outage(error) or self._record.is_outage(error)

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
        instance, shared by every follower here and woken by the appends of the instance
        running it; once it has ended, from the log (and its final event from the record if
        the log does not hold it)."""
        self._following[run.user_id] += 1
        last: list[LoggedEvent] = []
        try:
            live = self._local.get(run.id) or (
                self._remote_reader(run) if run.status is RunStatus.ACTIVE else None
            )
            if live is not None:
                async for last in live.subscribe(after_seq).batches():
                    yield last
            else:
                async for last in self._replay(run, after_seq):
                    yield last
            if last and is_missing_event(last[-1]):
                EVENTS_MISSING.inc()  # here, once for each follower a copy's gap reaches
        finally:
            self._following[run.user_id] -= 1
            if not self._following[run.user_id]:
                del self._following[run.user_id]

    async def _replay(self, run: Run, after_seq: int) -> AsyncIterator[list[LoggedEvent]]:
        """An ended run's events from its log. While the log or the record is unreachable (a
        restart), the follower waits and reads on from where it stopped: its stream has begun,
        and a stream that has begun ends with an event, not a cut."""
        while True:
            try:
                async for batch in read_log(self._log, self._record, run, after_seq):
                    yield batch
                    after_seq = batch[-1].seq
                return
            except EventsMissing as missing:
                logger.warning("following run %s: %s", run.id, missing)
                yield [missing_event(missing)]
                return
            except Exception as error:
                if not self.is_outage(error):
                    logger.exception("replaying run %s failed", run.id)
                    yield [failed_event()]
                    return
                logger.warning("replaying run %s: log or record unreachable", run.id)
                await anyio.sleep(POLL_SECONDS)

    def _remote_reader(self, run: Run) -> LiveRun:
        """The in-memory copy of another instance's run, filled from its log by one reader."""
        remote = self._remote.get(run.id)
        if remote is None:
            remote = self._remote[run.id] = LiveRun(run.id, window=None)
            self._task_group.start_soon(self._copy_log, run, remote)
        return remote

    async def _copy_log(self, run: Run, remote: LiveRun) -> None:
        try:
            while not remote.ended.is_set():
                try:
                    after = remote.events[-1].seq if remote.events else 0
                    async for batch in read_log(self._log, self._record, run, after):
                        for event in batch:
                            remote.publish(event)
                    break
                except EventsMissing as missing:
                    logger.warning("following run %s: %s", run.id, missing)
                    remote.publish(missing_event(missing))
                    break
                except Exception as error:
                    if not self.is_outage(error):
                        raise
                    # The log or the record is restarting: read on from where the copy stopped.
                    logger.warning("following run %s: log or record unreachable", run.id)
                    await anyio.sleep(POLL_SECONDS)
        except Exception:
            logger.exception("following run %s failed", run.id)
            remote.publish(failed_event())  # a typed end for its followers, not a cut
        finally:
            remote.end()
            self._remote.pop(run.id, None)

    # Cancelling

    async def cancel(self, run: Run) -> None:
        """Ask the run to stop, here or on the instance that owns it."""
        if self.is_running_here(run.id):
            self.cancel_here(run.id)
            return
        await self._record.request_cancel(run.id)

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


def _after(live: LiveRun, held: int, through: int) -> RunEvents:
    """The run's events after seq `held` up to `through`, from memory (`events[i]` has seq
    i + 1 while the run goes on)."""
    return [(live.id, event) for event in live.events[held:through]]
