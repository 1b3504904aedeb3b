"""The schema, the migrations and the unit of work, against the real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrations import downgrade, head_revision, upgrade
from app.db.models import Base
from app.db.uow import Database
from app.domain import MessageStatus, NewMessage, Role, TaskChanges, TaskFilter, ToolCall, Usage


async def test_migrations_go_up_and_down_and_match_the_models(fresh_database: str) -> None:
    await upgrade(fresh_database)
    engine = create_async_engine(fresh_database)
    try:
        async with engine.connect() as connection:

            def differences(sync_connection: Connection) -> list[Any]:
                context = MigrationContext.configure(sync_connection)
                assert context.get_current_revision() == head_revision()
                return list(compare_metadata(context, Base.metadata))

            assert await connection.run_sync(differences) == []
            indexes = await connection.run_sync(
                lambda c: {
                    i["name"]
                    for t in ("conversations", "messages", "tasks")
                    for i in inspect(c).get_indexes(t)
                }
            )
        assert indexes == {
            "ix_conversations_user_id_updated_at",
            "ix_messages_conversation_id_id",
            "ix_tasks_user_id_completed_id",
        }
        await downgrade(fresh_database, "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await upgrade(fresh_database)
    finally:
        await engine.dispose()


async def test_a_unit_of_work_without_commit_rolls_back(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.unit_of_work() as uow:
            conversation = await uow.conversations.add("uow-user-1", "kept?")
        async with database.unit_of_work() as uow:
            assert await uow.conversations.get("uow-user-1", conversation.id) is None
    finally:
        await database.dispose()


async def test_repositories_round_trip_domain_objects(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.unit_of_work() as uow:
            conversation = await uow.conversations.add("uow-user-2", "Groceries")
            call = ToolCall("call_1", "add_task", {"title": "Milk"}, {"task": {"id": 1}})
            stored = await uow.messages.add(
                NewMessage(
                    conversation.id,
                    Role.ASSISTANT,
                    "Added.",
                    MessageStatus.INCOMPLETE,
                    (call,),
                    Usage(1, 2, 3, 5),
                )
            )
            task = await uow.tasks.add("uow-user-2", "Milk", None)
            await uow.commit()
        async with database.unit_of_work() as uow:
            [message] = await uow.messages.list(conversation.id)
            assert message == stored
            assert message.tool_calls == (call,) and message.usage == Usage(1, 2, 3, 5)
            changed = await uow.tasks.update("uow-user-2", task.id, TaskChanges(completed=True))
            assert changed is not None and changed.completed
            assert await uow.tasks.update("someone-else", task.id, TaskChanges(title="x")) is None
            assert await uow.tasks.list("uow-user-2", TaskFilter.PENDING) == []
            await uow.commit()
    finally:
        await database.dispose()


async def test_the_schema_refuses_unknown_roles_and_statuses(database_url: str) -> None:
    engine = create_async_engine(database_url)
    insert = text(
        "INSERT INTO messages (conversation_id, role, content, status)"
        " VALUES (:conversation_id, :role, 'x', :status)"
    )
    try:
        async with engine.connect() as connection:
            conversation_id = (
                await connection.execute(
                    text(
                        "INSERT INTO conversations (user_id, title) VALUES ('ck', 't') RETURNING id"
                    )
                )
            ).scalar_one()
            for role, status in (("system", "complete"), ("user", "pending")):
                savepoint = await connection.begin_nested()
                with pytest.raises(IntegrityError, match="violates check constraint"):
                    await connection.execute(
                        insert, {"conversation_id": conversation_id, "role": role, "status": status}
                    )
                await savepoint.rollback()
            await connection.rollback()
    finally:
        await engine.dispose()
