"""AG-UI against the live service: the real `@ag-ui/client` `HttpAgent`, 1.0.0 and 0.0.59 (the
version CopilotKit's React packages pin), run by Node (tests/clients/ag_ui_client.mjs): its
own parser, schema enforcement (1.0), `verifyEvents` and the reducer that builds
`agent.messages` and `agent.state`. The fakes are at the model only: the offline model, one the
test holds mid-answer, a scripted one, the fake OpenAI server. Resume, cancel and abort:
test_ag_ui_resume.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call

from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.e2e.ag_ui_driving import (
    CLIENT_LINES,
    WatchedAgent,
    agent_run,
    clean,
    new_thread,
    run_agents,
    stored_task_state,
    user_message,
)
from tests.e2e.test_providers import LEAKS
from tests.e2e.test_providers import _settings as provider_settings
from tests.e2e.test_runs import _Pausing
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.support import LiveServer, PlainSql, User, node_with_clients, running, serve


@pytest.fixture(autouse=True)
def _node() -> None:
    node_with_clients()


def _by_role(messages: list[dict[str, Any]]) -> list[str]:
    return [message["role"] for message in messages]


async def _stored(db: PlainSql, conversation_id: int) -> list[dict[str, Any]]:
    return await db.rows(
        "SELECT role, content FROM messages WHERE conversation_id = :id ORDER BY id",
        id=conversation_id,
    )


@pytest.mark.parametrize("client", CLIENT_LINES)
async def test_a_run_streams_the_tool_turn_into_the_clients_messages_and_state(
    settings: Settings, db: PlainSql, client: str
) -> None:
    """Held before its third text delta, the run is still going while the client has had two
    TEXT_MESSAGE_CONTENT: the text arrives as the run streams, not at its end."""
    model = _Pausing({"add buy milk": (2,)})
    async with serve(create_app(settings, model=model), settings) as live:
        user, thread = live.user(), new_thread()
        asked = user_message("add buy milk")
        async with WatchedAgent(agent_run(live, user, thread, [asked], client)) as agent:
            await agent.until("TEXT_MESSAGE_CONTENT", 2)
            going = await db.rows("SELECT status FROM runs WHERE user_id = :u", u=user.id)
            assert going == [{"status": "active"}], "the run is held, not over"
            model.go_on["add buy milk", 2].set()
            seen = await agent.result()
        await live.registry.wait_idle()
        tasks = (await user.get("/tasks")).json()["tasks"]

    clean(seen)
    events = seen["events"]
    assert events[0] == "RUN_STARTED" and events[-1] == "RUN_FINISHED"
    assert events.count("TEXT_MESSAGE_CONTENT") >= 3
    user_said, reasoning, called, answered, text = seen["messages"]
    assert user_said == asked and reasoning["role"] == "reasoning"
    assert (called["role"], answered["role"], text["role"]) == ("assistant", "tool", "assistant")
    [call] = called["toolCalls"]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "add_task",
        {"title": "Buy milk"},
    )
    assert answered["toolCallId"] == call["id"]
    assert json.loads(answered["content"])["task"]["title"] == "Buy milk"
    assert text["content"].startswith('Added "Buy milk"')
    assert seen["state"] == stored_task_state(tasks) and len(tasks) == 1
    ours = seen["result"] if client == "1.0.0" else seen["finished"][0]["result"]
    stored = await _stored(db, ours["conversation_id"])
    assert stored == [
        {"role": "user", "content": "add buy milk"},
        {"role": "assistant", "content": text["content"]},
    ]


async def test_a_second_run_on_the_thread_continues_it_and_another_users_thread_is_apart(
    server: LiveServer, db: PlainSql
) -> None:
    """The second run resends the whole history (the agent's own messages, the first answer
    among them); the service reads only its new message. Bob's run on the same threadId is
    another conversation, which sees none of Alice's."""
    alice, bob, thread = server.user("alice"), server.user("bob"), new_thread()
    first = user_message("add buy milk")
    then = [{"message": user_message("show my tasks")}]
    seen_alice, seen_bob = await run_agents(
        agent_run(server, alice, thread, [first], then=then),
        agent_run(server, bob, thread, [user_message("show my tasks")]),
    )
    await server.registry.wait_idle()
    clean(seen_alice)
    clean(seen_bob)
    turn = ("user", "reasoning", "assistant", "tool", "assistant")
    assert _by_role(seen_alice["messages"]) == [*turn, *turn]
    assert seen_alice["messages"][7]["toolCalls"][0]["function"]["name"] == "list_tasks"
    conversation_id = seen_alice["result"]["conversation_id"]
    assert "Buy milk" in seen_alice["messages"][-1]["content"], "the first run's task is seen"
    stored = await _stored(db, conversation_id)
    assert _by_role(stored) == ["user", "assistant", "user", "assistant"]
    assert [row["content"] for row in stored[::2]] == ["add buy milk", "show my tasks"]
    threads = await db.rows(
        "SELECT user_id, conversation_id FROM threads WHERE protocol = 'ag-ui' "
        "AND thread_id = :thread ORDER BY user_id",
        thread=thread,
    )
    assert threads == [
        {"user_id": alice.id, "conversation_id": conversation_id},
        {"user_id": bob.id, "conversation_id": seen_bob["result"]["conversation_id"]},
    ]
    assert conversation_id != seen_bob["result"]["conversation_id"]
    assert "Buy milk" not in json.dumps(seen_bob["messages"])
    assert seen_bob["state"] == {"tasks": []}


