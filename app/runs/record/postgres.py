"""The system of record in PostgreSQL: the `runs` and `instances` tables, through the pool, and
cancels announced with NOTIFY on a channel of their own, heard by the instance's one LISTEN
connection (`app.db.notifications`).

Each call is one statement, with no transaction around it. The end of a run and what recovery
needs go first at the connection gate (`Priority.END`): under load, new turns wait while the
runs already going are stored on time.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.db.gate import Priority
from app.db.notifications import Listener
from app.db.outage import is_outage
from app.db.repositories.runs import CANCELS_CHANNEL
from app.db.uow import Database
from app.domain import Run
from app.events import LoggedEvent, encode, interrupted
from app.runs.ending import RunEnd
from app.runs.record.base import CancelHandler, RunRecord, RunState


class PostgresRunRecord(RunRecord):
    def __init__(
        self, database: Database, listener: Listener, *, final_kept_seconds: float
    ) -> None:
        """`final_kept_seconds`: how long `state` answers an ended run's final event, as long
        as the event log keeps its events (`RUN_RETENTION_HOURS`)."""
        self._database = database
        self._final_kept_seconds = final_kept_seconds
        self._cancel_handlers: list[CancelHandler] = []
        listener.on(CANCELS_CHANNEL, self._cancel_announced)

    async def state(self, run_id: str) -> RunState | None:
        async with self._database.single_statement() as uow:
            found = await uow.runs.state(run_id, final_kept_seconds=self._final_kept_seconds)
        return None if found is None else RunState(*found)

    async def store_end(self, end: RunEnd) -> LoggedEvent:
        async with self._database.single_statement(Priority.END) as uow:
            stored = await uow.runs.end(
                end.run_id, end.status, end.answer, end.answer_id, end.final
            )
        if stored is not None:
            return stored
        # Ended before the record kept final events, or deleted with its conversation: what
        # a reader of the run would be told.
        return encode(interrupted(retryable=False), end.final.seq)

    async def request_cancel(self, run_id: str) -> None:
        async with self._database.single_statement() as uow:
            await uow.runs.request_cancel(run_id)

    def hear_cancels(self, handler: CancelHandler) -> None:
        self._cancel_handlers.append(handler)

    def _cancel_announced(self, run_id: str) -> None:
        for handler in self._cancel_handlers:
            handler(run_id)

    async def cancels_requested(self, run_ids: Sequence[str]) -> list[str]:
        async with self._database.single_statement() as uow:
            return await uow.runs.cancel_requested(run_ids)

    async def active_runs_of(self, instance: str) -> list[Run]:
        async with self._database.single_statement(Priority.END) as uow:
            return await uow.runs.active_of_instance(instance)

    async def reserve_answer_id(self) -> int:
        async with self._database.single_statement(Priority.END) as uow:
            return await uow.runs.reserve_message_id()

    async def beat(self, instance: str) -> None:
        async with self._database.single_statement(Priority.END) as uow:
            await uow.instances.beat(instance)

    async def forget(self, instance: str) -> None:
        async with self._database.single_statement(Priority.END) as uow:
            await uow.instances.forget(instance)

    async def gone_with_active_runs(self, *, silent_seconds: float) -> list[str]:
        async with self._database.single_statement(Priority.END) as uow:
            return await uow.instances.gone_with_active_runs(silent_seconds=silent_seconds)

    async def forget_gone(self, *, silent_seconds: float) -> None:
        async with self._database.single_statement() as uow:
            await uow.instances.prune(silent_seconds=silent_seconds)

    def is_outage(self, error: BaseException) -> bool:
        return is_outage(error)
