"""A send that is refused stores nothing: no conversation, no thread naming one, no message.

A client's thread (the AI SDK's chat id) is given its conversation in the transaction that
starts the run, under the user's lock, so whatever refuses the send rolls the conversation back
with it: the run limit (429), a run going in the chat (409), an idempotency key sent before with
another request (422), a server that is stopping (503), an error from the database itself.
These send as the AI SDK's transport does (its body, by POST); tests/e2e/test_ai_sdk.py runs the
`ai` package itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.e2e.test_one_run_per_conversation import _blocked_by
from tests.e2e.test_runs import _Pausing
from tests.support import LiveServer, PlainSql, User, serve

HELD = "add buy milk"


def _body(chat_id: str, message: str) -> dict[str, Any]:
    last = {
        "id": uuid.uuid4().hex[:16],
        "role": "user",
        "parts": [{"type": "text", "text": message}],
    }
    return {"id": chat_id, "messages": [last]}


async def _send(
    user: User, chat_id: str, message: str, key: str | None = None
) -> tuple[int, dict[str, Any] | None]:
    """POST /ai/chat: the status, and the error's body (None for a stream, read to its end)."""
    headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
    async with user.client.stream(
        "POST", user.url("/ai/chat"), json=_body(chat_id, message), headers=headers
    ) as response:
        await response.aread()
        return response.status_code, None if response.status_code == 200 else response.json()


async def _stored(db: PlainSql, user: User) -> tuple[list[str], list[str], int]:
    """The user's conversations (titles), threads (ids) and messages, as stored."""
    conversations = await db.rows(
        "SELECT title FROM conversations WHERE user_id = :user ORDER BY id", user=user.id
    )
    threads = await db.rows(
        "SELECT thread_id FROM threads WHERE user_id = :user ORDER BY thread_id", user=user.id
    )
    messages = await db.rows(
        "SELECT count(*) AS n FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE c.user_id = :user",
        user=user.id,
    )
    return (
        [row["title"] for row in conversations],
        [row["thread_id"] for row in threads],
        messages[0]["n"],
    )


@asynccontextmanager
async def _one_run_held(settings: Settings) -> AsyncIterator[tuple[LiveServer, User]]:
    """A service that takes one run per user at a time, and a user whose run in chat `held`
    the model holds mid-answer until the block ends."""
    model = _Pausing({HELD: (0,)})
    limited = with_settings(settings, max_active_runs=1)
    async with serve(create_app(limited, model=model), limited) as live:
        user = live.user()
        held = asyncio.create_task(_send(user, "held", HELD))
        await model.reached[HELD, 0].wait()
        try:
            yield live, user
        finally:
            model.go_on[HELD, 0].set()
            assert (await held)[0] == 200
            await live.registry.wait_idle()


@pytest.mark.parametrize(
    ("chat_id", "refused"),
    [("new-chat", (429, "too_many_runs")), ("held", (409, "run_active"))],
    ids=["the run limit, to a new chat", "a run going in the chat"],
)
async def test_a_send_refused_while_a_run_is_going_stores_nothing(
    settings: Settings, db: PlainSql, chat_id: str, refused: tuple[int, str]
) -> None:
    async with _one_run_held(settings) as (_, user):
        before = await _stored(db, user)
        status, body = await _send(user, chat_id, "add pay rent")
        assert (status, body and body["error"]["code"]) == refused
        assert await _stored(db, user) == before
        listed = (await user.get("/conversations")).json()["conversations"]
    assert [c["title"] for c in listed] == [HELD], "no conversation titled with the refused send"


async def test_a_key_sent_before_with_another_chat_stores_nothing(
    server: LiveServer, db: PlainSql
) -> None:
    user = server.user()
    assert (await _send(user, "first", "show my tasks", key="key-1"))[0] == 200
    await server.registry.wait_idle()
    before = await _stored(db, user)
    status, body = await _send(user, "second", "show my tasks", key="key-1")
    assert (status, body and body["error"]["code"]) == (422, "idempotency_key_reused")
    assert await _stored(db, user) == before == (["show my tasks"], ["first"], 2)


async def test_a_send_while_the_server_stops_stores_nothing(
    settings: Settings, db: PlainSql
) -> None:
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        live.registry.begin_shutdown()
        status, body = await _send(user, "late-chat", "add pay rent")
    assert (status, body and body["error"]["code"]) == (503, "shutting_down")
    assert await _stored(db, user) == ([], [], 0)


async def test_a_send_the_database_fails_stores_no_conversation(
    server: LiveServer, db: PlainSql
) -> None:
    """The run's insert fails after the thread's conversation was inserted: a writer that does
    not take our lock (as an older release would) holds an uncommitted run with the same
    idempotency key, the service's insert waits on it, and fails once it commits."""
    user = server.user()
    async with db.engine.connect() as writer:
        await writer.execute(
            text("""
            WITH conversation AS (
                INSERT INTO conversations (user_id, title) VALUES (:user, 'elsewhere')
                RETURNING id
            ), message AS (
                INSERT INTO messages (conversation_id, role, content, status, tool_calls)
                SELECT id, 'user', 'hi', 'complete', '[]' FROM conversation
                RETURNING id, conversation_id
            )
            INSERT INTO runs (id, user_id, conversation_id, user_message_id, instance_id,
                status, idempotency_key, request_digest)
            SELECT gen_random_uuid(), :user, conversation_id, id, 'elsewhere',
                'complete', 'key-raced', 'another request'
            FROM message
            """),
            {"user": user.id},
        )
        sending = asyncio.create_task(_send(user, "raced-chat", "add pay rent", key="key-raced"))
        await _blocked_by(db, writer, 1)
        await writer.commit()
    status, body = await sending
    assert (status, body and body["error"]["code"]) == (500, "internal_error")
    assert await _stored(db, user) == (["elsewhere"], [], 1)
