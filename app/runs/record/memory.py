"""The system of record in this process's memory: the run engine's unit tests run on it, with no
database. Every "instance" sharing one `MemoryRunRecord` is a registry in this process.

It behaves as the PostgreSQL record does (tests/integration/test_run_records.py runs the same
checks on both), but it holds only what the engine reads: a run's answer is kept as given, for
tests to look at. The service itself always keeps its record in PostgreSQL, with the
conversations the runs belong to.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from app.domain import NewMessage, Run, RunStatus
from app.events import LoggedEvent
from app.runs.ending import RunEnd
from app.runs.record.base import CancelHandler, RunRecord, RunState


@dataclass
class _Kept:
    run: Run
    instance: str
    started_at: float
    final: LoggedEvent | None = None
    ended_at: float | None = None
    answer: NewMessage | None = None
    cancel_requested: bool = False


class MemoryRunRecord(RunRecord):
    def __init__(
        self, *, final_kept_seconds: float = 86_400.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock`: seconds, for heartbeats and how long an ended run's final event is kept
        (a test's own clock moves them on without waiting)."""
        self._final_kept_seconds = final_kept_seconds
        self._clock = clock
        self._runs: dict[str, _Kept] = {}
        self._beats: dict[str, float] = {}
        self._cancel_handlers: list[CancelHandler] = []
        self._ids = itertools.count(1)

    def start(self, run_id: str, user_id: str, instance: str, conversation_id: int = 1) -> Run:
        """A run begun by `instance` (in the service, `ChatService.begin` stores it)."""
        run = Run(
            id=run_id,
            user_id=user_id,
            conversation_id=conversation_id,
            status=RunStatus.ACTIVE,
            user_message_id=next(self._ids),
            assistant_message_id=None,
            last_seq=0,
            created_at=datetime.now(UTC),
            finished_at=None,
        )
        self._runs[run_id] = _Kept(run, instance, self._clock())
        return run

    def run(self, run_id: str) -> Run | None:
        kept = self._runs.get(run_id)
        return None if kept is None else kept.run

    def answer(self, run_id: str) -> NewMessage | None:
        """The answer stored with the run's end."""
        kept = self._runs.get(run_id)
        return None if kept is None else kept.answer

    async def state(self, run_id: str) -> RunState | None:
        kept = self._runs.get(run_id)
        if kept is None:
            return None
        final = kept.final
        if kept.ended_at is not None and self._clock() - kept.ended_at > self._final_kept_seconds:
            final = None
        return RunState(kept.run.status, final, kept.run.last_seq)

    async def store_end(self, end: RunEnd) -> LoggedEvent:
        kept = self._runs.get(end.run_id)
        if kept is None:
            raise LookupError(f"no run {end.run_id}")
        if kept.final is not None:
            return kept.final
        kept.final, kept.ended_at, kept.answer = end.final, self._clock(), end.answer
        kept.run = replace(
            kept.run,
            status=end.status,
            assistant_message_id=end.answer_id,
            last_seq=end.final.seq,
            finished_at=datetime.now(UTC),
        )
        return end.final

    async def request_cancel(self, run_id: str) -> None:
        kept = self._runs.get(run_id)
        if kept is None or kept.run.status is not RunStatus.ACTIVE:
            return
        kept.cancel_requested = True
        for handler in self._cancel_handlers:
            handler(run_id)

    def hear_cancels(self, handler: CancelHandler) -> None:
        self._cancel_handlers.append(handler)

    def ask_cancel_unannounced(self, run_id: str) -> None:
        """A cancel whose announcement was lost (its listener was reconnecting)."""
        self._runs[run_id].cancel_requested = True

    async def cancels_requested(self, run_ids: Sequence[str]) -> list[str]:
        return [
            run_id
            for run_id in run_ids
            if (kept := self._runs.get(run_id)) is not None
            and kept.cancel_requested
            and kept.run.status is RunStatus.ACTIVE
        ]

    async def active_runs_of(self, instance: str) -> list[Run]:
        return [
            kept.run
            for kept in self._runs.values()
            if kept.instance == instance and kept.run.status is RunStatus.ACTIVE
        ]

    async def reserve_answer_id(self) -> int:
        return next(self._ids)

    async def beat(self, instance: str) -> None:
        self._beats[instance] = self._clock()

    async def forget(self, instance: str) -> None:
        self._beats.pop(instance, None)

    async def gone_with_active_runs(self, *, silent_seconds: float) -> list[str]:
        last_heard: dict[str, float] = {}
        for kept in self._runs.values():
            if kept.run.status is RunStatus.ACTIVE:
                heard = self._beats.get(kept.instance, kept.started_at)
                last_heard[kept.instance] = min(last_heard.get(kept.instance, heard), heard)
        now = self._clock()
        return [instance for instance, heard in last_heard.items() if now - heard > silent_seconds]

    async def forget_gone(self, *, silent_seconds: float) -> None:
        busy = {k.instance for k in self._runs.values() if k.run.status is RunStatus.ACTIVE}
        now = self._clock()
        for instance, beat in list(self._beats.items()):
            if now - beat > silent_seconds and instance not in busy:
                del self._beats[instance]
