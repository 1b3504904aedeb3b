"""The Agents SDK floor: the benchmark's tool-using turn run by the SDK alone, in a bare loop,
with no HTTP and no database (the tools keep tasks in memory)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from agents import Agent, RunConfig, Runner

from app.agent.offline import OfflineModel
from app.agent.tools import TODO_TOOLS, TurnContext
from app.domain import Task, TaskChanges, TaskFilter


class MemoryTasks:
    def __init__(self) -> None:
        self._tasks: dict[int, Task] = {}

    async def add(self, title: str, description: str | None = None) -> Task:
        now = datetime.now(UTC)
        task = Task(len(self._tasks) + 1, "floor", title, description, False, now, now)
        self._tasks[task.id] = task
        return task

    async def list(self, status: TaskFilter = TaskFilter.ALL) -> list[Task]:
        return list(self._tasks.values())

    async def update(self, task_id: int, changes: TaskChanges) -> Task:
        return self._tasks[task_id]

    async def delete(self, task_id: int) -> Task:
        return self._tasks.pop(task_id)


async def _turns(count: int) -> None:
    agent = Agent[TurnContext](name="todo", tools=list(TODO_TOOLS), model=OfflineModel())
    config = RunConfig(tracing_disabled=True)
    context = TurnContext(MemoryTasks())
    for number in range(count):
        result = Runner.run_streamed(
            agent, f"add bench item {number}", context=context, run_config=config
        )
        async for _ in result.stream_events():
            pass


def measure(count: int) -> dict[str, Any]:
    asyncio.run(_turns(10))  # warm up
    began = time.process_time()
    asyncio.run(_turns(count))
    cpu = time.process_time() - began
    return {"turns": count, "cpu_ms_per_turn": round(cpu / count * 1000, 2)}
