"""The event log in this process's memory: for the engine's fast tests, and for a service of one
process (`EVENT_LOG=memory`).

Only followers in this process can read it, and it is gone when the process ends: a service of
several processes (uvicorn's workers, several instances) needs a log they share. A run's events
are kept until `prune` forgets them, `RUN_RETENTION_HOURS` after its final event.

A reader waiting for more holds a bare future, made only while it waits and resolved by the
append that brings its run's next events.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable

import anyio

from app.events import LoggedEvent
from app.runs.live import batch_size
from app.runs.log.base import READ_LIMIT, EventLog, RunEvents


class _RunLog:
    """One run's events in order of `seq`, and when its final event came."""

    __slots__ = ("ended_at", "events", "final", "seqs")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.events: list[LoggedEvent] = []
        self.final: LoggedEvent | None = None
        self.ended_at: float | None = None

    def keep(self, event: LoggedEvent, now: float) -> bool:
        """Keep the event unless one with its seq is kept already; whether it was new."""
        if not self.seqs or event.seq > self.seqs[-1]:  # the usual case: the next one
            self.seqs.append(event.seq)
            self.events.append(event)
        else:
            at = bisect.bisect_left(self.seqs, event.seq)
            if at < len(self.seqs) and self.seqs[at] == event.seq:
                return False
            self.seqs.insert(at, event.seq)
            self.events.insert(at, event)
        if event.terminal and (self.final is None or event.seq < self.final.seq):
            self.final = event
            if self.ended_at is None:
                self.ended_at = now
        return True


class MemoryEventLog(EventLog):
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock`: seconds, for the age of a run's final event (`prune`)."""
        self._clock = clock
        self._runs: dict[str, _RunLog] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def append(self, events: RunEvents) -> None:
        now = self._clock()
        grown: set[str] = set()
        for run_id, event in events:
            run = self._runs.get(run_id)
            if run is None:
                run = self._runs[run_id] = _RunLog()
            if run.keep(event, now):
                grown.add(run_id)
        for run_id in grown:
            for waiter in self._waiters.pop(run_id, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def read(
        self,
        run_id: str,
        after_seq: int,
        *,
        limit: int = READ_LIMIT,
        budget: int | None = None,
        wait: float = 0.0,
    ) -> list[LoggedEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            page = self._page(run_id, after_seq, limit, budget)
            remaining = deadline - loop.time()
            if page or remaining <= 0:
                return page
            # Woken by any append to the run: it may bring only events before `after_seq`.
            waiter = loop.create_future()
            self._waiters.setdefault(run_id, []).append(waiter)
            try:
                with anyio.move_on_after(remaining):
                    await waiter
            finally:
                waiters = self._waiters.get(run_id)  # an append took the list if it woke us
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiters[run_id]

    def _page(
        self, run_id: str, after_seq: int, limit: int, budget: int | None
    ) -> list[LoggedEvent]:
        run = self._runs.get(run_id)
        if run is None:
            return []
        start = bisect.bisect_right(run.seqs, after_seq)
        rest = run.events[start : start + limit]
        return rest if budget is None else rest[: batch_size(rest, budget)]

    async def final(self, run_id: str) -> LoggedEvent | None:
        run = self._runs.get(run_id)
        return None if run is None else run.final

    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        now = self._clock()
        expired = [
            run_id
            for run_id, run in self._runs.items()
            if run.ended_at is not None and now - run.ended_at > older_than_seconds
        ][:limit]
        for run_id in expired:
            del self._runs[run_id]
        return len(expired)
