"""The connection gate: places handed out by priority, a reserve that new work cannot take,
and no place lost to a waiter that gave up."""

from __future__ import annotations

import asyncio

import pytest

from app.db.gate import ConnectionGate, ConnectionWaitTimeout, Priority


async def _waiting(gate: ConnectionGate, priority: Priority, served: list[str], name: str) -> None:
    await gate.acquire(priority)
    served.append(name)


async def test_places_go_to_the_end_of_runs_first_then_runs_then_new_work() -> None:
    gate = ConnectionGate(2, reserved=0, timeout=5)
    await gate.acquire(Priority.NEW)
    await gate.acquire(Priority.NEW)
    served: list[str] = []
    waiters = [
        asyncio.create_task(_waiting(gate, priority, served, name))
        for priority, name in [
            (Priority.NEW, "new 1"),
            (Priority.RUN, "tool"),
            (Priority.END, "end 1"),
            (Priority.NEW, "new 2"),
            (Priority.END, "end 2"),
        ]
    ]
    await asyncio.sleep(0)
    for _ in waiters:
        gate.release()
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert served == ["end 1", "end 2", "tool", "new 1", "new 2"]


async def test_new_work_never_takes_the_reserved_places() -> None:
    gate = ConnectionGate(3, reserved=1, timeout=0.2)
    await gate.acquire(Priority.NEW)
    await gate.acquire(Priority.NEW)
    with pytest.raises(ConnectionWaitTimeout):
        await gate.acquire(Priority.NEW)
    await gate.acquire(Priority.END)  # the reserved place, at once
    gate.release()
    await gate.acquire(Priority.RUN)


async def test_a_waiter_that_gives_up_loses_no_place() -> None:
    gate = ConnectionGate(1, reserved=0, timeout=5)
    await gate.acquire(Priority.NEW)
    gave_up = asyncio.create_task(gate.acquire(Priority.END))
    patient = asyncio.create_task(gate.acquire(Priority.NEW))
    await asyncio.sleep(0)
    gave_up.cancel()
    await asyncio.sleep(0)
    gate.release()
    await asyncio.wait_for(patient, 1)  # the place went to the one still waiting
    # A place given just as its waiter is cancelled comes back.
    late = asyncio.create_task(gate.acquire(Priority.NEW))
    await asyncio.sleep(0)
    gate.release()  # gives `late` the place...
    late.cancel()  # ...before it resumes
    with pytest.raises(asyncio.CancelledError):
        await late
    await asyncio.wait_for(gate.acquire(Priority.NEW), 1)


async def test_a_place_freed_as_a_waiter_gives_up_goes_to_the_next_at_once() -> None:
    gate = ConnectionGate(1, reserved=0, timeout=5)
    await gate.acquire(Priority.NEW)
    gave_up = asyncio.create_task(gate.acquire(Priority.END))
    await asyncio.sleep(0)
    # The next one arrives before the one who gave up has run its own cleanup.
    arriving = asyncio.create_task(gate.acquire(Priority.END))
    gave_up.cancel()
    gate.release()
    await asyncio.wait_for(arriving, 0.5)
    with pytest.raises(asyncio.CancelledError):
        await gave_up
    # Still exactly one place: the next one waits.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gate.acquire(Priority.NEW), 0.2)
