"""Recovery: each instance's heartbeat, and what no run closes by itself.

- **Heartbeat.** Every `HEARTBEAT_SECONDS` each instance writes the time to the record (in
  PostgreSQL, its row of `instances`, through the pool). An instance silent for `SILENT_SECONDS`
  (by the record's clock) is gone, and any instance closes its runs. The heartbeat goes through
  the pool, like the runs' own statements, so one lost connection (the LISTEN one, say) cannot
  make a live instance look dead, as the advisory lock held by that connection once did. In
  turn, an instance that could not write its heartbeat for `CUT_OFF_SECONDS` stops its own runs,
  before the others may take them over: no run is streamed by its owner after another instance
  closed it. Cost: one single-row upsert per instance every 2 s, and a run of a killed instance
  closed 10 to 13 s after the kill.
- **Orphans.** The runs of gone instances, and this instance's own runs whose end could not be
  stored (`RunRegistry.finish`): what their log holds becomes an incomplete answer, stored the
  one way runs end (`EventLog.end_run`), with `interrupted` as the final event. A gone
  instance may have shown its clients events its log never got, up to
  `live.UNLOGGED_WINDOW` past what the log holds: its run's final event is numbered above that
  bound and says where the stored answer ends (`stored_through`), so that no seq a client was
  shown names another event, and a client back with any id it was shown gets that final
  event. This instance's own runs keep their unwritten events, stored with the end: their
  final event follows the last one, as the run's own end would.
- **Cancels** asked of this instance's runs whose announcement it missed.
- **Old event logs**, pruned every `PRUNE_SECONDS`, and instances long gone.

Each step, and each run within a step, fails alone: it is logged, and the rest goes on.
Started by the lifespan beside the registry, with the same log and record; the registry does not
know it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio

from app.domain import NewMessage, Role, Run, RunStatus
from app.events import Transcript, decode, encode, interrupted
from app.runs.ending import RunEnd
from app.runs.live import UNLOGGED_WINDOW
from app.runs.log.base import EventLog, RunLogLost
from app.runs.record.base import RunRecord
from app.runs.registry import RunRegistry

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
SILENT_SECONDS = 10.0
CUT_OFF_SECONDS = SILENT_SECONDS - 2 * HEARTBEAT_SECONDS
RECOVERY_SECONDS = 3.0
PRUNE_SECONDS = 60.0
PRUNE_BATCH = 200
FORGET_INSTANCES_SECONDS = 86_400.0
WHOLE_LOG = 100_000
"""More events than a run has: an orphan's whole log, read at once."""


class Recovery:
    def __init__(
        self,
        log: EventLog,
        record: RunRecord,
        registry: RunRegistry,
        *,
        retention_seconds: float,
    ) -> None:
        self._log = log
        self._record = record
        self._registry = registry
        self._retention_seconds = retention_seconds
        self._last_beat = time.monotonic()

    async def maintain_forever(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._beat_forever)
            group.start_soon(self._recover_forever)

    async def _beat_forever(self) -> None:
        while True:
            if await self._step("heartbeat", self.beat):
                self._last_beat = time.monotonic()
            elif time.monotonic() - self._last_beat > CUT_OFF_SECONDS:
                self._registry.cut_off()
            await anyio.sleep(HEARTBEAT_SECONDS)

    async def _recover_forever(self) -> None:
        next_prune = time.monotonic()
        while True:
            await self._step("closing orphaned runs", self.close_orphans)
            await self._step("rechecking cancels", self.recheck_cancels)
            if time.monotonic() >= next_prune:
                await self._step("pruning", self.prune)
                next_prune = time.monotonic() + PRUNE_SECONDS
            await anyio.sleep(RECOVERY_SECONDS)

    async def beat(self) -> None:
        await self._record.beat(self._registry.instance_id)

    async def leave(self) -> None:
        """Forget this instance, as it stops: any run it still has is closed at once by the
        others (if the database can be reached; else they wait out its silence)."""

        await self._step("leaving", partial(self._record.forget, self._registry.instance_id))

    async def recheck_cancels(self) -> None:
        """Cancels asked of this instance's runs whose announcement it missed (while its
        listening connection was down)."""
        running = self._registry.running_here()
        if not running:
            return
        for run_id in await self._record.cancels_requested(running):
            self._registry.cancel_here(run_id)

    async def close_orphans(self) -> int:
        """Close the runs of gone instances and this instance's runs left to recovery; the
        number closed."""
        instances = await self._record.gone_with_active_runs(silent_seconds=SILENT_SECONDS)
        mine = self._registry.instance_id
        if self._registry.has_left_to_recovery() and mine not in instances:
            instances.append(mine)
        closed = 0
        for instance in instances:
            for run in await self._record.active_runs_of(instance):
                if instance == mine and (
                    self._registry.is_running_here(run.id)
                    or not self._registry.is_left_to_recovery(run.id)
                ):
                    continue  # still running here, or about to end by itself
                close = partial(self._close, run, gone=instance != mine)
                if await self._step(f"closing run {run.id}", close):
                    closed += 1
        return closed

    async def _close(self, run: Run, *, gone: bool) -> None:
        """Close the run with what its log holds (and, for a run of this instance, its events
        not yet written); `gone`: the instance that ran it is gone (see the module's
        docstring)."""
        unwritten = await self._registry.take_unwritten(run.id)  # ours, not yet in the log
        try:
            logged = await self._log.read(run.id, 0, limit=WHOLE_LOG)
            answer_id = await self._record.reserve_answer_id()
            events = [*logged, *(event for _, event in unwritten)]
            transcript = Transcript.of(decode(event) for event in events)
            status = transcript.failed_status()
            answer = NewMessage(
                run.conversation_id,
                Role.ASSISTANT,
                transcript.content,
                status,
                tuple(transcript.tool_calls.values()),
            )
            last = events[-1].seq if events else 0
            if gone:
                final_event = interrupted(retryable=transcript.safe_to_retry, stored_through=last)
                final = encode(final_event, last + UNLOGGED_WINDOW + 1)
            else:
                final = encode(interrupted(retryable=transcript.safe_to_retry), last + 1)
            end = RunEnd(run.id, RunStatus(status.value), answer, answer_id, final)
            try:
                stored = await self._log.end_run(
                    end, unwritten, partial(self._record.store_end, end)
                )
            except RunLogLost:
                # Its log lost what it held (Redis restarted empty) and nothing here holds it
                # to append again: the end goes to the record alone, and its readers are told
                # that events are missing (`app.runs.reading`).
                stored = await self._record.store_end(end)
        except BaseException:
            self._registry.put_back_unwritten(unwritten)
            raise
        self._registry.recovered(run.id)
        if stored == final:
            logger.warning("closed the unfinished run %s as %s", run.id, status.value)

    async def prune(self) -> None:
        """Forget old event logs, a batch of runs at a time, and instances long gone."""
        while True:
            forgotten = await self._log.prune(
                older_than_seconds=self._retention_seconds, limit=PRUNE_BATCH
            )
            if forgotten == 0:
                break
            await anyio.sleep(0.1)  # let requests have the log between batches
        await self._record.forget_gone(silent_seconds=FORGET_INSTANCES_SECONDS)

    async def _step(self, what: str, step: Callable[[], Awaitable[object]]) -> bool:
        """Run one step of maintenance; log its failure, which stops nothing else."""
        try:
            await step()
        except Exception as error:
            if self._registry.is_outage(error):
                logger.warning("%s: the log or the record cannot be reached", what)
            else:
                logger.exception("%s failed", what)
            return False
        return True
