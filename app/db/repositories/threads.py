"""Threads: a client protocol's own ids for its chats, each naming one of the user's
conversations (`app.domain.Thread`)."""

from __future__ import annotations

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import ThreadRow
from app.domain import Thread

_THREAD_CONVERSATION = select(ThreadRow.conversation_id).where(
    ThreadRow.user_id == bindparam("user_key"),
    ThreadRow.protocol == bindparam("protocol"),
    ThreadRow.thread_id == bindparam("thread_key"),
)

# A new conversation and the thread that names it, in one statement.
_ADD_THREAD = text("""
WITH conversation AS (
    INSERT INTO conversations (user_id, title) VALUES (:user_key, :title) RETURNING id
)
INSERT INTO threads (user_id, protocol, thread_id, conversation_id)
SELECT :user_key, :protocol, :thread_key, id FROM conversation
RETURNING conversation_id
""")


class ThreadRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def conversation(self, user_id: str, thread: Thread) -> int | None:
        """The conversation the user's thread names, if it has been started."""
        keys = _keys(user_id, thread)
        found: int | None = (await self._connection.execute(_THREAD_CONVERSATION, keys)).scalar()
        return found

    async def add(self, user_id: str, thread: Thread, title: str) -> int:
        """A new conversation named by the thread (under the user's lock: one per thread)."""
        keys = {**_keys(user_id, thread), "title": title}
        conversation_id: int = (await self._connection.execute(_ADD_THREAD, keys)).scalar_one()
        return conversation_id


def _keys(user_id: str, thread: Thread) -> dict[str, str]:
    return {"user_key": user_id, "protocol": thread.protocol, "thread_key": thread.thread_id}