async def test_a_retried_run_joins_the_first_and_adds_nothing(
    server: LiveServer, db: PlainSql
) -> None:
    """The same input sent again (a new agent, a new runId, the same last message) replays
    the first run: the same messages, one run, one task."""
    user, thread, asked = server.user(), new_thread(), user_message("add buy milk")
    first, again = await run_agents(
        agent_run(server, user, thread, [asked]), agent_run(server, user, thread, [asked])
    )
    await server.registry.wait_idle()
    clean(first)
    clean(again)
    assert again["messages"] == first["messages"] and again["state"] == first["state"]
    runs = await db.rows("SELECT id FROM runs WHERE user_id = :user", user=user.id)
    assert [str(row["id"]) for row in runs] == [first["result"]["run_id"]]
    assert [t["title"] for t in (await user.get("/tasks")).json()["tasks"]] == ["Buy milk"]


def _parallel_model(milk_id: int) -> ScriptedModel:
    return ScriptedModel(
        [
            [
                function_call("add_task", {"title": "Buy bread"}, call_id="call_a"),
                function_call("complete_task", {"task_id": milk_id}, call_id="call_b"),
                function_call("add_task", {"title": "Buy eggs"}, call_id="call_c"),
            ],
            [assistant_message("Added bread and eggs, and ticked off milk.")],
        ]
    )


@pytest.mark.parametrize("client", CLIENT_LINES)
async def test_parallel_tool_calls_are_one_assistant_message_with_each_result_on_its_call(
    settings: Settings, client: str
) -> None:
    """One model response with three function calls, run concurrently: the client holds one
    assistant message with the three calls in the model's order, and each tool message
    right after it answers its own call (checked by what each result says)."""
    async with serve(create_app(settings), settings) as setup:
        made = setup.user()
        milk = (await made.post("/tasks", json={"title": "Buy milk"})).json()
    async with serve(create_app(settings, model=_parallel_model(milk["id"])), settings) as live:
        user = User(made.id, made.token, live.client)
        asked = user_message("add bread and eggs, milk is done")
        [seen] = await run_agents(agent_run(live, user, new_thread(), [asked], client))
        await live.registry.wait_idle()
        tasks = (await user.get("/tasks")).json()["tasks"]

    clean(seen)
    user_said, called, *answers, text = seen["messages"]
    assert user_said == asked and called["role"] == "assistant"
    calls = {call["id"]: call["function"] for call in called["toolCalls"]}
    assert [(f["name"], json.loads(f["arguments"])) for f in calls.values()] == [
        ("add_task", {"title": "Buy bread"}),
        ("complete_task", {"task_id": milk["id"]}),
        ("add_task", {"title": "Buy eggs"}),
    ]
    assert [answer["role"] for answer in answers] == ["tool"] * 3
    assert sorted(answer["toolCallId"] for answer in answers) == sorted(calls)
    for answer in answers:
        arguments = json.loads(calls[answer["toolCallId"]]["arguments"])
        task = json.loads(answer["content"])["task"]
        if "title" in arguments:
            assert (task["title"], task["completed"]) == (arguments["title"], False)
        else:
            assert (task["id"], task["completed"]) == (arguments["task_id"], True)
    assert (text["role"], text["content"]) == (
        "assistant",
        "Added bread and eggs, and ticked off milk.",
    )
    assert seen["state"] == stored_task_state(tasks) and len(tasks) == 3


