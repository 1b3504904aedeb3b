"""The task service: one user's todo list, each operation its own short transaction."""

from __future__ import annotations

from collections.abc import Callable

from app.db.uow import UnitOfWork
from app.domain import Task, TaskChanges, TaskFilter, TaskNotFound


class UserTasks:
    """The `TaskBook` of one user, fixed when it is made: the REST endpoints make one from the
    path's verified user, a chat turn from the token's, and the model never names a user."""

    def __init__(self, unit_of_work: Callable[[], UnitOfWork], user_id: str) -> None:
        self._unit_of_work = unit_of_work
        self.user_id = user_id

    async def add(self, title: str, description: str | None = None) -> Task:
        async with self._unit_of_work() as uow:
            task = await uow.tasks.add(self.user_id, title, description)
            await uow.commit()
        return task

    async def list(self, status: TaskFilter = TaskFilter.ALL) -> list[Task]:
        async with self._unit_of_work() as uow:
            return await uow.tasks.list(self.user_id, status)

    async def update(self, task_id: int, changes: TaskChanges) -> Task:
        async with self._unit_of_work() as uow:
            task = await uow.tasks.update(self.user_id, task_id, changes)
            if task is None:
                raise TaskNotFound(task_id)
            await uow.commit()
        return task

    async def delete(self, task_id: int) -> Task:
        async with self._unit_of_work() as uow:
            task = await uow.tasks.delete(self.user_id, task_id)
            if task is None:
                raise TaskNotFound(task_id)
            await uow.commit()
        return task
