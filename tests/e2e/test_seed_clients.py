"""The seed's own JavaScript reading loops (`useChat`, `StreamingMessage`), run by Node against
the live service: the clients this wire format was made for, unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import LiveServer, PlainSql, User, run_node


async def _run(
    mode: str, server: LiveServer, user: User, *args: str, path: str = "chat/stream"
) -> dict[str, Any]:
    base_url = str(server.client.base_url).rstrip("/")
    return await run_node(
        "seed_clients.mjs",
        mode,
        base_url,
        user.id,
        user.token,
        *args,
        env={"CHAT_PATH": path},
    )


async def test_use_chat_reads_a_whole_turn_and_keeps_the_conversation(
    server: LiveServer, db: PlainSql
) -> None:
    user = server.user()
    first = await _run("useChat", server, user, "add buy milk")
    assert first["ended"] == "done" and first["parseErrors"] == 0
    assert first["types"][:4] == ["start", "thinking", "tool_call", "tool_result"]
    assert first["types"][-1] == "done", "nothing after the final event, and the stream closes"
    assert first["content"].startswith('Added "Buy milk" to your list as task #')

    second = await _run("useChat", server, user, "show my tasks", str(first["conversationId"]))
    assert second["conversationId"] == first["conversationId"]
    assert second["content"].startswith("You have 1 task:")
    stored = await db.rows(
        "SELECT content FROM messages WHERE conversation_id = :id AND role = 'assistant'"
        " ORDER BY id",
        id=first["conversationId"],
    )
    assert [row["content"] for row in stored] == [first["content"], second["content"]]


@pytest.mark.parametrize("path", ["chat/stream", "chat/stream-tools"])
async def test_streaming_message_shows_tool_calls_and_completes(
    server: LiveServer, path: str
) -> None:
    user = server.user()
    await user.post("/tasks", json={"title": "Call mom"})
    state = await _run("StreamingMessage", server, user, "done with call mom", path=path)
    assert state["parseErrors"] == 0 and state["error"] is None
    assert state["toolCalls"] == ["list_tasks", "complete_task"]
    assert state["text"].startswith('Marked "Call mom"')
    assert state["completed"] == {"text": state["text"], "conversationId": state["conversationId"]}
