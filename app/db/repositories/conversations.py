"""Conversations: a user's chats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    bindparam,
    delete,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import ConversationRow
from app.domain import (
    Conversation,
    ConversationState,
)

_CONVERSATION_COLUMNS = (
    ConversationRow.id,
    ConversationRow.user_id,
    ConversationRow.title,
    ConversationRow.created_at,
    ConversationRow.updated_at,
)

# The statements of the hot path are built once: building a statement costs more CPU than
# sending it. Parameters come at execution.
_GET_CONVERSATION = select(*_CONVERSATION_COLUMNS).where(
    ConversationRow.id == bindparam("conversation_key"),
    ConversationRow.user_id == bindparam("user_key"),
)

_CONVERSATION_STATE = text("""
SELECT
    (SELECT id FROM runs WHERE conversation_id = c.id AND status = 'active'),
    (SELECT count(*) FROM runs WHERE user_id = c.user_id AND status = 'active')
FROM conversations c WHERE c.id = :conversation_key AND c.user_id = :user_key
""")


class ConversationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, user_id: str, conversation_id: int) -> Conversation | None:
        keys = {"conversation_key": conversation_id, "user_key": user_id}
        row = (await self._connection.execute(_GET_CONVERSATION, keys)).one_or_none()
        return None if row is None else Conversation(*row)

    async def list(
        self, user_id: str, *, limit: int, before: tuple[datetime, int] | None = None
    ) -> list[Conversation]:
        """The most recently active first; with `before` (an `updated_at` and an id), those
        that come after it in that order."""
        statement = (
            select(*_CONVERSATION_COLUMNS)
            .where(ConversationRow.user_id == user_id)
            .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
            .limit(limit)
        )
        if before is not None:
            statement = statement.where(
                tuple_(ConversationRow.updated_at, ConversationRow.id) < tuple_(*before)
            )
        return [Conversation(*row) for row in await self._connection.execute(statement)]

    async def state(self, user_id: str, conversation_id: int) -> ConversationState | None:
        """None if the user has no such conversation."""
        keys = {"conversation_key": conversation_id, "user_key": user_id}
        row = (await self._connection.execute(_CONVERSATION_STATE, keys)).one_or_none()
        if row is None:
            return None
        active_run, active_runs = row
        return ConversationState(None if active_run is None else str(active_run), active_runs)

    async def delete(self, user_id: str, conversation_id: int) -> bool:
        statement = (
            delete(ConversationRow)
            .where(ConversationRow.id == conversation_id, ConversationRow.user_id == user_id)
            .returning(ConversationRow.id)
        )
        return (await self._connection.execute(statement)).one_or_none() is not None
