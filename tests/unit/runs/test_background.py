"""The runs' tasks end with the task group the registry was handed, as its own children would."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from app.runs.background import RunTasks

pytestmark = pytest.mark.anyio


async def test_the_groups_cancel_stops_a_run_and_the_group_waits_for_its_cleanup() -> None:
    steps: list[str] = []
    started = anyio.Event()

    async def run() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for _ in range(5):  # a cleanup that takes a few turns of the loop
                    await anyio.lowlevel.checkpoint()
                steps.append("cleaned up")

    async with anyio.create_task_group() as group:
        RunTasks(group).start(run)
        await started.wait()
        group.cancel_scope.cancel()
    assert steps == ["cleaned up"]


async def test_a_shielded_part_of_a_run_outlasts_the_groups_cancel() -> None:
    steps: list[str] = []
    shielded, release = anyio.Event(), anyio.Event()

    async def run() -> None:
        with anyio.CancelScope(shield=True):
            shielded.set()
            await release.wait()
            steps.append("shielded part done")
        try:
            await anyio.sleep_forever()
        finally:
            steps.append("cancelled after it")

    async with anyio.create_task_group() as group:
        RunTasks(group).start(run)
        await shielded.wait()
        group.cancel_scope.cancel()
        asyncio.get_running_loop().call_later(0, release.set)
    assert steps == ["shielded part done", "cancelled after it"]


async def test_a_run_begun_as_the_group_is_cancelled_is_stopped_and_waited_for() -> None:
    steps: list[str] = []
    first_stopped = anyio.Event()

    async def run() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            steps.append("stopped")
            first_stopped.set()

    async with anyio.create_task_group() as group:
        tasks = RunTasks(group)
        tasks.start(run)
        group.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await first_stopped.wait()
            tasks.start(run)
    assert steps == ["stopped", "stopped"]
