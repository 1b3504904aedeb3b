"""Recovery: each instance's heartbeat, and what no run closes by itself.

- **Heartbeat.** Every `HEARTBEAT_SECONDS` each instance writes the time, through its pool, to
  its row of `instances`. An instance silent for `SILENT_SECONDS` (by the database's clock) is
  gone, and any instance closes its runs. The heartbeat goes through the pool, like the runs'
  own statements, so one lost connection (the LISTEN one, say) cannot make a live instance look
  dead, as the advisory lock held by that connection once did. In turn, an instance that could
  not write its heartbeat for `CUT_OFF_SECONDS` stops its own runs, before the others may take
  them over: no run is streamed by its owner after another instance closed it. Cost: one
  single-row upsert per instance every 2 s, and a run of a killed instance closed 10 to 13 s
  after the kill.
- **Orphans.** The runs of gone instances, and this instance's own runs whose end could not be
  stored (`RunRegistry.finish`): what their log holds becomes an incomplete answer, stored the
  one way runs end (`ending.store_end`), with `interrupted` as the final event.
- **Cancels** asked of this instance's runs whose notification it missed.
- **Old event logs**, pruned every `PRUNE_SECONDS`.

Each step, and each run within a step, fails alone: it is logged, and the rest goes on.
Started by the lifespan beside the registry; the registry does not know it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio

from app.db.gate import Priority
from app.db.outage import is_outage
from app.db.uow import Database
from app.domain import NewMessage, Role, Run, RunStatus
from app.events import Transcript, decode, encode, interrupted
from app.runs.ending import RunEnd, store_end
from app.runs.registry import RunRegistry

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
SILENT_SECONDS = 10.0
CUT_OFF_SECONDS = SILENT_SECONDS - 2 * HEARTBEAT_SECONDS
RECOVERY_SECONDS = 3.0
PRUNE_SECONDS = 60.0
PRUNE_BATCH = 200
FORGET_INSTANCES_SECONDS = 86_400.0


class Recovery:
    def __init__(
        self, database: Database, registry: RunRegistry, *, retention_seconds: float
    ) -> None:
        self._database = database
        self._registry = registry
        self._retention_seconds = retention_seconds
        self._last_beat = time.monotonic()

    async def maintain_forever(self) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._beat_forever)
            group.start_soon(self._recover_forever)

    async def _beat_forever(self) -> None:
        while True:
            if await _step("heartbeat", self.beat):
                self._last_beat = time.monotonic()
            elif time.monotonic() - self._last_beat > CUT_OFF_SECONDS:
                self._registry.cut_off()
            await anyio.sleep(HEARTBEAT_SECONDS)

    async def _recover_forever(self) -> None:
        next_prune = time.monotonic()
        while True:
            await _step("closing orphaned runs", self.close_orphans)
            await _step("rechecking cancels", self.recheck_cancels)
            if time.monotonic() >= next_prune:
                await _step("pruning", self.prune)
                next_prune = time.monotonic() + PRUNE_SECONDS
            await anyio.sleep(RECOVERY_SECONDS)

    async def beat(self) -> None:
        async with self._database.single_statement(Priority.END) as uow:
            await uow.instances.beat(self._registry.instance_id)

    async def leave(self) -> None:
        """Forget this instance, as it stops: any run it still has is closed at once by the
        others (if the database can be reached; else they wait out its silence)."""

        async def forget() -> None:
            async with self._database.single_statement(Priority.END) as uow:
                await uow.instances.forget(self._registry.instance_id)

        await _step("leaving", forget)

    async def recheck_cancels(self) -> None:
        """Cancels asked of this instance's runs whose notification it missed (while its
        listening connection was down)."""
        running = self._registry.running_here()
        if not running:
            return
        async with self._database.unit_of_work() as uow:
            requested = await uow.runs.cancel_requested(running)
        for run_id in requested:
            self._registry.cancel_here(run_id)

    async def close_orphans(self) -> int:
        """Close the runs of gone instances and this instance's runs left to recovery; the
        number closed."""
        async with self._database.unit_of_work(Priority.END) as uow:
            instances = await uow.instances.gone_with_active_runs(silent_seconds=SILENT_SECONDS)
        mine = self._registry.instance_id
        if self._registry.has_left_to_recovery() and mine not in instances:
            instances.append(mine)
        closed = 0
        for instance in instances:
            async with self._database.unit_of_work(Priority.END) as uow:
                orphans = await uow.runs.active_of_instance(instance)
            for run in orphans:
                if instance == mine and (
                    self._registry.is_running_here(run.id)
                    or not self._registry.is_left_to_recovery(run.id)
                ):
                    continue  # still running here, or about to end by itself
                if await _step(f"closing run {run.id}", partial(self._close, run)):
                    closed += 1
        return closed

    async def _close(self, run: Run) -> None:
        unwritten = await self._registry.take_unwritten(run.id)  # ours, not yet in the log
        try:
            async with self._database.unit_of_work(Priority.END) as uow:
                logged = await uow.run_events.after(run.id, 0, limit=100_000)
                answer_id = await uow.runs.reserve_message_id()
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
            final_event = interrupted(retryable=transcript.safe_to_retry)
            final = encode(final_event, (events[-1].seq if events else 0) + 1)
            end = RunEnd(run.id, RunStatus(status.value), answer, answer_id, final)
            stored = await store_end(self._database, end, unwritten)
        except BaseException:
            self._registry.put_back_unwritten(unwritten)
            raise
        self._registry.recovered(run.id)
        if stored == final:
            logger.warning("closed the unfinished run %s as %s", run.id, status.value)

    async def prune(self) -> None:
        """Delete old event logs, a batch of runs at a time, and instances long gone."""
        while True:
            async with self._database.unit_of_work() as uow:
                deleted = await uow.run_events.prune(
                    older_than_seconds=self._retention_seconds, limit=PRUNE_BATCH
                )
                await uow.commit()
            if deleted == 0:
                break
            await anyio.sleep(0.1)  # let requests have the database between batches
        async with self._database.single_statement() as uow:
            await uow.instances.prune(silent_seconds=FORGET_INSTANCES_SECONDS)


async def _step(what: str, step: Callable[[], Awaitable[object]]) -> bool:
    """Run one step of maintenance; log its failure, which stops nothing else."""
    try:
        await step()
    except Exception as error:
        if is_outage(error):
            logger.warning("%s: the database cannot be reached", what)
        else:
            logger.exception("%s failed", what)
        return False
    return True
