"""The schema, the migrations and the unit of work, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.gate import ConnectionWaitTimeout, Priority
from app.db.migrations import downgrade, head_revision, upgrade
from app.db.models import Base
from app.db.outage import is_outage
from app.db.repositories.run_events import EVENTS_CHANNEL, RunEventRepository
from app.db.repositories.tasks import TaskRepository
from app.db.uow import Database
from app.domain import (
    MessageStatus,
    NewMessage,
    Role,
    RunStatus,
    TaskChanges,
    TaskFilter,
    ToolCall,
    Usage,
)
from app.events import Text, encode
from tests.postgres_proxy import DroppingProxy
from tests.support import eventually


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
        run = str(uuid.uuid4())
        async with database.unit_of_work() as uow:
            started = await uow.runs.start_in_new_conversation(
                run, "uow-user-1", "kept?", "hi", "instance"
            )
            assert await uow.conversations.get("uow-user-1", started.conversation_id) is not None
        async with database.unit_of_work() as uow:
            assert await uow.conversations.get("uow-user-1", started.conversation_id) is None
            assert await uow.runs.get("uow-user-1", run) is None
    finally:
        await database.dispose()


async def test_a_single_statement_unit_commits_each_statement_and_then_rolls_nothing_back(
    database_url: str,
) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.single_statement() as uow:
            await uow.runs.start_in_new_conversation(
                str(uuid.uuid4()), "uow-user-3", "Kept without commit", "hi", "instance"
            )
        async with database.unit_of_work() as uow:
            [kept] = await uow.conversations.list("uow-user-3", limit=10)
            await uow.runs.start_in_new_conversation(
                str(uuid.uuid4()), "uow-user-3", "Rolled back", "hi", "instance"
            )
        # The pooled connection is back in a transaction of its own (autocommit was reset).
        async with database.unit_of_work() as uow:
            listed = await uow.conversations.list("uow-user-3", limit=10)
        assert [c.title for c in listed] == [kept.title] == ["Kept without commit"]
    finally:
        await database.dispose()


async def test_a_statement_on_the_driver_commits_on_its_own_and_leaves_no_transaction(
    database_url: str,
) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.driver() as connection:
            task = await TaskRepository(connection).add("uow-user-7", "Kept", None)
        # The same pooled connection: in a transaction that is rolled back, the task is there
        # (committed on its own) and the one added in it is not kept.
        async with database.unit_of_work() as uow:
            await uow.connection.execute(
                text("INSERT INTO tasks (user_id, title) VALUES ('uow-user-7', 'Rolled back')")
            )
        async with database.driver() as connection:
            listed = await TaskRepository(connection).list("uow-user-7", TaskFilter.ALL, limit=10)
            assert not connection.is_in_transaction()
        assert [(t.id, t.title) for t in listed] == [(task.id, "Kept")]
    finally:
        await database.dispose()


async def test_a_driver_connection_that_failed_with_the_database_is_not_pooled_again(
    database_url: str,
) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.driver() as connection:
            first = await connection.fetchval("SELECT pg_backend_pid()")
        async with database.unit_of_work() as uow:  # the same pooled connection
            await uow.connection.execute(text("SELECT 1"))
        terminator = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await terminator.execute("SELECT pg_terminate_backend($1)", first)
        finally:
            await terminator.close()
        # (Whichever error asyncpg raises first: the session's end, or a protocol out of step.)
        with pytest.raises(
            (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError)
        ):
            async with database.driver() as connection:
                await connection.fetchval("SELECT 1")
        # A cancel in the middle of a statement leaves its connection in doubt: closed too.
        async with database.driver() as connection:
            second = await connection.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01), database.driver() as connection:
                await connection.execute("SELECT pg_sleep(30)")
        async with database.driver() as connection:
            third = await connection.fetchval("SELECT pg_backend_pid()")
        assert len({first, second, third}) == 3
    finally:
        await database.dispose()


async def test_a_driver_statement_after_its_session_was_ended_is_an_outage(
    database_url: str,
) -> None:
    """The server ends an idle session (a restart, an administrator): its last message, the
    FATAL error, reaches the pooled connection before the hang-up does. A statement begun in
    between finds the protocol out of step (asyncpg's InternalClientError) on a connection
    that is not yet closed: that is the database going away, waited out and retried, as the
    connection-closed error a moment later is, not a refusal that drops events or a run's end."""
    async with DroppingProxy(database_url) as proxy:
        database = Database(proxy.url, pool_size=1)
        try:
            async with database.driver() as connection:
                pid = await connection.fetchval("SELECT pg_backend_pid()")
            proxy.holds_hangups = True
            terminator = await asyncpg.connect(
                database_url.replace("postgresql+asyncpg", "postgresql")
            )
            try:
                await terminator.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await terminator.close()
            await proxy.hung_up.wait()  # the FATAL error passed on, the hang-up held back
            with pytest.raises(asyncpg.InternalClientError) as raised:
                async with database.driver() as connection:
                    await TaskRepository(connection).add("uow-user-8", "Lost", None)
            assert is_outage(raised.value)
        finally:
            await database.dispose()


async def test_after_the_database_went_away_one_driver_statement_fails_not_one_a_connection(
    database_url: str,
) -> None:
    """A restart ends every pooled session. The first statement to meet it fails (an outage);
    the others already pooled are then not used again, as SQLAlchemy does on a disconnect
    (`Pool._invalidate`): a tool call or an append after it gets a new connection rather
    than failing once for each connection the pool held."""
    plain = database_url.replace("postgresql+asyncpg", "postgresql")
    database = Database(database_url, pool_size=2)
    try:
        async with contextlib.AsyncExitStack() as both:  # two sessions in the pool
            pids = [
                await (await both.enter_async_context(database.driver())).fetchval(
                    "SELECT pg_backend_pid()"
                )
                for _ in range(2)
            ]
        terminator = await asyncpg.connect(plain)
        try:
            await terminator.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids
            )

            async def ended() -> bool:
                sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])"
                left: int = await terminator.fetchval(sql, pids)
                return left == 0

            await eventually(ended, "both sessions ended")
        finally:
            await terminator.close()
        with pytest.raises(Exception) as raised:
            async with database.driver() as connection:
                await connection.fetchval("SELECT 1")
        assert is_outage(raised.value)
        async with database.driver() as connection:
            assert await connection.fetchval("SELECT pg_backend_pid()") not in pids
    finally:
        await database.dispose()


