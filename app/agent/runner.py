"""The todo agent: an Agents SDK `Agent` run with `Runner.run_streamed`, its stream events
mapped to ours as they arrive."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from agents import (
    Agent,
    MaxTurnsExceeded,
    Model,
    ModelBehaviorError,
    ModelSettings,
    RawResponsesStreamEvent,
    RunConfig,
    RunItemStreamEvent,
    Runner,
    RunResultStreaming,
)
from agents.items import TResponseInputItem

from app.agent.items import field_of
from app.agent.tools import TODO_TOOLS, TurnContext
from app.domain import AgentFailed, Message, Role, TaskBook, Usage
from app.events import AgentEvent, Text, Thinking, ToolCallEvent, ToolResultEvent

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
You are a friendly assistant that keeps the user's todo list.
Use the tools to add, list, complete, update and delete tasks; they always act for the user
you are talking to. Never guess a task id: call list_tasks to find it. After changing the
list, say briefly what you did. Keep answers short and plain."""

_THINKING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)


class TodoAgent:
    def __init__(self, model: Model, *, max_turns: int, tracing: bool = False) -> None:
        self._agent = Agent[TurnContext](
            name="Todo assistant",
            instructions=INSTRUCTIONS,
            tools=list(TODO_TOOLS),
            model=model,
            # Usage of streamed Chat Completions, which compatible servers send only when asked.
            model_settings=ModelSettings(include_usage=True),
        )
        self._max_turns = max_turns
        # Tracing exports to OpenAI's servers: off unless AGENT_TRACING=on.
        self._run_config = RunConfig(tracing_disabled=not tracing)

    def answer(self, history: Sequence[Message], message: str, tasks: TaskBook) -> AgentRun:
        """Start answering `message`; the returned run streams the agent's events."""
        items: list[TResponseInputItem] = [
            {"role": "user" if past.role is Role.USER else "assistant", "content": past.content}
            for past in history
            if past.content
        ]
        items.append({"role": "user", "content": message})
        result = Runner.run_streamed(
            # An agent of its own per run: at each model call the SDK scans every run in flight
            # on the same Agent for changed tools (openai-agents 0.24), which made 2,000 runs at
            # once cost three times as much per run as 30. A shallow copy is enough, and far
            # cheaper than the SDK's `clone()`, which revalidates every field.
            copy.copy(self._agent),
            items,
            context=TurnContext(tasks=tasks),
            max_turns=self._max_turns,
            run_config=self._run_config,
        )
        return AgentRun(result)


class AgentRun:
    """One streamed run: iterate `events()`, then read `usage`."""

    def __init__(self, result: RunResultStreaming) -> None:
        self._result = result
        self._tool_names: dict[str, str] = {}

    @property
    def usage(self) -> Usage:
        usage = self._result.context_wrapper.usage
        return Usage(
            requests=usage.requests,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )

    def cancel(self) -> None:
        self._result.cancel()

    async def events(self) -> AsyncIterator[AgentEvent]:
        try:
            async for event in self._result.stream_events():
                mapped = self._map(event)
                if mapped is not None:
                    yield mapped
        except Exception as error:
            raise _failure(error) from error

    def _map(self, event: object) -> AgentEvent | None:
        if isinstance(event, RawResponsesStreamEvent):
            data = event.data
            if data.type == "response.output_text.delta":
                return Text(data.delta)
            if data.type in _THINKING_DELTAS:
                return Thinking(getattr(data, "delta", ""))
            return None
        if not isinstance(event, RunItemStreamEvent):
            return None
        raw: Any = event.item.raw_item
        if event.name == "tool_called":
            call_id, name = field_of(raw, "call_id"), field_of(raw, "name")
            self._tool_names[call_id] = name
            return ToolCallEvent(call_id, name, _json_or_text(field_of(raw, "arguments")))
        if event.name == "tool_output":
            call_id = field_of(raw, "call_id")
            output = getattr(event.item, "output", None)
            return ToolResultEvent(
                call_id, self._tool_names.get(call_id, ""), _json_or_text(output)
            )
        return None


def _json_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _failure(error: Exception) -> AgentFailed:
    """A stable code for what went wrong; the provider's own words stay in the log."""
    if isinstance(error, AgentFailed):
        return error
    if isinstance(error, MaxTurnsExceeded):
        # Stopped after its tools ran (with only function tools, a response without tool calls
        # ends the run): what they did stays done, and a retry would do it again. Never
        # retryable, whatever the model.
        return AgentFailed("max_turns_exceeded", retryable=False)
    if isinstance(error, openai.RateLimitError):
        return AgentFailed("rate_limited", retryable=True)
    if isinstance(error, openai.APITimeoutError):
        return AgentFailed("model_timeout", retryable=True)
    if isinstance(error, openai.APIConnectionError):
        return AgentFailed("model_unavailable", retryable=True)
    if isinstance(error, openai.APIStatusError) and error.status_code >= 500:
        return AgentFailed("model_unavailable", retryable=True)
    if isinstance(error, openai.APIError | ModelBehaviorError):
        return AgentFailed("model_error")
    return AgentFailed("agent_failed")
