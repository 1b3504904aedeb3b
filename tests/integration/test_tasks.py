"""The task service on the real database, called concurrently as a model's parallel tool calls
call it."""

from __future__ import annotations

import asyncio
import uuid

from app.db.uow import Database
from app.domain import TaskChanges
from app.tasks import UserTasks


async def test_concurrent_adds_get_ids_in_the_order_they_were_asked_for(database_url: str) -> None:
    database = Database(database_url, pool_size=5)
    try:
        for _ in range(5):
            tasks = UserTasks(database, f"order-{uuid.uuid4().hex}")
            titles = [f"Task {n}" for n in range(10)]
            added = await asyncio.gather(*(tasks.add(title) for title in titles))
            assert [task.title for task in added] == titles
            ids = [task.id for task in added]
            assert ids == sorted(ids), "the adds were stored in another order"
            assert [task.title for task in await tasks.list()] == titles
    finally:
        await database.dispose()


async def test_concurrent_changes_to_one_task_all_land(database_url: str) -> None:
    database = Database(database_url, pool_size=5)
    try:
        tasks = UserTasks(database, f"race-{uuid.uuid4().hex}")
        task = await tasks.add("Call mom")
        await asyncio.gather(
            tasks.update(task.id, TaskChanges(title="Call mom at 6")),
            tasks.update(task.id, TaskChanges(completed=True)),
            tasks.update(task.id, TaskChanges(description="about the party")),
        )
        [stored] = await tasks.list()
        assert (stored.title, stored.completed, stored.description) == (
            "Call mom at 6",
            True,
            "about the party",
        )
    finally:
        await database.dispose()
