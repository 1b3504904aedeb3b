"""What a client's own ids reach, over real HTTP: an AI SDK chat id and an idempotency key name
something of their user's alone, and a key names one request (its message and conversation);
on /ai/chat a client's Idempotency-Key header is the key, not the one derived from the body.
Each test here failed with the check it pins taken out of the code, once."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from app.main import create_app
from app.settings import Settings
from tests.e2e.test_ai_sdk import _user_message
from tests.e2e.test_idempotency import _send
from tests.e2e.test_runs import _Pausing
from tests.support import PlainSql, User, serve


async def _ai_chat(user: User, body: dict[str, Any], key: str | None = None) -> list[Any]:
    """POST /ai/chat: the stream's chunks as JSON (the closing "[DONE]" left out)."""
    headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
    chunks: list[Any] = []
    async with user.client.stream(
        "POST", user.url("/ai/chat"), json=body, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


def _finish(chunks: list[Any]) -> dict[str, Any]:
    [finish] = [chunk for chunk in chunks if chunk["type"] == "finish"]
    return dict(finish)


async def _messages(user: User) -> list[list[tuple[str, str]]]:
    """Each of the user's conversations, as (role, content) of its messages."""
    conversations = (await user.get("/conversations")).json()["conversations"]
    found = []
    for conversation in conversations:
        page = (await user.get(f"/conversations/{conversation['id']}/messages")).json()
        found.append([(m["role"], m["content"]) for m in page["messages"]])
    return found


async def test_another_users_chat_id_reaches_nothing_of_the_first_users(
    settings: Settings, db: PlainSql
) -> None:
    """B resuming, cancelling and sending to the chat id A's run is going in: B finds no run,
    stops nothing, and its send starts B's own conversation (not A's, nor A's 409)."""
    model = _Pausing({"add buy milk": (2,)})
    async with serve(create_app(settings, model=model), settings) as live:
        a, b = live.user("a"), live.user("b")
        chat = f"chat-{uuid.uuid4().hex[:8]}"
        first = asyncio.create_task(
            _ai_chat(a, {"id": chat, "messages": [_user_message("add buy milk")]})
        )
        await model.reached["add buy milk", 2].wait()
        # Its status alone: were it A's run, its stream would last as long as A's run is held.
        async with b.client.stream("GET", b.url(f"/ai/chat/{chat}/stream"), headers=b.headers) as r:
            resumed = r.status_code
        cancelled = await b.post(f"/ai/chat/{chat}/cancel")
        assert (resumed, cancelled.status_code) == (204, 204), "B reached A's run"
        own = await _ai_chat(b, {"id": chat, "messages": [_user_message("add buy bread")]})
        model.go_on["add buy milk", 2].set()
        a_chunks = await first
        await live.registry.wait_idle()
        a_messages, b_messages = await _messages(a), await _messages(b)
        a_tasks = [t["title"] for t in (await a.get("/tasks")).json()["tasks"]]
        b_tasks = [t["title"] for t in (await b.get("/tasks")).json()["tasks"]]
    assert _finish(a_chunks)["messageMetadata"]["status"] == "complete", "A's run went on"
    assert _finish(own)["messageMetadata"]["status"] == "complete"
    assert own[0]["messageId"] != a_chunks[0]["messageId"]
    assert [[role for role, _ in conversation] for conversation in a_messages] == [
        ["user", "assistant"]
    ]
    assert a_messages[0][0] == ("user", "add buy milk")
    assert [conversation[0] for conversation in b_messages] == [("user", "add buy bread")]
    assert (a_tasks, b_tasks) == (["Buy milk"], ["Buy bread"])
    threads = await db.rows(
        "SELECT user_id, conversation_id FROM threads WHERE thread_id = :chat ORDER BY user_id",
        chat=chat,
    )
    assert [row["user_id"] for row in threads] == sorted([a.id, b.id])
    assert threads[0]["conversation_id"] != threads[1]["conversation_id"]


async def test_an_idempotency_key_is_its_users_alone(settings: Settings, db: PlainSql) -> None:
    """B sending A's key with A's message starts B's own run, in B's own conversation."""
    async with serve(create_app(settings), settings) as live:
        a, b = live.user("a"), live.user("b")
        key = str(uuid.uuid4())
        a_status, a_events = await _send(a, key, "add buy milk")
        b_status, b_events = await _send(b, key, "add buy milk")
        await live.registry.wait_idle()
        b_tasks = [t["title"] for t in (await b.get("/tasks")).json()["tasks"]]
        a_tasks = [t["title"] for t in (await a.get("/tasks")).json()["tasks"]]
    assert (a_status, b_status) == (200, 200)
    assert b_events[0]["run_id"] != a_events[0]["run_id"]
    assert b_events[0]["conversation_id"] != a_events[0]["conversation_id"]
    assert (a_events[-1]["type"], b_events[-1]["type"]) == ("done", "done")
    assert (a_tasks, b_tasks) == (["Buy milk"], ["Buy milk"]), "each user's tool ran"
    runs = await db.rows(
        "SELECT user_id FROM runs WHERE idempotency_key = :key ORDER BY user_id", key=key
    )
    assert [row["user_id"] for row in runs] == sorted([a.id, b.id])


async def test_a_key_sent_again_to_another_conversation_is_refused(
    settings: Settings, db: PlainSql
) -> None:
    """The same key and the same message, but another conversation: another request (422
    `idempotency_key_reused`), neither a replay of the first run nor a new one."""
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        key = str(uuid.uuid4())
        _, first = await _send(user, key, "add buy milk")
        _, other = await _send(user, str(uuid.uuid4()), "hello")
        elsewhere = await _send(
            user, key, "add buy milk", conversation_id=other[0]["conversation_id"]
        )
        again = await _send(user, key, "add buy milk")  # the same request: a replay
        await live.registry.wait_idle()
    status, body = elsewhere
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
    assert again == (200, first)
    runs = await db.rows("SELECT count(*) AS n FROM runs WHERE user_id = :u", u=user.id)
    assert runs == [{"n": 2}]


async def test_on_ai_chat_the_idempotency_key_header_wins_over_the_bodys_key(
    settings: Settings, db: PlainSql
) -> None:
    """The body's own key is its chat and message id; a header names another key, and then the
    header decides: the same body with a new header is a new run, another body with the first
    header replays the first run."""
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        chat = f"chat-{uuid.uuid4().hex[:8]}"
        body = {"id": chat, "messages": [_user_message("add buy milk")]}
        first = await _ai_chat(user, body, key="key-one")
        await live.registry.wait_idle()
        new_key = await _ai_chat(user, body, key="key-two")
        await live.registry.wait_idle()
        other_body = {"id": chat, "messages": [_user_message("add buy milk")]}
        same_key = await _ai_chat(user, other_body, key="key-one")
        await live.registry.wait_idle()
    assert new_key[0]["messageId"] != first[0]["messageId"], "the header's new key: a new run"
    assert same_key == first, "the header's first key: the first run, replayed"
    runs = await db.rows(
        "SELECT idempotency_key FROM runs WHERE user_id = :u ORDER BY created_at", u=user.id
    )
    assert [row["idempotency_key"] for row in runs] == ["key-one", "key-two"]
