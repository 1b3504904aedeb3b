"""The task service: one user's todo list, each operation one statement (its own
transaction)."""

from __future__ import annotations

import asyncio

from app.db.gate import Priority
from app.db.repositories.tasks import TaskRepository
from app.db.uow import Database
from app.domain import Task, TaskChanges, TaskFilter, TaskNotFound


class UserTasks:
    """The `TaskBook` of one user, fixed when it is made: the REST endpoints make one from the
    path's verified user, a chat turn from the token's, and the model never names a user.
    A chat turn's has the priority of a run already going (see `Priority`).

    Calls may come concurrently (a model's parallel tool calls, which the SDK runs at once):
    each is one statement, atomic on its own. Adds alone go one at a time, in the order they
    were asked for, so the tasks a turn adds get their ids, and their places in the list, in
    the order the user named them (concurrent inserts are stored in whatever order they reach
    the database)."""

    def __init__(self, database: Database, user_id: str, priority: Priority = Priority.NEW) -> None:
        self._database = database
        self._priority = priority
        self.user_id = user_id
        self._adding = asyncio.Lock()  # first come, first served: in the order asked

    async def add(self, title: str, description: str | None = None) -> Task:
        async with self._adding, self._database.driver(self._priority) as connection:
            task = await TaskRepository(connection).add(self.user_id, title, description)
        return task

    async def list(
        self, status: TaskFilter = TaskFilter.ALL, *, limit: int = 1000, after_id: int = 0
    ) -> list[Task]:
        async with self._database.driver(self._priority) as connection:
            tasks = TaskRepository(connection)
            return await tasks.list(self.user_id, status, limit=limit, after_id=after_id)

    async def update(self, task_id: int, changes: TaskChanges) -> Task:
        async with self._database.driver(self._priority) as connection:
            task = await TaskRepository(connection).update(self.user_id, task_id, changes)
            if task is None:
                raise TaskNotFound(task_id)
        return task

    async def delete(self, task_id: int) -> Task:
        async with self._database.driver(self._priority) as connection:
            task = await TaskRepository(connection).delete(self.user_id, task_id)
            if task is None:
                raise TaskNotFound(task_id)
        return task
