"""Tasks: a user's todo list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import TaskRow
from app.domain import (
    Task,
    TaskChanges,
    TaskFilter,
    storable,
)

_TASK_COLUMNS = (
    TaskRow.id,
    TaskRow.user_id,
    TaskRow.title,
    TaskRow.description,
    TaskRow.completed,
    TaskRow.created_at,
    TaskRow.updated_at,
)

_ADD_TASK = insert(TaskRow).returning(*_TASK_COLUMNS)


class TaskRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, user_id: str, title: str, description: str | None) -> Task:
        values = {
            "user_id": user_id,
            "title": storable(title),
            "description": None if description is None else storable(description),
        }
        return Task(*(await self._connection.execute(_ADD_TASK, values)).one())

    async def list(
        self, user_id: str, status: TaskFilter, *, limit: int, after_id: int = 0
    ) -> list[Task]:
        """In the order they were added, from the one after `after_id`."""
        statement = (
            select(*_TASK_COLUMNS)
            .where(TaskRow.user_id == user_id, TaskRow.id > after_id)
            .order_by(TaskRow.id)
            .limit(limit)
        )
        if status is not TaskFilter.ALL:
            statement = statement.where(TaskRow.completed.is_(status is TaskFilter.COMPLETED))
        return [Task(*row) for row in await self._connection.execute(statement)]

    async def update(self, user_id: str, task_id: int, changes: TaskChanges) -> Task | None:
        values: dict[str, Any] = {"updated_at": func.now()}
        if changes.title is not None:
            values["title"] = storable(changes.title)
        if changes.description is not None:
            values["description"] = storable(changes.description)
        if changes.completed is not None:
            values["completed"] = changes.completed
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
            .values(values)
            .returning(*_TASK_COLUMNS)
        )
        row = (await self._connection.execute(statement)).one_or_none()
        return None if row is None else Task(*row)

    async def delete(self, user_id: str, task_id: int) -> Task | None:
        statement = (
            delete(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
            .returning(*_TASK_COLUMNS)
        )
        row = (await self._connection.execute(statement)).one_or_none()
        return None if row is None else Task(*row)
