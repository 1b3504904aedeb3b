"""Whole chat turns over HTTP with the offline model, read by both kinds of SSE client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import LiveServer, PlainSql, User, read_raw, seed_parse, text_of, types_of

READERS = ["seed", "httpx-sse"]


async def _task_titles(user: User, status: str = "all") -> list[str]:
    response = await user.get("/tasks", params={"status": status})
    return [task["title"] for task in response.json()["tasks"]]


@pytest.mark.parametrize("reader", READERS)
async def test_add_turn_streams_every_event_and_stores_everything(
    server: LiveServer, db: PlainSql, reader: str
) -> None:
    user = server.user()
    events = await user.chat("Add buy milk", reader=reader)

    assert types_of(events) == ["start", "thinking", "tool_call", "tool_result", "text", "done"]
    start, done = events[0], events[-1]
    conversation_id = start["conversation_id"]
    assert done["conversation_id"] == conversation_id
    tool_call = next(event for event in events if event["type"] == "tool_call")
    tool_result = next(event for event in events if event["type"] == "tool_result")
    assert tool_call["name"] == "add_task"
    assert tool_call["arguments"] == {"title": "Buy milk"}
    assert tool_result["call_id"] == tool_call["call_id"]
    assert tool_result["name"] == "add_task"
    task = tool_result["output"]["task"]
    assert task["title"] == "Buy milk" and task["completed"] is False
    answer = text_of(events)
    assert answer == f'Added "Buy milk" to your list as task #{task["id"]}.'
    assert len([event for event in events if event["type"] == "text"]) > 3, "not token by token"
    assert done["usage"]["requests"] == 2 and done["usage"]["output_tokens"] > 0

    messages = await db.rows(
        "SELECT id, role, content, status, tool_calls, usage FROM messages"
        " WHERE conversation_id = :id ORDER BY id",
        id=conversation_id,
    )
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[0]["id"] == start["message_id"]
    assert messages[0]["content"] == "Add buy milk"
    assert messages[1]["id"] == done["message_id"]
    assert messages[1]["content"] == answer
    assert messages[1]["tool_calls"] == [
        {
            "call_id": tool_call["call_id"],
            "name": "add_task",
            "arguments": {"title": "Buy milk"},
            "output": tool_result["output"],
        }
    ]
    assert messages[1]["usage"] == done["usage"]
    tasks = await db.rows("SELECT title, completed FROM tasks WHERE user_id = :u", u=user.id)
    assert tasks == [{"title": "Buy milk", "completed": False}]
    conversations = await db.rows(
        "SELECT user_id, title FROM conversations WHERE id = :id", id=conversation_id
    )
    assert conversations == [{"user_id": user.id, "title": "Add buy milk"}]


@pytest.mark.parametrize("reader", READERS)
async def test_list_complete_update_delete_turns(server: LiveServer, reader: str) -> None:
    user = server.user()
    for title in ("Buy milk", "Call mom", "Water the plants"):
        assert (await user.post("/tasks", json={"title": title})).status_code == 201

    listing = await user.chat("What's left?", reader=reader)
    call = next(event for event in listing if event["type"] == "tool_call")
    assert (call["name"], call["arguments"]) == ("list_tasks", {"status": "pending"})
    assert "You have 3 pending tasks" in text_of(listing)
    assert all(title in text_of(listing) for title in ("Buy milk", "Call mom", "Water the plants"))

    conversation_id = listing[0]["conversation_id"]
    completed = await user.chat("done with the milk", conversation_id, reader=reader)
    names = [event["name"] for event in completed if event["type"] == "tool_call"]
    assert names == ["list_tasks", "complete_task"]
    assert completed[0]["conversation_id"] == conversation_id
    assert text_of(completed).startswith('Marked "Buy milk"')
    assert await _task_titles(user, "completed") == ["Buy milk"]

    tasks = (await user.get("/tasks")).json()["tasks"]
    mom = next(task for task in tasks if task["title"] == "Call mom")
    renamed = await user.chat(f"rename task {mom['id']} to Call mum tonight", reader=reader)
    call = next(event for event in renamed if event["type"] == "tool_call")
    assert call["name"] == "update_task"
    assert call["arguments"]["task_id"] == mom["id"]
    assert call["arguments"]["title"] == "Call mum tonight"
    assert await _task_titles(user, "pending") == ["Call mum tonight", "Water the plants"]

    deleted = await user.chat("remove water the plants from my list", reader=reader)
    assert [e["name"] for e in deleted if e["type"] == "tool_call"] == ["list_tasks", "delete_task"]
    assert text_of(deleted).startswith('Deleted "Water the plants"')
    assert await _task_titles(user) == ["Buy milk", "Call mum tonight"]

    shown = await user.chat("show my tasks", reader=reader)
    assert text_of(shown) == "\n".join(
        [
            "You have 2 tasks:",
            f"- #{tasks[0]['id']} Buy milk (done)",
            f"- #{mom['id']} Call mum tonight",
        ]
    )


async def test_a_request_it_does_not_understand_gets_help_without_tools(
    server: LiveServer,
) -> None:
    events = await server.user().chat("What is the capital of France?")
    assert types_of(events) == ["start", "text", "done"]
    assert "add buy milk" in text_of(events)


async def test_an_unknown_task_is_answered_not_crashed(server: LiveServer, db: PlainSql) -> None:
    user = server.user()
    events = await user.chat("complete task 987654321")
    result = next(event for event in events if event["type"] == "tool_result")
    assert result["output"]["error"] == "not_found"
    assert "couldn't find task #987654321" in text_of(events)
    assert events[-1]["type"] == "done"


async def test_the_wire_format_is_an_id_block_then_one_data_line_per_event(
    server: LiveServer,
) -> None:
    user = server.user()
    raw = "".join(
        await read_raw(
            server.client, user.url("/chat/stream"), {"message": "add eggs"}, user.headers
        )
    )
    assert "\r" not in raw
    assert raw.endswith("\n\n")
    blocks = [block for block in raw[:-2].split("\n\n") if not block.startswith(":")]
    for block in blocks:
        assert "\n" not in block, f"a block spans several lines: {block!r}"
    ids, datas = blocks[0::2], blocks[1::2]
    assert len(ids) == len(datas)
    events = [json.loads(data.removeprefix("data: ")) for data in datas]
    run_id = events[0]["run_id"]
    assert ids == [f"id: {run_id}:{n}" for n in range(1, len(events) + 1)]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert all(data.startswith("data: {") for data in datas)
    assert seed_parse([raw]) == events


async def test_history_reaches_the_conversation_and_conversations_are_listed(
    server: LiveServer,
) -> None:
    user = server.user()
    first = await user.chat("add buy milk")
    conversation_id = first[0]["conversation_id"]
    await user.chat("show my tasks", conversation_id)
    second = await user.chat("hello")

    listed = (await user.get("/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [second[0]["conversation_id"], conversation_id]
    history = (await user.get(f"/conversations/{conversation_id}/messages")).json()
    assert [(m["role"], m["content"][:12]) for m in history["messages"]] == [
        ("user", "add buy milk"),
        ("assistant", 'Added "Buy m'),
        ("user", "show my task"),
        ("assistant", "You have 1 t"),
    ]
    assert history["conversation"]["title"] == "add buy milk"


async def test_non_streaming_chat_answers_with_one_json_object(
    server: LiveServer, db: PlainSql
) -> None:
    user = server.user()
    response = await user.post("/chat", json={"message": "remind me to book flights"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["response"].startswith('Added "Book flights"')
    assert [call["name"] for call in body["tool_calls"]] == ["add_task"]
    assert body["tool_calls"][0]["output"]["task"]["title"] == "Book flights"
    stored = await db.rows(
        "SELECT role, content FROM messages WHERE id = :id", id=body["message_id"]
    )
    assert stored == [{"role": "assistant", "content": body["response"]}]
