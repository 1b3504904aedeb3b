"""Conversations: a user's chats, and the chat ids a Vercel AI SDK client gave them."""

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

from app.db.models import AiChatRow, ConversationRow
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

_AI_CHAT_CONVERSATION = select(AiChatRow.conversation_id).where(
    AiChatRow.user_id == bindparam("user_key"), AiChatRow.chat_id == bindparam("chat_key")
)

# A new conversation and the AI SDK chat id that names it, in one statement.
_ADD_AI_CHAT = text("""
WITH conversation AS (
    INSERT INTO conversations (user_id, title) VALUES (:user_key, :title) RETURNING id
)
INSERT INTO ai_chats (user_id, chat_id, conversation_id)
SELECT :user_key, :chat_key, id FROM conversation
RETURNING conversation_id
""")

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

    async def of_ai_chat(self, user_id: str, chat_id: str) -> int | None:
        """The conversation an AI SDK client's chat id names, if any."""
        keys = {"user_key": user_id, "chat_key": chat_id}
        found: int | None = (await self._connection.execute(_AI_CHAT_CONVERSATION, keys)).scalar()
        return found

    async def add_for_ai_chat(self, user_id: str, chat_id: str, title: str) -> int:
        """A new conversation named by the chat id (under the user's lock: one per chat id)."""
        keys = {"user_key": user_id, "chat_key": chat_id, "title": title}
        conversation_id: int = (await self._connection.execute(_ADD_AI_CHAT, keys)).scalar_one()
        return conversation_id

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