@pytest.mark.parametrize("client", CLIENT_LINES)
async def test_a_failing_model_ends_the_run_with_run_error(settings: Settings, client: str) -> None:
    """The promise resolves; onRunErrorEvent gets our code and message, nothing of the
    provider's."""
    fake = FakeOpenAI(script=[Reply(status=500), Reply(status=503)])
    async with running(fake.app()) as provider_url:
        failing = provider_settings(settings, f"{provider_url}/v1", "chat_completions")
        async with serve(create_app(failing), failing) as live:
            user = live.user()
            [seen] = await run_agents(
                agent_run(live, user, new_thread(), [user_message("add buy milk")], client)
            )
            await live.registry.wait_idle()
    clean(seen)
    assert seen["events"][0] == "RUN_STARTED" and seen["events"][-1] == "RUN_ERROR"
    [error] = seen["runErrors"]
    assert error["code"] == "model_unavailable"
    assert seen["finished"] == [] and seen["result"] is None
    for leak in LEAKS:
        assert leak not in json.dumps(seen)


def _error(seen: dict[str, Any], status: int, code: str) -> None:
    assert seen["threw"]["status"] == status, seen
    assert seen["threw"]["payload"]["error"]["code"] == code, seen


async def test_errors_before_the_stream_reach_the_client_as_json_and_store_nothing(
    settings: Settings, db: PlainSql
) -> None:
    """No token (401), another user's path (403), a body whose last message is not the
    user's (422), a second message while the thread's run goes on (409), a run past the
    user's limit on another thread (429): each an HTTP error with our JSON, as the client
    surfaces it, and none stores anything."""
    model = _Pausing({"add buy milk": (1,)})
    one_run = with_settings(settings, max_active_runs=1)
    async with serve(create_app(one_run, model=model), one_run) as live:
        user, other, thread = live.user(), live.user(), new_thread()
        hello = [user_message("hello")]
        stranger = User(user.id, "not-a-token", live.client)
        answer_last = [*hello, {"id": "a1", "role": "assistant", "content": "hi"}]
        refused = await run_agents(
            {**agent_run(live, user, thread, hello), "headers": {}},
            agent_run(live, stranger, thread, hello),
            {**agent_run(live, user, thread, hello), "headers": other.headers},
            agent_run(live, user, thread, answer_last),
        )
        expected = [
            (401, "not_authenticated"),
            (401, "invalid_token"),
            (403, "forbidden"),
            (422, "invalid_request"),
        ]
        for seen, (status, code) in zip(refused, expected, strict=True):
            _error(seen, status, code)
        assert (await user.get("/conversations")).json()["conversations"] == []

        async with WatchedAgent(
            agent_run(live, user, thread, [user_message("add buy milk")])
        ) as held:
            await model.reached["add buy milk", 1].wait()
            busy, over = await run_agents(
                agent_run(live, user, thread, [user_message("hello")]),
                agent_run(live, user, new_thread(), [user_message("hello")]),
            )
            model.go_on["add buy milk", 1].set()
            clean(await held.result())
        await live.registry.wait_idle()
    _error(busy, 409, "run_active")
    _error(over, 429, "too_many_runs")
    conversations = await db.rows("SELECT id FROM conversations WHERE user_id = :u", u=user.id)
    assert len(conversations) == 1, "the refused runs made no conversation"
