"""The event log in PostgreSQL: the `run_events` table, woken by LISTEN/NOTIFY.

Every append is one statement, whatever the number of events and runs in it, with one NOTIFY
per run (`run_id:seq`) sent when it commits; every instance hears it on its one LISTEN
connection (`app.db.notifications.Listener`, run by the composition root) and wakes the readers
waiting for that run here, unless it announces no event past what they have (it came late).
A notification can be lost (the LISTEN connection is reconnecting): a wait that ends unwoken
answers nothing without reading again, and the reader's next read finds what the lost
notification would have announced.

**The end of a run in one statement.** The log lives in the same database as the record, so
`end_run` stores the run's end (its status, answer and final event in `runs`, as the record
would), appends its last events and the final one, and notifies, in one statement: a run's end
costs one round trip, as any append does. If the run had ended already (another closer was
first), that statement changes nothing and `store` answers the final event stored then. This
pairs the log with `app.runs.record.postgres` on the same database, as the composition root
builds them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

import anyio

from app.db.gate import Priority
from app.db.notifications import Listener
from app.db.outage import is_outage
from app.db.repositories.run_events import EVENTS_CHANNEL, RunEventRepository
from app.db.uow import Database
from app.events import LoggedEvent
from app.runs.ending import RunEnd
from app.runs.log.base import READ_LIMIT, EventLog, RunEvents


class _Waiter:
    """A reader waiting for a run's events after `after_seq`."""

    __slots__ = ("after_seq", "woken")

    def __init__(self, after_seq: int) -> None:
        self.after_seq = after_seq
        self.woken = anyio.Event()


class PostgresEventLog(EventLog):
    in_the_record = True

    def __init__(self, database: Database, listener: Listener) -> None:
        self._database = database
        self._waiters: defaultdict[str, set[_Waiter]] = defaultdict(set)
        listener.on(EVENTS_CHANNEL, self._notified)

    async def append(self, events: RunEvents) -> None:
        if not events:
            return
        last: dict[str, int] = {}
        for run_id, event in events:
            last[run_id] = event.seq
        notifications = (f"{run_id}:{seq}" for run_id, seq in last.items())
        # First at the gate: a run's end waits for its events to be written.
        async with self._database.driver(Priority.END) as connection:
            await RunEventRepository(connection).append_and_notify(events, *notifications)

    async def read(
        self,
        run_id: str,
        after_seq: int,
        *,
        limit: int = READ_LIMIT,
        budget: int | None = None,
        wait: float = 0.0,
    ) -> list[LoggedEvent]:
        if wait <= 0:
            return await self._page(run_id, after_seq, limit, budget)
        waiter = _Waiter(after_seq)
        self._waiters[run_id].add(waiter)  # before reading: an append in between wakes it
        try:
            deadline = anyio.current_time() + wait
            while True:
                page = await self._page(run_id, after_seq, limit, budget)
                remaining = deadline - anyio.current_time()
                if page or remaining <= 0:
                    return page
                with anyio.move_on_after(remaining):
                    await waiter.woken.wait()
                if not waiter.woken.is_set():
                    return []
                waiter.woken = anyio.Event()
        finally:
            self._waiters[run_id].discard(waiter)
            if not self._waiters[run_id]:
                del self._waiters[run_id]

    async def _page(
        self, run_id: str, after_seq: int, limit: int, budget: int | None
    ) -> list[LoggedEvent]:
        async with self._database.driver() as connection:
            events = RunEventRepository(connection)
            return await events.after(run_id, after_seq, limit=limit, budget=budget)

    def _notified(self, message: str) -> None:
        run_id, _, seq = message.partition(":")
        last = int(seq) if seq.isdigit() else None
        for waiter in self._waiters.get(run_id, ()):
            # A notification can arrive after the reader has read what it announced.
            if last is None or last > waiter.after_seq:
                waiter.woken.set()

    async def final(self, run_id: str) -> LoggedEvent | None:
        async with self._database.driver() as connection:
            return await RunEventRepository(connection).final(run_id)

    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        async with self._database.driver() as connection:
            events = RunEventRepository(connection)
            return await events.prune(older_than_seconds=older_than_seconds, limit=limit)

    async def end_run(
        self, end: RunEnd, unwritten: RunEvents, store: Callable[[], Awaitable[LoggedEvent]]
    ) -> LoggedEvent:
        async with self._database.driver(Priority.END) as connection:
            ended = await RunEventRepository(connection).end_run_and_append(
                end.run_id,
                end.status,
                end.answer,
                end.answer_id,
                [*unwritten, (end.run_id, end.final)],
                notification=f"{end.run_id}:{end.final.seq}",
            )
        return end.final if ended else await store()

    def is_outage(self, error: BaseException) -> bool:
        return is_outage(error)
