"""One run at a time in a conversation, when two starts race: made deterministic by holding a
real lock, or a real uncommitted row, through the test's own connection to PostgreSQL, and
letting go once the database says the service is waiting on it.

What this found: two instances of this release never reach the IntegrityError that
`ChatService.begin` turns into 409. Each start takes the user's advisory lock first and checks
the conversation after it, so the second start waits for the first to commit and then sees its
run: a plain `RunActive`. The unique index `uq_runs_conversation_id_active` (`ACTIVE_RUN_INDEX`)
is what guarantees one run per conversation whatever the lock; its 409 is reached when the
other start does not share our lock. That happened for real: the release before 74c54ef locked
`hashtext('todo_chat_user:' || user)` with one key, this one locks (USER_LOCK_CLASS,
hashtext(user)) with two, and the two never meet, so during that rolling deploy an old instance
and a new one ran side by side unserialized. The second test is that writer, through the test's
connection, holding its insert open until the service's own insert waits on it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from agents.items import TResponseStreamEvent
from openai.types.responses import ResponseTextDeltaEvent
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.agent.offline import OfflineModel
from app.db.repositories.runs import USER_LOCK_CLASS
from app.main import create_app
from app.settings import Settings
from tests.support import LiveServer, PlainSql, User, eventually, serve

RACING = "hello there"


class _Held(OfflineModel):
    """The offline model, holding every answer to `RACING` before its first text until
    `release`: the run that won stays active however fast the machine, so the loser's check
    cannot find the conversation idle again."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        racing = RACING in json.dumps(args[1], default=str)
        async for event in super().stream_response(*args, **kwargs):
            if racing and isinstance(event, ResponseTextDeltaEvent):
                await self.release.wait()
            yield event


async def _start(user: User, conversation_id: int) -> tuple[int, dict[str, Any]]:
    """POST the racing message: the status, and the first event or the error's body. Hanging
    up after the first event leaves the run going (the server owns it)."""
    body = {"message": RACING, "conversation_id": conversation_id}
    async with user.client.stream(
        "POST", user.url("/chat/stream"), json=body, headers=user.headers
    ) as response:
        if response.status_code != 200:
            return response.status_code, json.loads(await response.aread())
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                return 200, json.loads(line[6:])
    raise AssertionError("a 200 without an event")


async def _conversation(live: LiveServer, user: User) -> int:
    """A conversation with one finished turn in it."""
    events = await user.chat("show my tasks")
    assert events[-1]["type"] == "done"
    await live.registry.wait_idle()
    conversation_id: int = events[0]["conversation_id"]
    return conversation_id


async def _blocked_by(db: PlainSql, connection: AsyncConnection, count: int) -> None:
    """Wait until `count` sessions wait on a lock held by `connection`'s session."""
    pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()

    async def waiting() -> bool:
        rows = await db.rows(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))",
            pid=pid,
        )
        return bool(rows[0]["n"] == count)

    await eventually(waiting, f"{count} service session(s) waiting on the test's lock")


async def _user_messages(db: PlainSql, conversation_id: int) -> list[str]:
    rows = await db.rows(
        "SELECT content FROM messages WHERE conversation_id = :id AND role = 'user' ORDER BY id",
        id=conversation_id,
    )
    return [row["content"] for row in rows]


async def test_two_instances_starting_at_once_give_one_run_and_one_409(
    settings: Settings, db: PlainSql
) -> None:
    """Both starts wait on the user's lock, held by the test; let go, one wins, the other
    finds the winner's run. (Remove `lock_user` from `begin` and they never wait: this fails.)"""
    model = _Held()
    async with (
        serve(create_app(settings, model=model), settings) as a,
        serve(create_app(settings, model=model), settings) as b,
    ):
        on_a = a.user()
        on_b = User(on_a.id, on_a.token, b.client)
        conversation_id = await _conversation(a, on_a)
        async with db.engine.connect() as holder:
            await holder.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(:user))"),
                {"cls": USER_LOCK_CLASS, "user": on_a.id},
            )
            racing = [
                asyncio.create_task(_start(on_a, conversation_id)),
                asyncio.create_task(_start(on_b, conversation_id)),
            ]
            await _blocked_by(db, holder, 2)
            await holder.commit()  # the lock goes; the two starts go on, one after the other
        results = sorted(await asyncio.gather(*racing), key=lambda result: result[0])
        model.release.set()
        await a.registry.wait_idle()
        await b.registry.wait_idle()

    (won, start), (lost, refusal) = results
    assert (won, start["type"]) == (200, "start")
    assert lost == 409, refusal
    assert refusal["error"]["code"] == "run_active"
    assert refusal["error"]["run_id"] == start["run_id"]
    assert await _user_messages(db, conversation_id) == ["show my tasks", RACING]


async def test_a_run_inserted_meanwhile_without_our_lock_is_a_409_from_the_unique_index(
    settings: Settings, db: PlainSql
) -> None:
    """Instance b, as the release before 74c54ef would have it (its lock is not ours), has
    inserted a run in the conversation and not yet committed. a's start takes its own lock at
    once, finds the conversation idle (the run is not committed), inserts its run and waits on
    the index for b's transaction; b commits: unique violation on ACTIVE_RUN_INDEX, which a
    answers 409 with b's run, storing nothing. (Without the `except IntegrityError` branch in
    `begin`, this is a 500: the test fails.)"""
    async with (
        serve(create_app(settings), settings) as a,
        serve(create_app(settings), settings) as b,
    ):
        user = a.user()
        conversation_id = await _conversation(a, user)
        theirs = str(uuid.uuid4())
        async with db.engine.connect() as old_release:
            await old_release.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('todo_chat_user:' || :user))"),
                {"user": user.id},
            )
            message_id = (
                await old_release.execute(
                    text(
                        "INSERT INTO messages (conversation_id, role, content, status, tool_calls)"
                        " VALUES (:conversation, 'user', 'from an old instance', 'complete', '[]')"
                        " RETURNING id"
                    ),
                    {"conversation": conversation_id},
                )
            ).scalar_one()
            await old_release.execute(
                text(
                    "INSERT INTO runs (id, user_id, conversation_id, user_message_id, instance_id)"
                    " VALUES (:id, :user, :conversation, :message, :instance)"
                ),
                {
                    "id": theirs,
                    "user": user.id,
                    "conversation": conversation_id,
                    "message": message_id,
                    "instance": b.registry.instance_id,  # alive: no recovery closes it
                },
            )
            starting = asyncio.create_task(_start(user, conversation_id))
            await _blocked_by(db, old_release, 1)  # a's insert waits on the index
            await old_release.commit()
        status, refusal = await starting
        await db.execute(
            "UPDATE runs SET status = 'cancelled', finished_at = now() WHERE id = :id", id=theirs
        )
        await a.registry.wait_idle()

    assert status == 409, refusal
    assert refusal["error"]["code"] == "run_active"
    assert refusal["error"]["run_id"] == theirs
    assert await _user_messages(db, conversation_id) == ["show my tasks", "from an old instance"]
