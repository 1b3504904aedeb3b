"""The offline model through the Agents SDK alone, streamed and not, on the real database."""

from __future__ import annotations

import json
import uuid
from typing import Any

from agents import (
    Agent,
    FunctionTool,
    RawResponsesStreamEvent,
    RunConfig,
    RunItemStreamEvent,
    Runner,
)
from agents.tool_context import ToolContext

from app.agent.items import field_of
from app.agent.offline import OfflineModel
from app.agent.tools import TODO_TOOLS, TurnContext
from app.db.uow import Database
from app.tasks import UserTasks


async def test_get_response_and_stream_response_drive_the_tools_alike(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    try:
        context = TurnContext(UserTasks(database, f"offline-{uuid.uuid4().hex}"))
        agent = Agent[TurnContext](name="todo", tools=list(TODO_TOOLS), model=OfflineModel())
        config = RunConfig(tracing_disabled=True)

        added = await Runner.run(agent, "add buy milk", context=context, run_config=config)
        [task] = await context.tasks.list()
        assert added.final_output == f'Added "Buy milk" to your list as task #{task.id}.'

        streamed = Runner.run_streamed(agent, "show my tasks", context=context, run_config=config)
        deltas = [
            event.data.delta
            async for event in streamed.stream_events()
            if isinstance(event, RawResponsesStreamEvent)
            and event.data.type == "response.output_text.delta"
        ]
        assert len(deltas) > 3
        assert (
            "".join(deltas) == streamed.final_output == f"You have 1 task:\n- #{task.id} Buy milk"
        )
        assert streamed.context_wrapper.usage.requests == 2
    finally:
        await database.dispose()


async def test_ten_tasks_in_one_message_are_one_response_of_ten_calls(database_url: str) -> None:
    """The SDK reports the ten calls of the one response, runs them (concurrently), reports
    their outputs in the calls' order, and asks the model once more: for the reply."""
    titles = ["Eggs", "Bread", "Butter", "Cheese", "Apples", "Bananas", "Rice", "Pasta"]
    titles += ["Coffee", "Tea"]
    message = "add " + ", ".join(titles[:-1]).lower() + " and tea"
    database = Database(database_url, pool_size=3)
    try:
        context = TurnContext(UserTasks(database, f"offline-{uuid.uuid4().hex}"))
        agent = Agent[TurnContext](name="todo", tools=list(TODO_TOOLS), model=OfflineModel())
        config = RunConfig(tracing_disabled=True)
        streamed = Runner.run_streamed(agent, message, context=context, run_config=config)
        items = [
            event.item
            async for event in streamed.stream_events()
            if isinstance(event, RunItemStreamEvent)
            and event.name in ("tool_called", "tool_output")
        ]
        assert [item.type for item in items] == ["tool_call_item"] * 10 + [
            "tool_call_output_item"
        ] * 10
        calls = [item.raw_item for item in items[:10]]
        outputs = [item.raw_item for item in items[10:]]
        assert [json.loads(field_of(call, "arguments"))["title"] for call in calls] == titles
        call_ids = [field_of(call, "call_id") for call in calls]
        assert [field_of(output, "call_id") for output in outputs] == call_ids
        assert streamed.context_wrapper.usage.requests == 2
    finally:
        await database.dispose()


async def test_a_tool_whose_database_is_down_answers_safely() -> None:
    unreachable = Database("postgresql+asyncpg://nobody:hunter2@127.0.0.1:9/none", pool_size=1)
    try:
        context = TurnContext(UserTasks(unreachable, "offline-down"))
        agent = Agent[TurnContext](name="todo", tools=list(TODO_TOOLS), model=OfflineModel())
        result = await Runner.run(
            agent, "add buy milk", context=context, run_config=RunConfig(tracing_disabled=True)
        )
        outputs = [item.output for item in result.new_items if item.type == "tool_call_output_item"]
        assert outputs == [
            '{"error":"tool_failed","message":"The task list failed on our side. '
            'Nothing was changed."}'
        ]
        assert result.final_output.startswith("Sorry, I couldn't reach your task list")
    finally:
        await unreachable.dispose()


async def _call(tool: FunctionTool, context: TurnContext, arguments: str) -> Any:
    """One call of a tool as the SDK makes it for a model, without a model."""
    tool_context = ToolContext(
        context, tool_name=tool.name, tool_call_id="call_1", tool_arguments=arguments
    )
    output = await tool.on_invoke_tool(tool_context, arguments)
    return json.loads(output)


async def test_the_tools_answer_in_utf_8_with_the_whole_task_or_a_safe_reason(
    database_url: str,
) -> None:
    """What the model is told, exactly: the task with its description, its text as it is (not
    \\u escapes, which cost a model tokens), and for arguments that do not fit, a reason that
    says nothing was changed (cases make mutate found only the end-to-end tests reach)."""
    database = Database(database_url, pool_size=1)
    try:
        context = TurnContext(UserTasks(database, f"offline-{uuid.uuid4().hex}"))
        tools = {tool.name: tool for tool in TODO_TOOLS if isinstance(tool, FunctionTool)}
        arguments = '{"title": "Café ☕", "description": "oat milk"}'
        added = await _call(tools["add_task"], context, arguments)
        assert {k: added["task"][k] for k in ("title", "description")} == {
            "title": "Café ☕",
            "description": "oat milk",
        }
        listing = ToolContext(
            context, tool_name="list_tasks", tool_call_id="call_2", tool_arguments="{}"
        )
        assert "Café ☕" in await tools["list_tasks"].on_invoke_tool(listing, "{}")
        refusal = {
            "error": "invalid_arguments",
            "message": "The arguments do not fit this tool's parameters. Nothing was changed.",
        }
        for name, bad in (("add_task", '{"title": '), ("complete_task", '{"task_id": "x"}')):
            assert await _call(tools[name], context, bad) == refusal
        assert [task.title for task in await context.tasks.list()] == ["Café ☕"]
    finally:
        await database.dispose()
