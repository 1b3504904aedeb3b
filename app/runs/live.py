"""One run in progress in this process: its events so far, in memory, and its local followers.

Publishing never waits: a follower's queue takes everything, and the follower takes what is
queued in one batch, so a busy stream costs one write per batch rather than one per token. A
batch holds at most `BATCH_BYTES` of event JSON (or one event, however long): a follower that
joins a long run, or one whose client has stopped reading, then holds one bounded write rather
than a copy of everything it has yet to send (tests/faults/test_stopped_readers.py: a client
that stopped reading 1 MB behind cost the process 1.8 to 2.5 MB before this bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from enum import StrEnum

from app.events import LoggedEvent

BATCH_BYTES = 64 * 1024
"""The most event JSON a follower is handed at once, in UTF-8 bytes: what uvicorn's write buffer
takes before it stops taking writes."""


class CancelReason(StrEnum):
    USER = "cancelled"
    """Someone asked (the cancel endpoint, or a new message with `cancel_active`)."""
    SHUTDOWN = "shutdown"
    """The service is stopping and the grace period is over."""
    CUT_OFF = "cut_off"
    """This instance lost the database for so long that another may close its runs."""


class Subscription:
    """One follower's queue of a live run's events after `after_seq`, until the run ends or
    the follower leaves."""

    def __init__(self, after_seq: int = 0) -> None:
        self.after_seq = after_seq
        # A list and a bare future made only while the follower waits: an asyncio.Event and
        # a deque cost 1.3 KB of every open stream, each with a 624-byte block (issue 17).
        self._queue: list[LoggedEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.gone = False

    def push(self, event: LoggedEvent) -> None:
        self._queue.append(event)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def batches(self) -> AsyncGenerator[list[LoggedEvent]]:
        """What is queued, a batch at a time, until the queue is empty and closed."""
        try:
            while True:
                if self._queue:
                    size = batch_size(self._queue)
                    if size == len(self._queue):  # the usual case: no list copied
                        batch, self._queue = self._queue, []
                    else:
                        batch, self._queue = self._queue[:size], self._queue[size:]
                    yield batch
                elif self._closed:
                    return
                else:
                    self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
        finally:
            self.gone = True


def batch_size(events: Sequence[LoggedEvent], budget: int = BATCH_BYTES) -> int:
    """How many of these events, from the first, make one batch: as many as fit in `budget`
    bytes of UTF-8, and at least one. (The log's reads page the same way, in SQL.)"""
    total = 0
    for count, event in enumerate(events):
        total += utf8_length(event.data)
        if total > budget:
            return max(count, 1)
    return len(events)


def utf8_length(text: str) -> int:
    """`len(text.encode())`, without encoding ASCII (`isascii` is a flag CPython keeps)."""
    return len(text) if text.isascii() else len(text.encode())


class Ended:
    """Whether a run has ended, and a wait for it: anyio's Event held an asyncio.Event and its
    624-byte deque for each run in flight (issue 17); this holds a future only while waited."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class LiveRun:
    """A run in progress in this process: every event so far, in memory, and its subscribers."""

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self.events: list[LoggedEvent] = []
        self.cancel_reason: CancelReason | None = None
        self.on_cancel: Callable[[], None] | None = None
        self.ended = Ended()
        self._subscribers: set[Subscription] = set()

    @property
    def next_seq(self) -> int:
        return len(self.events) + 1

    def publish(self, event: LoggedEvent) -> None:
        self.events.append(event)
        for subscriber in list(self._subscribers):
            if subscriber.gone:
                self._subscribers.discard(subscriber)  # the client has left; the run goes on
            elif event.seq > subscriber.after_seq:  # a follower may resume past what is here
                subscriber.push(event)

    def subscribe(self, after_seq: int) -> Subscription:
        """Everything after `after_seq`, then what comes, until the run ends."""
        subscription = Subscription(after_seq)
        for event in self.events[after_seq:]:
            subscription.push(event)
        if self.ended.is_set():
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    def cancel(self, reason: CancelReason) -> None:
        """Ask the run to stop; the first reason given is the one that counts."""
        if self.cancel_reason is None and not self.ended.is_set():
            self.cancel_reason = reason
            if self.on_cancel is not None:
                self.on_cancel()

    def end(self) -> None:
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
        self.ended.set()
