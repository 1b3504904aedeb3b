"""Migration 0006 keeps the AI SDK's chats: each `ai_chats` row becomes a thread of the
`ai-sdk` protocol naming the same conversation, found by the repository as the routes ask for
it; downgrading gives the AI SDK's back and forgets other protocols' threads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrations import downgrade, upgrade
from app.db.uow import Database
from app.domain import Thread
from app.protocols.ai_sdk import PROTOCOL


async def _rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            return [dict(row._mapping) for row in await connection.execute(text(sql), params)]
    finally:
        await engine.dispose()


async def test_the_ai_sdks_chats_become_its_threads_and_come_back(fresh_database: str) -> None:
    await upgrade(fresh_database, "0005")
    [conversation] = await _rows(
        fresh_database,
        "INSERT INTO conversations (user_id, title) VALUES ('ann', 'kept') RETURNING id",
    )
    await _rows(
        fresh_database,
        "INSERT INTO ai_chats (user_id, chat_id, conversation_id) VALUES ('ann', 'c-1', :id)"
        " RETURNING chat_id",
        id=conversation["id"],
    )

    await upgrade(fresh_database, "0006")
    threads = await _rows(fresh_database, "SELECT user_id, protocol, thread_id FROM threads")
    assert threads == [{"user_id": "ann", "protocol": PROTOCOL, "thread_id": "c-1"}]
    database = Database(fresh_database, pool_size=1)
    try:
        async with database.unit_of_work() as uow:
            found = await uow.threads.conversation("ann", Thread(PROTOCOL, "c-1"))
            assert found == conversation["id"]
            assert await uow.threads.conversation("ann", Thread("ag-ui", "c-1")) is None
            await uow.threads.add("ann", Thread("ag-ui", "c-1"), "another protocol's")
            await uow.commit()
    finally:
        await database.dispose()

    await downgrade(fresh_database, "0005")
    chats = await _rows(fresh_database, "SELECT user_id, chat_id, conversation_id FROM ai_chats")
    assert chats == [{"user_id": "ann", "chat_id": "c-1", "conversation_id": conversation["id"]}]
    await upgrade(fresh_database)
