"""Tasks: a user's todo list.

Each operation is one statement, its own transaction, on asyncpg itself (`app.db.driver`): the
tools of every turn call them."""

from __future__ import annotations

from typing import Any

from app.db.driver import Query
from app.domain import (
    Task,
    TaskChanges,
    TaskFilter,
    storable,
)

_COLUMNS = "id, user_id, title, description, completed, created_at, updated_at"

_ADD = Query(f"""
INSERT INTO tasks (user_id, title, description) VALUES (:user_key, :title, :description)
RETURNING {_COLUMNS}
""")

# In the order they were added (`ix_tasks_user_id_completed_id` serves both).
_LIST = Query(f"""
SELECT {_COLUMNS} FROM tasks WHERE user_id = :user_key AND id > :after_id
ORDER BY id LIMIT :limit
""")
_LIST_BY_STATUS = Query(f"""
SELECT {_COLUMNS} FROM tasks WHERE user_id = :user_key AND completed = :completed
    AND id > :after_id
ORDER BY id LIMIT :limit
""")

# A change left as None leaves its column as it is.
_UPDATE = Query(f"""
UPDATE tasks SET updated_at = now(), title = coalesce(:title, title),
    description = coalesce(:description, description), completed = coalesce(:completed, completed)
WHERE id = :task_id AND user_id = :user_key
RETURNING {_COLUMNS}
""")

_DELETE = Query(f"""
DELETE FROM tasks WHERE id = :task_id AND user_id = :user_key RETURNING {_COLUMNS}
""")


class TaskRepository:
    """On an asyncpg connection (`Database.driver`)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def add(self, user_id: str, title: str, description: str | None) -> Task:
        values = {
            "user_key": user_id,
            "title": storable(title),
            "description": None if description is None else storable(description),
        }
        return Task(*await _ADD.fetchrow(self._connection, values))

    async def list(
        self, user_id: str, status: TaskFilter, *, limit: int, after_id: int = 0
    ) -> list[Task]:
        """In the order they were added, from the one after `after_id`."""
        values = {"user_key": user_id, "after_id": after_id, "limit": limit}
        query = _LIST
        if status is not TaskFilter.ALL:
            query = _LIST_BY_STATUS
            values["completed"] = status is TaskFilter.COMPLETED
        return [Task(*row) for row in await query.fetch(self._connection, values)]

    async def update(self, user_id: str, task_id: int, changes: TaskChanges) -> Task | None:
        values = {
            "task_id": task_id,
            "user_key": user_id,
            "title": None if changes.title is None else storable(changes.title),
            "description": None if changes.description is None else storable(changes.description),
            "completed": changes.completed,
        }
        row = await _UPDATE.fetchrow(self._connection, values)
        return None if row is None else Task(*row)

    async def delete(self, user_id: str, task_id: int) -> Task | None:
        values = {"task_id": task_id, "user_key": user_id}
        row = await _DELETE.fetchrow(self._connection, values)
        return None if row is None else Task(*row)
