"""Recovery: what no run closes by itself, looked after every `MAINTENANCE_SECONDS`.

- The runs left active by instances that are gone (killed, or cut off for good), and this
  instance's own runs whose end could not be stored: what their log holds becomes an incomplete
  answer, and their followers get a final event.
- Cancels asked of this instance's runs whose notification it missed (its listening connection
  was down).
- Event logs of runs finished longer ago than the retention.

Started by the lifespan beside the registry; the registry does not know it.
"""

from __future__ import annotations

import logging

import anyio

from app.db.gate import Priority
from app.db.uow import Database
from app.domain import NewMessage, Role, Run, RunStatus
from app.events import Transcript, decode, encode, interrupted
from app.runs.registry import RunRegistry

logger = logging.getLogger(__name__)

MAINTENANCE_SECONDS = 30.0
LISTENER_READY_SECONDS = 5.0
PRUNE_BATCH = 200
ORPHAN_CONFIRM_SECONDS = 3.0


class Recovery:
    def __init__(
        self, database: Database, registry: RunRegistry, *, retention_seconds: float
    ) -> None:
        self._database = database
        self._registry = registry
        self._retention_seconds = retention_seconds

    async def maintain_forever(self) -> None:
        with anyio.move_on_after(LISTENER_READY_SECONDS):
            await self._registry.listener.ready.wait()  # it tells which instances are alive
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
        running = self._registry.running_here()
        if not running:
            return
        async with self._database.unit_of_work() as uow:
            requested = await uow.runs.cancel_requested(running)
        for run_id in requested:
            self._registry.cancel_here(run_id)

    async def close_orphans(self) -> int:
        """Close the runs left active by instances that are gone, and this instance's own runs
        left to recovery; the number closed."""
        async with self._database.unit_of_work(Priority.END) as uow:
            instances = await uow.runs.active_instances()
        closed = 0
        for instance in instances:
            mine = instance == self._registry.instance_id
            if not mine and not await self._dead(instance):
                continue
            async with self._database.unit_of_work(Priority.END) as uow:
                orphans = await uow.runs.active_of_instance(instance)
            for run in orphans:
                if mine and (
                    self._registry.is_running_here(run.id)
                    or not self._registry.is_left_to_recovery(run.id)
                ):
                    continue  # still running here
                if await self._close_orphan(run):
                    closed += 1
                    self._registry.recovered(run.id)
        return closed

    async def _dead(self, instance: str) -> bool:
        """Dead, and still dead a while later: a live instance whose listening connection is
        reconnecting lacks its lock for a moment."""
        listener = self._registry.listener
        if await listener.is_alive(instance):
            return False
        await anyio.sleep(ORPHAN_CONFIRM_SECONDS)
        return not await listener.is_alive(instance)

    async def _close_orphan(self, run: Run) -> bool:
        unwritten = await self._registry.take_unwritten(run.id)  # ours, not yet in the log
        async with self._database.unit_of_work(Priority.END) as uow:
            await uow.run_events.append(unwritten)
            logged = await uow.run_events.after(run.id, 0, limit=100_000)
            transcript = Transcript.of(decode(event) for event in logged)
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
                self._registry.put_back_unwritten(unwritten)
                return False  # another instance closed it first; roll back
            final = encode(interrupted(), seq)
            await uow.run_events.append([(run.id, final)])
            await uow.run_events.notify(f"{run.id}:{seq}")
            await uow.commit()
        logger.warning("closed the unfinished run %s as %s", run.id, status.value)
        return True

    async def prune(self) -> None:
        """Delete old event logs, a batch of runs at a time."""
        while True:
            async with self._database.unit_of_work() as uow:
                deleted = await uow.run_events.prune(
                    older_than_seconds=self._retention_seconds, limit=PRUNE_BATCH
                )
                await uow.commit()
            if deleted == 0:
                return
            await anyio.sleep(0.1)  # let requests have the database between batches
