"""The offline model through the Agents SDK alone, streamed and not, on the real database."""

from __future__ import annotations

import uuid

from agents import Agent, RawResponsesStreamEvent, RunConfig, Runner

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
