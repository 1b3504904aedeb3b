"""Waiting for new events in Redis streams: one blocking read shared by every read waiting
here (see `app.runs.log.redis_streams`, which gives it its `XREAD`; this module knows no redis).

A read at the tip registers what it waits for and sleeps; the one blocking read covers every
stream waited on, and hands the entries it gets to the reads waiting for them. A stream not in
the blocked read cancels it (the read is sent again with it); a stream stays in the read for
`STICKY_SECONDS` after its last wait, so a follower that comes back at once finds it there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from app.events import LoggedEvent

GATHER_SECONDS = 0.005
"""How long the blocking reader lets an append's batch land before it reads again."""
STICKY_SECONDS = 10.0
"""How long a stream stays in the blocking read after its last waiting read: a follower at the
tip comes back within that, and finds it there (no new blocking read for it)."""

Read = Callable[[dict[str, int]], Awaitable[list[tuple[str, list[LoggedEvent]]]]]
"""One blocking read: streams and the seq to read after in each; the new events by stream."""


class BlockingReader:
    """One `XREAD BLOCK` at a time over every stream that reads here wait on (in a cluster,
    those of one slot), handing what it reads to the reads waiting for it; see the module's
    docstring. It ends when nothing has been waited on for `STICKY_SECONDS`."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._after: dict[str, int] = {}  # what the blocking read reads after, by stream
        self._waited: dict[str, float] = {}  # when a read last waited on each stream
        self._waiting: dict[str, list[tuple[int, anyio.Event, list[Any]]]] = {}
        self._reading: frozenset[str] = frozenset()
        self._scope: anyio.CancelScope | None = None
        self._ended = False

    def at_tip(self, key: str, after_seq: int) -> bool:
        """Whether the blocking read holds `key` at `after_seq`: what comes next, it will
        hand over (no read of the stream needed first)."""
        return not self._ended and self._after.get(key) == after_seq

    async def wait(self, key: str, after_seq: int, seconds: float) -> list[LoggedEvent]:
        if self._ended:
            raise ConnectionError("the event log's blocking reader has stopped; read again")
        woken = anyio.Event()
        handed: list[Any] = []
        self._waiting.setdefault(key, []).append((after_seq, woken, handed))
        self._waited[key] = time.monotonic()
        known = self._after.get(key)
        if known is None or known > after_seq:
            self._after[key] = after_seq
        if key not in self._reading and self._scope is not None:
            self._scope.cancel()  # read again, with this stream too
        try:
            with anyio.move_on_after(seconds):
                await woken.wait()
        finally:
            waiting = self._waiting.get(key, [])
            waiting[:] = [item for item in waiting if item[1] is not woken]
            if not waiting:
                self._waiting.pop(key, None)
        if handed and isinstance(handed[0], BaseException):
            raise handed[0]
        return handed

    async def run(self) -> None:
        try:
            while self._forget_idle():
                after = dict(self._after)
                self._reading = frozenset(after)
                with anyio.CancelScope() as self._scope:
                    reply: list[tuple[str, list[LoggedEvent]]] = []
                    reply = await self._read(after)
                    self._scope = None
                    for key, events in reply:
                        self._hand_over(key, events)
                self._scope = None
                if reply:
                    # Redis answers after the first stream of an append's batch is written:
                    # reading again at once would take the batch one stream at a time.
                    await anyio.sleep(GATHER_SECONDS)
        except Exception as error:
            for waiting in self._waiting.values():
                for _, woken, handed in waiting:
                    handed.append(error)
                    woken.set()
            raise
        finally:
            self._ended = True

    def _hand_over(self, key: str, events: list[LoggedEvent]) -> None:
        if not events:
            return
        self._after[key] = events[-1].seq
        for after_seq, woken, handed in self._waiting.get(key, []):
            if not woken.is_set() and (new := [event for event in events if event.seq > after_seq]):
                handed.extend(new)
                woken.set()
        if events[-1].terminal:  # the run has ended: nothing more will come
            self._after.pop(key, None)

    def _forget_idle(self) -> bool:
        """Drop the streams not waited on lately; whether any is left to read."""
        now = time.monotonic()
        for key in list(self._after):
            if key not in self._waiting and now - self._waited.get(key, 0.0) > STICKY_SECONDS:
                del self._after[key]
                self._waited.pop(key, None)
        return bool(self._after)