async def test_a_fifth_of_the_pool_is_kept_for_storing_what_runs_did(database_url: str) -> None:
    # The database's own wait (pool_timeout) says "no place came": a new turn that were
    # wrongly let in would get its connection and never raise ConnectionWaitTimeout, however
    # slow the machine, so the outcome does not hang on a timer of the test's (it was
    # `asyncio.wait_for(..., 0.5)`, then a 0.1 s sleep and "not done yet").
    impatient = Database(database_url, pool_size=5, pool_timeout=0.2)
    try:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(4):
                await held.enter_async_context(impatient.unit_of_work())
            # Every connection for ordinary work is taken: a new turn waits, and gives up...
            with pytest.raises(ConnectionWaitTimeout):
                await impatient.unit_of_work().__aenter__()
            with pytest.raises(ConnectionWaitTimeout):
                await impatient.single_statement().__aenter__()
            # ...while the end of a run still gets one at once.
            async with impatient.unit_of_work(Priority.END) as uow:
                assert await uow.runs.count_active("uow-user-5") == 0
    finally:
        await impatient.dispose()


async def test_a_connection_given_back_goes_to_the_work_waiting_for_one(database_url: str) -> None:
    database = Database(database_url, pool_size=5)  # waits up to 30 s
    try:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(4):
                await held.enter_async_context(database.unit_of_work())
            waiting = asyncio.ensure_future(database.single_statement().__aenter__())
            # One turn of the loop, no time: the waiter runs to its place in the gate's queue
            # (it does no I/O before it). Without this, the four would be given back before
            # it ever asked, and it would not wait at all.
            await asyncio.sleep(0)
        # The four given back: the one waiting gets a place, long before its wait ends.
        uow = await waiting
        await uow.__aexit__(None, None, None)
    finally:
        await database.dispose()


