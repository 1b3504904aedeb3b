"""One run in progress in this process: its events so far, in memory, and its local followers.

Publishing never waits: a follower's queue takes everything, and the follower takes all that is
queued at once, so a busy stream costs one write per batch rather than one per token.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable
from enum import StrEnum

import anyio

from app.events import LoggedEvent


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
        self._queue: deque[LoggedEvent] = deque()
        # asyncio's own Event: this wait happens once per token and stream, and anyio's adds
        # a backend lookup to every one (the service runs on asyncio: asyncpg needs it).
        self._ready = asyncio.Event()
        self._closed = False
        self.gone = False

    def push(self, event: LoggedEvent) -> None:
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def batches(self) -> AsyncGenerator[list[LoggedEvent]]:
        """What is queued, all at once, until the queue is empty and closed."""
        try:
            while True:
                if self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    yield batch
                elif self._closed:
                    return
                else:
                    self._ready.clear()
                    await self._ready.wait()
        finally:
            self.gone = True


class LiveRun:
    """A run in progress in this process: every event so far, in memory, and its subscribers."""

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self.events: list[LoggedEvent] = []
        self.cancel_reason: CancelReason | None = None
        self.on_cancel: Callable[[], None] | None = None
        self.ended = anyio.Event()
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
