"""A run's end, waited for without anyio's Event (0.8 KB less per run in flight):
every waiter wakes when it is set, a wait after it returns at once, and a cancelled waiter
leaves nothing behind."""

from __future__ import annotations

import asyncio

from app.runs.live import Ended


async def test_every_waiter_wakes_when_the_run_ends_and_later_waits_return_at_once() -> None:
    ended = Ended()
    waiters = [asyncio.ensure_future(ended.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    assert not ended.is_set()
    ended.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert ended.is_set()
    await asyncio.wait_for(ended.wait(), 5)


async def test_a_cancelled_waiter_is_let_go() -> None:
    ended = Ended()
    waiter = asyncio.ensure_future(ended.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert ended._waiters == []