async def test_events_are_appended_and_announced_in_one_statement(database_url: str) -> None:
    database = Database(database_url, pool_size=2)
    listener = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(EVENTS_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        run = str(uuid.uuid4())
        async with database.single_statement() as uow:
            await uow.runs.start_in_new_conversation(run, "uow-user-4", "Log", "hi", "instance")
        events = [(run, encode(Text(f"token {n}"), n)) for n in (1, 2, 3)]
        async with database.driver() as connection:
            log = RunEventRepository(connection)
            await log.append_and_notify(events[:2], f"{run}:2", "other:1")
            await log.append_and_notify(events, f"{run}:3")  # 1 and 2 are kept
        assert [await asyncio.wait_for(heard.get(), 5) for _ in range(3)] == [
            f"{run}:2",
            "other:1",
            f"{run}:3",
        ]
        async with database.driver() as connection:
            logged = await RunEventRepository(connection).after(run, 0, limit=10)
        assert logged == [event for _, event in events]
    finally:
        await listener.close()
        await database.dispose()


async def test_a_run_ends_once_with_the_answer_id_reserved_at_its_start(database_url: str) -> None:
    database = Database(database_url, pool_size=2)
    run = str(uuid.uuid4())
    try:
        async with database.single_statement() as uow:
            started = await uow.runs.start_in_new_conversation(
                run, "uow-user-6", "Ends", "hello", "instance"
            )
        assert started.answer_message_id > started.user_message_id
        answer = NewMessage(started.conversation_id, Role.ASSISTANT, "Hi!", usage=Usage(1, 2, 3, 4))
        final = encode(Text("(final)"), 3)
        async with database.single_statement() as uow:
            assert (
                await uow.runs.end(
                    run, RunStatus.COMPLETE, answer, started.answer_message_id, final
                )
                == final
            )
        # Ended already (say another instance closed it): nothing more is stored, and the
        # answer is the final event stored first.
        late = NewMessage(started.conversation_id, Role.ASSISTANT, "late", MessageStatus.ERROR)
        later = encode(Text("late"), 4)
        async with database.single_statement() as uow:
            assert (
                await uow.runs.end(run, RunStatus.ERROR, late, started.answer_message_id + 1, later)
                == final
            )
        async with database.unit_of_work() as uow:
            stored = await uow.runs.get("uow-user-6", run)
            messages = await uow.messages.list(started.conversation_id, limit=10)
            state = await uow.runs.state(run, final_kept_seconds=3600)
            forgotten = await uow.runs.state(run, final_kept_seconds=0)
        assert stored is not None and stored.status is RunStatus.COMPLETE
        assert stored.assistant_message_id == started.answer_message_id and stored.last_seq == 3
        assert [(m.id, m.role, m.content) for m in messages] == [
            (started.user_message_id, Role.USER, "hello"),
            (started.answer_message_id, Role.ASSISTANT, "Hi!"),
        ]
        assert messages[1].usage == Usage(1, 2, 3, 4)
        assert state == (RunStatus.COMPLETE, final, 3)
        assert forgotten == (RunStatus.COMPLETE, None, 3), "kept no longer than its events"
    finally:
        await database.dispose()


async def test_repositories_round_trip_domain_objects(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    run = str(uuid.uuid4())
    try:
        async with database.unit_of_work() as uow:
            started = await uow.runs.start_in_new_conversation(
                run, "uow-user-2", "Groceries", "add milk", "instance"
            )
            call = ToolCall("call_1", "add_task", {"title": "Milk"}, {"task": {"id": 1}})
            answer = NewMessage(
                started.conversation_id,
                Role.ASSISTANT,
                "Added.",
                MessageStatus.INCOMPLETE,
                (call,),
                Usage(1, 2, 3, 5),
            )
            final = encode(Text("(final)"), 1)
            assert (
                await uow.runs.end(
                    run, RunStatus.INCOMPLETE, answer, started.answer_message_id, final
                )
                == final
            )
            await uow.commit()
        async with database.driver() as connection:
            tasks = TaskRepository(connection)
            task = await tasks.add("uow-user-2", "Milk", None)
        async with database.unit_of_work() as uow:
            [asked, message] = await uow.messages.list(started.conversation_id, limit=10)
            assert (asked.role, asked.content) == (Role.USER, "add milk")
            assert (message.id, message.role, message.content, message.status) == (
                started.answer_message_id,
                Role.ASSISTANT,
                "Added.",
                MessageStatus.INCOMPLETE,
            )
            assert message.tool_calls == (call,) and message.usage == Usage(1, 2, 3, 5)
        async with database.driver() as connection:
            tasks = TaskRepository(connection)
            changed = await tasks.update("uow-user-2", task.id, TaskChanges(completed=True))
            assert changed is not None and changed.completed and changed.title == "Milk"
            assert changed.updated_at >= changed.created_at
            assert await tasks.update("someone-else", task.id, TaskChanges(title="x")) is None
            assert await tasks.list("uow-user-2", TaskFilter.PENDING, limit=10) == []
            assert await tasks.list("uow-user-2", TaskFilter.COMPLETED, limit=10) == [changed]
            assert await tasks.delete("someone-else", task.id) is None
            assert await tasks.delete("uow-user-2", task.id) == changed
            assert await tasks.list("uow-user-2", TaskFilter.ALL, limit=10) == []
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
