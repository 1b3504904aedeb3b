"""One run in progress in this process: its events so far, in memory, and its local followers.

Publishing never waits: a follower's queue takes everything, and the follower takes what is
queued in one batch, so a busy stream costs one write per batch rather than one per token. A
batch holds at most `BATCH_BYTES` of event JSON (or one event, however long): a follower that
joins a long run, or one whose client has stopped reading, then holds one bounded write rather
than a copy of everything it has yet to send (tests/faults/test_stopped_readers.py: a client
that stopped reading 1 MB behind cost the process 1.8 to 2.5 MB before this bound).

**Shown before logged, within a window.** A run's events are handed to its followers here at
once, before the event log has them (its writer appends every 20 ms): a token reaches the client
without waiting for the log. If this process dies, what clients were shown past the log is
lost, and whoever closes the run cannot know how far that went. So a run shows no event more
than `UNLOGGED_WINDOW` past the last one the log is known to hold (`logged`); further events
wait in memory until the log catches up (the log is down). The one who closes the run of a
gone instance numbers its final event above that bound (`app.runs.recovery`): no seq a client
was shown is ever used again for another event.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncGenerator, Callable, Sequence
from enum import StrEnum

from app.events import MAX_SEQ, LoggedEvent

BATCH_BYTES = 64 * 1024
"""The most event JSON a follower is handed at once, in UTF-8 bytes: what uvicorn's write buffer
takes before it stops taking writes."""

UNLOGGED_WINDOW = 1_000
"""How many events past the last one logged a run may show its followers. The log is one
batch (20 ms, a few events) behind in normal operation, so this bound is met only while the log
cannot be written; large, so that an outage of a few seconds holds nothing back."""


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
        # a deque would hold a preallocated block for every open stream.
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
    preallocated deque for each run in flight; this holds a future only while waited."""

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
    """A run in progress in this process: every event so far, in memory, and its subscribers.

    `window`: how far past `logged_seq` events are shown (`UNLOGGED_WINDOW`); None for a copy of
    another instance's run read from the log, all of it logged."""

    def __init__(self, run_id: str, *, window: int | None = UNLOGGED_WINDOW) -> None:
        self.id = run_id
        self.events: list[LoggedEvent] = []
        self.logged_seq = 0
        """The highest seq the event log is known to hold."""
        self.cancel_reason: CancelReason | None = None
        self.on_cancel: Callable[[], None] | None = None
        self.ended = Ended()
        self._window = window
        self._shown_through = MAX_SEQ if window is None else window
        """The highest seq followers may be shown now."""
        self._held = 0
        """How many of `events`, at its end, are held back."""
        self._subscribers: set[Subscription] = set()

    @property
    def next_seq(self) -> int:
        return len(self.events) + 1

    def shows(self, seq: int) -> bool:
        """Whether an event with this seq may be shown now: within the window."""
        return seq <= self._shown_through

    def publish(self, event: LoggedEvent) -> None:
        """Keep the event, and hand it to followers now if the window allows, else once the
        log has caught up (`logged`)."""
        self.events.append(event)
        if self._held or event.seq > self._shown_through:
            self._held += 1
            return
        for subscriber in list(self._subscribers):  # `_push`, inline: this runs for each token
            if subscriber.gone:
                self._subscribers.discard(subscriber)
            elif event.seq > subscriber.after_seq:
                subscriber.push(event)

    def logged(self, seq: int) -> None:
        """The log holds the run's events up to `seq`: show what that lets through."""
        if seq <= self.logged_seq:
            return
        self.logged_seq = seq
        if self._window is not None:
            self._shown_through = seq + self._window
        while self._held and self.events[-self._held].seq <= self._shown_through:
            self._push(self.events[-self._held])
            self._held -= 1

    def _push(self, event: LoggedEvent) -> None:
        for subscriber in list(self._subscribers):
            if subscriber.gone:
                self._subscribers.discard(subscriber)  # the client has left; the run goes on
            elif event.seq > subscriber.after_seq:  # a follower may resume past what is here
                subscriber.push(event)

    def subscribe(self, after_seq: int) -> Subscription:
        """Everything shown after `after_seq`, then what comes, until the run ends."""
        subscription = Subscription(after_seq)
        shown = len(self.events) - self._held
        start = bisect.bisect_right(self.events, after_seq, hi=shown, key=_seq)
        for event in self.events[start:shown]:
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

    def finish(self, final: LoggedEvent | None) -> None:
        """End the run: followers get `final` after what they were shown, or, with None, no
        final event (their streams end cut, and they read the end from the log once it is
        stored). Events still held back are never shown: the final event says where the
        stored answer ends."""
        if final is not None:
            if self._held:
                del self.events[-self._held :]
                self._held = 0
            self.events.append(final)
            self._push(final)
        self.end()

    def end(self) -> None:
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
        self.ended.set()


def _seq(event: LoggedEvent) -> int:
    return event.seq
