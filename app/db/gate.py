"""Who gets the next free database connection, when there is more work than connections."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TypeVar

from app.metrics import DB_QUEUE, DB_WAIT

Connection = TypeVar("Connection")


class Priority(IntEnum):
    """The end of a run (and the event log it waits for) first, then the work of runs already
    going (their tools), then everything else: new turns and other requests."""

    END = 0
    RUN = 1
    NEW = 2


class ConnectionWaitTimeout(TimeoutError):
    """No connection came in time: the service has more work than its pool."""


class ConnectionGate:
    """Hands out `size` places (one per pooled connection) by priority, first come first served
    within one priority; `NEW` work may not take the last `reserved` places. Whoever holds a
    place takes a connection from the pool at once, so the pool itself never queues. Waiting
    longer than `timeout` raises `ConnectionWaitTimeout`."""

    def __init__(self, size: int, *, reserved: int, timeout: float) -> None:
        self._size = size
        self._reserved = reserved
        self._timeout = timeout
        self._in_use = 0
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiting = [0] * len(Priority)  # by priority, not counting those who gave up
        self._arrivals = itertools.count()

    async def acquire(self, priority: Priority) -> None:
        if self._may_take(priority) and not any(self._waiting[: priority + 1]):
            self._in_use += 1
            return
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (priority, next(self._arrivals), place))
        self._waiting[priority] += 1
        queued = DB_QUEUE.labels(priority.name.lower())
        queued.inc()
        began = time.perf_counter()
        self._dispatch()
        try:
            async with asyncio.timeout(self._timeout):
                await place
        except BaseException as error:
            if place.done() and not place.cancelled():
                self.release()  # given a place just as it gave up waiting
            else:
                place.cancel()  # left in the queue, skipped by `_dispatch()`
                self._waiting[priority] -= 1
                self._dispatch()  # whoever its turn held up
            if isinstance(error, TimeoutError):
                raise ConnectionWaitTimeout from None
            raise
        finally:
            queued.dec()
            DB_WAIT.labels(priority.name.lower()).observe(time.perf_counter() - began)

    async def connect(
        self, priority: Priority, open_connection: Callable[[], Awaitable[Connection]]
    ) -> Connection:
        """A place at the gate, then a connection of the pool (`open_connection()`); the place
        given back if none could be had. `release()` gives it back once the connection is."""
        await self.acquire(priority)
        try:
            return await open_connection()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self._in_use -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free places to the waiters first in line, for as long as they may take one."""
        while self._queue:
            priority, _, place = self._queue[0]
            if place.done():  # gave up waiting
                heapq.heappop(self._queue)
                continue
            if not self._may_take(Priority(priority)):
                return
            heapq.heappop(self._queue)
            self._waiting[priority] -= 1
            self._in_use += 1
            place.set_result(None)

    def _may_take(self, priority: Priority) -> bool:
        limit = self._size - (self._reserved if priority is Priority.NEW else 0)
        return self._in_use < limit
