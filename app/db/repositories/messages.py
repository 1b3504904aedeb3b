"""Messages: what the user said and what the assistant answered, in a conversation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import MessageRow
from app.domain import (
    Message,
    MessageStatus,
    Role,
    ToolCall,
    Usage,
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

_RECENT_MESSAGES = (
    select(*_MESSAGE_COLUMNS)
    .where(MessageRow.conversation_id == bindparam("conversation_key"))
    .order_by(MessageRow.id.desc())
    .limit(bindparam("limit_key"))
)


class MessageRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def recent(self, conversation_id: int, *, limit: int) -> list[Message]:
        """The last `limit` messages, oldest first."""
        if limit == 0:
            return []
        keys = {"conversation_key": conversation_id, "limit_key": limit}
        rows = list(await self._connection.execute(_RECENT_MESSAGES, keys))
        return [_message_from_row(row) for row in reversed(rows)]

    async def list(
        self, conversation_id: int, *, limit: int, before_id: int | None = None
    ) -> list[Message]:
        """The last `limit` messages (before the message `before_id`), oldest first."""
        statement = (
            select(*_MESSAGE_COLUMNS)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            statement = statement.where(MessageRow.id < before_id)
        rows = list(await self._connection.execute(statement))
        return [_message_from_row(row) for row in reversed(rows)]


def _message_from_row(row: Sequence[Any]) -> Message:
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
