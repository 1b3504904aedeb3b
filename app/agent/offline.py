"""The embedded default model: a deterministic Agents SDK `Model` that needs no network.

It reads the conversation the SDK hands it like a real model would, calls the todo tools through
the SDK, and streams its reply token by token as Responses API events. When a message asks for
several things it makes several function calls in one response, as real models do (parallel
tool calls): the SDK runs them concurrently and hands back their outputs together.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from agents import ModelResponse, ModelSettings, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.models.interface import Model, ModelTracing
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_reasoning_item import Summary

from app.agent.intent import Step, ToolResult, next_step, understand
from app.agent.items import field_of

MODEL_NAME = "offline"
_TOKEN = re.compile(r"\s*\S+")


class OfflineModel(Model):
    def __init__(self, *, token_delay_ms: int = 0) -> None:
        self._token_delay = token_delay_ms / 1000

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        response = _Response(_plan(input), input)
        return ModelResponse(
            output=response.output_items(),
            usage=response.usage(),
            response_id=response.id,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        response = _Response(_plan(input), input)
        for event in response.events():
            if self._token_delay and isinstance(event, ResponseTextDeltaEvent):
                await asyncio.sleep(self._token_delay)
            yield event


def _plan(input: str | list[TResponseInputItem]) -> Step:
    items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else input
    last_user = max(
        (index for index, item in enumerate(items) if field_of(item, "role") == "user"),
        default=None,
    )
    if last_user is None:
        return next_step(understand("help"), [])
    # Each output is paired with its call by id, and the results are taken in the order the
    # calls were made, whatever order the outputs come back in.
    calls: dict[str, str] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for item in items[last_user + 1 :]:
        kind = field_of(item, "type")
        if kind == "function_call":
            calls[field_of(item, "call_id")] = field_of(item, "name")
        elif kind == "function_call_output":
            outputs[field_of(item, "call_id")] = _parse_output(field_of(item, "output"))
    results = [
        ToolResult(name, outputs[call_id]) for call_id, name in calls.items() if call_id in outputs
    ]
    return next_step(understand(_text_of(field_of(items[last_user], "content"))), results)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(str(field_of(part, "text") or "") for part in content or ())


def _parse_output(output: Any) -> dict[str, Any]:
    text = output if isinstance(output, str) else _text_of(output)
    try:
        parsed = json.loads(text)
    except (TypeError, ValueError):
        return {"error": "unreadable", "message": "the tool's answer could not be read"}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


class _Response:
    """One model response for a planned step, as output items and as stream events."""

    def __init__(self, step: Step, input: str | list[TResponseInputItem]) -> None:
        self.step = step
        self.id = f"resp_{uuid.uuid4().hex}"
        self._input_tokens = len(_TOKEN.findall(json.dumps(input, default=str)))
        self._reasoning = (
            ResponseReasoningItem(
                id=f"rs_{uuid.uuid4().hex}",
                type="reasoning",
                summary=[Summary(text=step.thinking, type="summary_text")],
            )
            if step.thinking
            else None
        )
        self._calls = [
            ResponseFunctionToolCall(
                id=f"fc_{uuid.uuid4().hex}",
                call_id=f"call_{uuid.uuid4().hex[:24]}",
                type="function_call",
                name=call.name,
                arguments=json.dumps(call.arguments, separators=(",", ":")),
                status="completed",
            )
            for call in step.calls
        ]
        self._tokens = _TOKEN.findall(step.reply) if step.reply else []
        self._message = (
            ResponseOutputMessage(
                id=f"msg_{uuid.uuid4().hex}",
                type="message",
                role="assistant",
                status="completed",
                content=[
                    ResponseOutputText(
                        type="output_text", text=step.reply, annotations=[], logprobs=[]
                    )
                ],
            )
            if step.reply
            else None
        )

    def output_items(self) -> list[TResponseOutputItem]:
        items: list[TResponseOutputItem] = []
        if self._reasoning is not None:
            items.append(self._reasoning)
        items.extend(self._calls)
        if self._message is not None:
            items.append(self._message)
        return items

    def usage(self) -> Usage:
        output_tokens = len(self._tokens) + sum(
            len(_TOKEN.findall(call.arguments)) + 1 for call in self._calls
        )
        return Usage(
            requests=1,
            input_tokens=self._input_tokens,
            output_tokens=output_tokens,
            total_tokens=self._input_tokens + output_tokens,
        )

    def events(self) -> Iterator[TResponseStreamEvent]:
        sequence = _Counter()
        yield ResponseCreatedEvent(
            type="response.created",
            response=self._response([], status="in_progress"),
            sequence_number=sequence.next(),
        )
        output = self.output_items()
        for index, item in enumerate(output):
            yield ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=_in_progress(item),
                output_index=index,
                sequence_number=sequence.next(),
            )
            if isinstance(item, ResponseReasoningItem):
                yield ResponseReasoningSummaryTextDeltaEvent(
                    type="response.reasoning_summary_text.delta",
                    item_id=item.id,
                    output_index=index,
                    summary_index=0,
                    delta=item.summary[0].text,
                    sequence_number=sequence.next(),
                )
            elif isinstance(item, ResponseFunctionToolCall):
                yield from self._call_events(item, index, sequence)
            elif isinstance(item, ResponseOutputMessage):
                yield from self._text_events(item, index, sequence)
            yield ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=item,
                output_index=index,
                sequence_number=sequence.next(),
            )
        yield ResponseCompletedEvent(
            type="response.completed",
            response=self._response(output, status="completed"),
            sequence_number=sequence.next(),
        )

    def _call_events(
        self, call: ResponseFunctionToolCall, index: int, sequence: _Counter
    ) -> Iterator[TResponseStreamEvent]:
        assert call.id is not None
        yield ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            item_id=call.id,
            output_index=index,
            delta=call.arguments,
            sequence_number=sequence.next(),
        )
        yield ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done",
            item_id=call.id,
            name=call.name,
            output_index=index,
            arguments=call.arguments,
            sequence_number=sequence.next(),
        )

    def _text_events(
        self, message: ResponseOutputMessage, index: int, sequence: _Counter
    ) -> Iterator[TResponseStreamEvent]:
        part = message.content[0]
        assert isinstance(part, ResponseOutputText)
        empty = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added",
            item_id=message.id,
            output_index=index,
            content_index=0,
            part=empty,
            sequence_number=sequence.next(),
        )
        for token in self._tokens:
            # Built without validation: these are the hot path, and their fields are ours.
            yield ResponseTextDeltaEvent.model_construct(
                type="response.output_text.delta",
                item_id=message.id,
                output_index=index,
                content_index=0,
                delta=token,
                logprobs=[],
                sequence_number=sequence.next(),
            )
        yield ResponseTextDoneEvent(
            type="response.output_text.done",
            item_id=message.id,
            output_index=index,
            content_index=0,
            text=part.text,
            logprobs=[],
            sequence_number=sequence.next(),
        )
        yield ResponseContentPartDoneEvent(
            type="response.content_part.done",
            item_id=message.id,
            output_index=index,
            content_index=0,
            part=part,
            sequence_number=sequence.next(),
        )

    def _response(self, output: list[TResponseOutputItem], *, status: str) -> Response:
        usage = self.usage()
        return Response(
            id=self.id,
            created_at=time.time(),
            model=MODEL_NAME,
            object="response",
            output=output,
            tool_choice="auto",
            tools=[],
            top_p=None,
            parallel_tool_calls=True,
            status=status,
            usage=ResponseUsage.model_validate(
                {
                    "input_tokens": usage.input_tokens,
                    # Newer openai releases require cache_write_tokens; older ones allow extras.
                    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens": usage.output_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": usage.total_tokens,
                }
            )
            if status == "completed"
            else None,
        )


class _Counter:
    def __init__(self) -> None:
        self._value = -1

    def next(self) -> int:
        self._value += 1
        return self._value


def _in_progress(item: TResponseOutputItem) -> TResponseOutputItem:
    if isinstance(item, ResponseOutputMessage):
        return item.model_copy(update={"content": [], "status": "in_progress"})
    if isinstance(item, ResponseFunctionToolCall):
        return item.model_copy(update={"arguments": "", "status": "in_progress"})
    if isinstance(item, ResponseReasoningItem):
        return item.model_copy(update={"summary": []})
    return item
