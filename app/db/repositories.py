"""Repositories: collections of domain objects over one session. They never commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConversationRow, MessageRow, TaskRow
from app.domain import (
    Conversation,
    Message,
    MessageStatus,
    NewMessage,
    Role,
    Task,
    TaskChanges,
    TaskFilter,
    ToolCall,
    Usage,
)

_CONVERSATION_COLUMNS = (
    ConversationRow.id,
    ConversationRow.user_id,
    ConversationRow.title,
    ConversationRow.created_at,
    ConversationRow.updated_at,
)
_MESSAGE_COLUMNS = (
    MessageRow.id,
    MessageRow.conversation_id,
    MessageRow.role,
    MessageRow.content,
    MessageRow.status,
    MessageRow.created_at,
    MessageRow.tool_calls,
    MessageRow.usage,
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


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user_id: str, title: str) -> Conversation:
        statement = (
            insert(ConversationRow)
            .values(user_id=user_id, title=title)
            .returning(*_CONVERSATION_COLUMNS)
        )
        row = (await self._session.execute(statement)).one()
        return Conversation(*row)

    async def get(self, user_id: str, conversation_id: int) -> Conversation | None:
        statement = select(*_CONVERSATION_COLUMNS).where(
            ConversationRow.id == conversation_id, ConversationRow.user_id == user_id
        )
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else Conversation(*row)

    async def list(self, user_id: str, *, limit: int) -> list[Conversation]:
        statement = (
            select(*_CONVERSATION_COLUMNS)
            .where(ConversationRow.user_id == user_id)
            .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
            .limit(limit)
        )
        return [Conversation(*row) for row in await self._session.execute(statement)]

    async def touch(self, conversation_id: int) -> None:
        statement = (
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .values(updated_at=func.now())
        )
        await self._session.execute(statement)

    async def delete(self, user_id: str, conversation_id: int) -> bool:
        statement = (
            delete(ConversationRow)
            .where(ConversationRow.id == conversation_id, ConversationRow.user_id == user_id)
            .returning(ConversationRow.id)
        )
        return (await self._session.execute(statement)).one_or_none() is not None


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: NewMessage) -> Message:
        statement = (
            insert(MessageRow)
            .values(
                conversation_id=message.conversation_id,
                role=message.role.value,
                content=message.content,
                status=message.status.value,
                tool_calls=[call.as_dict() for call in message.tool_calls],
                usage=None if message.usage is None else message.usage.as_dict(),
            )
            .returning(*_MESSAGE_COLUMNS)
        )
        return _message((await self._session.execute(statement)).one())

    async def recent(self, conversation_id: int, *, limit: int) -> list[Message]:
        """The last `limit` messages, oldest first."""
        if limit == 0:
            return []
        statement = (
            select(*_MESSAGE_COLUMNS)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.id.desc())
            .limit(limit)
        )
        rows = list(await self._session.execute(statement))
        return [_message(row) for row in reversed(rows)]

    async def list(self, conversation_id: int) -> list[Message]:
        statement = (
            select(*_MESSAGE_COLUMNS)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.id)
        )
        return [_message(row) for row in await self._session.execute(statement)]


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user_id: str, title: str, description: str | None) -> Task:
        statement = (
            insert(TaskRow)
            .values(user_id=user_id, title=title, description=description)
            .returning(*_TASK_COLUMNS)
        )
        return Task(*(await self._session.execute(statement)).one())

    async def get(self, user_id: str, task_id: int) -> Task | None:
        statement = select(*_TASK_COLUMNS).where(TaskRow.id == task_id, TaskRow.user_id == user_id)
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else Task(*row)

    async def list(self, user_id: str, status: TaskFilter) -> list[Task]:
        statement = select(*_TASK_COLUMNS).where(TaskRow.user_id == user_id).order_by(TaskRow.id)
        if status is not TaskFilter.ALL:
            statement = statement.where(TaskRow.completed.is_(status is TaskFilter.COMPLETED))
        return [Task(*row) for row in await self._session.execute(statement)]

    async def update(self, user_id: str, task_id: int, changes: TaskChanges) -> Task | None:
        values: dict[str, Any] = {"updated_at": func.now()}
        if changes.title is not None:
            values["title"] = changes.title
        if changes.description is not None:
            values["description"] = changes.description
        if changes.completed is not None:
            values["completed"] = changes.completed
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
            .values(values)
            .returning(*_TASK_COLUMNS)
        )
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else Task(*row)

    async def delete(self, user_id: str, task_id: int) -> Task | None:
        statement = (
            delete(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
            .returning(*_TASK_COLUMNS)
        )
        row = (await self._session.execute(statement)).one_or_none()
        return None if row is None else Task(*row)


def _message(row: Sequence[Any]) -> Message:
    id_, conversation_id, role, content, status, created_at, tool_calls, usage = row
    return Message(
        id=id_,
        conversation_id=conversation_id,
        role=Role(role),
        content=content,
        status=MessageStatus(status),
        created_at=created_at,
        tool_calls=tuple(ToolCall(**call) for call in tool_calls or ()),
        usage=None if usage is None else Usage(**usage),
    )
