"""The batched writer of every run's events to PostgreSQL.

A run hands each event to its local followers at once and to this log, which writes what
gathered in `BATCH_SECONDS` from every run as one statement, with one NOTIFY per run in it, so
that other instances (and later readers) can follow. A run's last events are not left to it:
the run's end takes them back (`take_unwritten`) and writes them with its final event.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

import anyio

from app.db.gate import Priority
from app.db.outage import is_outage
from app.db.uow import Database
from app.events import LoggedEvent
from app.metrics import EVENT_LOG_BATCH, EVENT_LOG_WRITE

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.02
RETRY_SECONDS = 1.0

RunEvents = list[tuple[str, LoggedEvent]]
"""Events with the id of their run, in the order they are to be written."""

WriteBatch = Callable[[RunEvents], Awaitable[None]]


class EventLog:
    """Writes the runs' events in batches; see the module's docstring."""

    def __init__(self, write: WriteBatch) -> None:
        self._write = write
        self._pending: RunEvents = []
        self._writing: set[str] = set()
        self._wakeup = anyio.Event()
        self._written = anyio.Event()

    @classmethod
    def to(cls, database: Database) -> EventLog:
        """A log writing to `database`: each batch one statement, with its notifications."""

        async def write(batch: RunEvents) -> None:
            last: dict[str, int] = {}
            for run_id, event in batch:
                last[run_id] = event.seq
            async with database.single_statement(Priority.END) as uow:
                notifications = (f"{run_id}:{seq}" for run_id, seq in last.items())
                await uow.run_events.append_and_notify(batch, *notifications)

        return cls(write)

    def append(self, run_id: str, event: LoggedEvent) -> None:
        self._pending.append((run_id, event))
        self._wakeup.set()

    async def take_unwritten(self, run_id: str) -> RunEvents:
        """Take back a finishing run's unwritten events, once none of its events is being
        written, so that its last statement writes them, in order, with its final event."""
        while run_id in self._writing:
            await self._written.wait()
        mine = [item for item in self._pending if item[0] == run_id]
        self._pending = [item for item in self._pending if item[0] != run_id]
        return mine

    def put_back(self, events: Sequence[tuple[str, LoggedEvent]]) -> None:
        """Return events taken by `take_unwritten()` whose writing failed, ahead of the rest."""
        self._pending[:0] = events
        self._wakeup.set()

    async def write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            await anyio.sleep(BATCH_SECONDS)  # gather the tokens of every run into one write
            self._wakeup = anyio.Event()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            self._writing = {run_id for run_id, _ in batch}
            unreachable = False
            EVENT_LOG_BATCH.observe(len(batch))
            began = time.perf_counter()
            try:
                await self._write(batch)
                EVENT_LOG_WRITE.observe(time.perf_counter() - began)
            except Exception:
                logger.exception("could not write %d run events; retrying run by run", len(batch))
                unreachable = await self._write_each_run(batch)
            finally:
                self._writing = set()
                self._written.set()
                self._written = anyio.Event()
            if unreachable:
                await anyio.sleep(RETRY_SECONDS)

    async def _write_each_run(self, batch: RunEvents) -> bool:
        """After a failed batch: write each run's events on their own, so that one run whose
        events cannot be written (its conversation was deleted) does not hold up the others.
        Events that fail for an unreachable database (`is_outage`: a restart too) go back in
        the queue; those of a run the database refuses are dropped. True if the database
        seemed unreachable."""
        by_run: dict[str, RunEvents] = defaultdict(list)
        for item in batch:
            by_run[item[0]].append(item)
        unreachable = False
        for run_id, events in by_run.items():
            try:
                await self._write(events)
            except Exception as error:
                if is_outage(error):  # they wait, and are written once it is back
                    unreachable = True
                    self.put_back(events)
                else:
                    logger.exception("dropping %d events of run %s", len(events), run_id)
        return unreachable
