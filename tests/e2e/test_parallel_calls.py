"""Several tool calls in one model response (parallel tool calls), end to end over real HTTP:
the SDK runs them concurrently against one user's tasks, our stream carries each call and its
result under one call id, in both SSE framings, and the transcript stores them.

The offline model makes them as real models do (one response, several function calls); a
scripted model aims several at one task at once, where a race would show. The AI SDK's view of
the same turn is in test_ai_sdk.py.

AG-UI does not exist here yet. Its end-to-end test of this path must check, over real HTTP and
with a real AG-UI client: ten tasks in one message give one step (one pair of STEP_STARTED and
STEP_FINISHED around the ten calls, if steps are sent) with ten TOOL_CALL_START/ARGS/END
sequences, each with its own toolCallId, and ten TOOL_CALL_RESULT events each naming the
toolCallId of its call and holding that call's task (title equal to the call's argument), all
ten calls before the first result; then the reply's TEXT_MESSAGE_* events and RUN_FINISHED; the
ids distinct; replaying the run gives the same events; and it must fail when two calls' events
are swapped or a result names another call's id.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from httpx_sse import aconnect_sse

from app.main import create_app
from app.settings import Settings
from tests.support import LiveServer, PlainSql, User, read_raw, seed_parse, serve, text_of

TEN = ["Eggs", "Bread", "Butter", "Cheese", "Apples", "Bananas", "Rice", "Pasta", "Coffee", "Tea"]
TEN_TASKS = "add " + ", ".join(title.lower() for title in TEN[:-1]) + " and tea"

Event = dict[str, Any]


async def _standard(user: User, message: str) -> tuple[list[Event], list[str]]:
    """A turn read as `Accept: text/event-stream` clients read it: the events and their ids."""
    events: list[Event] = []
    ids: list[str] = []
    body = {"message": message}
    async with aconnect_sse(
        user.client, "POST", user.url("/chat/stream"), json=body, headers=user.headers
    ) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for event in source.aiter_sse():
            if event.data:
                events.append(json.loads(event.data))
                ids.append(event.id)
    return events, ids


async def _seed(user: User, message: str) -> tuple[list[Event], list[str]]:
    """The same turn read as the seed's `fetch` readers read it (the seed framing)."""
    raw = await read_raw(user.client, user.url("/chat/stream"), {"message": message}, user.headers)
    blocks = "".join(raw).split("\n\n")
    ids = [block[4:] for block in blocks if block.startswith("id: ")]
    return seed_parse(raw), ids


def assert_calls_paired(events: list[Event]) -> list[tuple[Event, Event]]:
    """Every tool call has a distinct id and exactly one result, under that id and the call's
    name, after the call; the calls and results of one response are in the same order."""
    calls = [event for event in events if event["type"] == "tool_call"]
    results = [event for event in events if event["type"] == "tool_result"]
    ids = [call["call_id"] for call in calls]
    assert len(set(ids)) == len(ids), f"call ids repeat: {ids}"
    assert [result["call_id"] for result in results] == ids
    position = {id(event): index for index, event in enumerate(events)}
    pairs = list(zip(calls, results, strict=True))
    for call, result in pairs:
        assert result["name"] == call["name"]
        assert position[id(call)] < position[id(result)]
    return pairs


def assert_ten_in_one_step(events: list[Event]) -> None:
    types = [event["type"] for event in events]
    text_at = types.index("text")
    assert types[:2] == ["start", "thinking"]
    assert types[2:text_at] == ["tool_call"] * 10 + ["tool_result"] * 10, types
    assert set(types[text_at:-1]) == {"text"} and types[-1] == "done"
    for call, result in assert_calls_paired(events):
        assert call["name"] == "add_task"
        assert result["output"]["task"]["title"] == call["arguments"]["title"]
    assert [call["arguments"]["title"] for call in events[2:12]] == TEN
    # One model response made the ten calls, one more wrote the reply.
    assert events[-1]["usage"]["requests"] == 2
    assert text_of(events).startswith('Added "Eggs" (#')
    assert text_of(events).endswith(" to your list.")


def assert_ids_follow_seq(events: list[Event], ids: list[str]) -> None:
    run_id = events[0]["run_id"]
    assert ids == [f"{run_id}:{event['seq']}" for event in events]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("read", [_standard, _seed], ids=["standard", "seed"])
async def test_ten_tasks_in_one_message_are_one_model_step(
    server: LiveServer, db: PlainSql, read: Any
) -> None:
    user = server.user()
    events, ids = await read(user, TEN_TASKS)
    assert_ten_in_one_step(events)
    if read is _standard:
        assert_ids_follow_seq(events, ids)
    else:  # the seed framing sends each id in a block of its own, then the data
        assert ids[-len(events) :] == [f"{events[0]['run_id']}:{e['seq']}" for e in events]
    await server.registry.wait_idle()

    rows = await db.rows("SELECT id, title FROM tasks WHERE user_id = :u ORDER BY id", u=user.id)
    assert [row["title"] for row in rows] == TEN, "not stored in the order they were named"
    results = [event for event in events if event["type"] == "tool_result"]
    assert {row["id"] for row in rows} == {result["output"]["task"]["id"] for result in results}
    [answer] = await db.rows(
        "SELECT content, status, tool_calls FROM messages"
        " WHERE conversation_id = :id AND role = 'assistant'",
        id=events[0]["conversation_id"],
    )
    assert (answer["status"], answer["content"]) == ("complete", text_of(events))
    calls = [event for event in events if event["type"] == "tool_call"]
    assert answer["tool_calls"] == [
        {
            "call_id": call["call_id"],
            "name": call["name"],
            "arguments": call["arguments"],
            "output": result["output"],
        }
        for call, result in zip(calls, results, strict=True)
    ]


async def test_a_compound_request_looks_up_once_then_changes_together(
    server: LiveServer,
) -> None:
    user = server.user()
    for title in ("Call mom", "Call mom about the party", "Buy milk"):
        assert (await user.post("/tasks", json={"title": title})).status_code == 201
    events, _ = await _standard(user, "done with call mom and call mom about the party")
    pairs = assert_calls_paired(events)
    assert [call["name"] for call, _ in pairs] == ["list_tasks", "complete_task", "complete_task"]
    completed = {result["output"]["task"]["title"] for _, result in pairs[1:]}
    assert completed == {"Call mom", "Call mom about the party"}
    assert events[-1]["type"] == "done" and events[-1]["usage"]["requests"] == 3
    listed = (await user.get("/tasks", params={"status": "completed"})).json()["tasks"]
    assert sorted(task["title"] for task in listed) == ["Call mom", "Call mom about the party"]


async def test_concurrent_calls_on_one_task_each_apply_once(
    settings: Settings, db: PlainSql
) -> None:
    """One response aims six calls at two tasks of one user; the SDK runs them at once, each
    one statement through the task service. Nothing is lost or applied twice: both updates of
    one row land, one of two deletes finds the task, completing twice is completing."""
    async with serve(create_app(settings), settings) as live:
        user = live.user()
        first = (await user.post("/tasks", json={"title": "Call mom"})).json()
        second = (await user.post("/tasks", json={"title": "Call mum"})).json()
    model = ScriptedModel(
        [
            [
                function_call("complete_task", {"task_id": first["id"]}, call_id="a"),
                function_call("complete_task", {"task_id": first["id"]}, call_id="b"),
                function_call(
                    "update_task", {"task_id": first["id"], "title": "Call mom at 6"}, call_id="c"
                ),
                function_call("delete_task", {"task_id": second["id"]}, call_id="d"),
                function_call("delete_task", {"task_id": second["id"]}, call_id="e"),
                function_call("add_task", {"title": "Call mum"}, call_id="f"),
            ],
            [assistant_message("Done.")],
        ]
    )
    async with serve(create_app(settings, model=model), settings) as live:
        scripted = User(user.id, user.token, live.client)
        events = await scripted.chat("call mom at 6, done; and mum afresh")
        await live.registry.wait_idle()

    outputs = {result["call_id"]: result["output"] for _, result in assert_calls_paired(events)}
    assert outputs["a"]["task"]["completed"] and outputs["b"]["task"]["completed"]
    deletes = [outputs["d"], outputs["e"]]
    assert sorted("deleted" in output for output in deletes) == [False, True]
    assert [output.get("error") for output in deletes if "deleted" not in output] == ["not_found"]
    rows = await db.rows(
        "SELECT id, title, completed FROM tasks WHERE user_id = :u ORDER BY id", u=user.id
    )
    added = outputs["f"]["task"]["id"]
    assert rows == [
        {"id": first["id"], "title": "Call mom at 6", "completed": True},
        {"id": added, "title": "Call mum", "completed": False},
    ]
