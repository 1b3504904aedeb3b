"""A small OpenAI-compatible HTTP server for tests: `/v1/chat/completions` and `/v1/responses`
with `stream=true`, answering each request with the next reply of a script.

It streams as OpenAI does: Server-Sent Events, text token by token, tool-call arguments split
across chunks, reasoning, usage in the last chunk, `[DONE]` for Chat Completions; and it fails
as providers do: an HTTP status with Retry-After, a stall, a connection cut mid-answer, an error
chunk.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_reasoning_item import Summary
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.responses import Response as HttpResponse
from starlette.routing import Route

_TOKEN = re.compile(r"\s*\S+")


@dataclass
class Reply:
    """One answer of the fake provider, or one way of failing to give it."""

    text: str | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    reasoning: str | None = None
    input_tokens: int = 11
    output_tokens: int = 7
    status: int | None = None
    retry_after: str | None = None
    stall_seconds: float = 0.0
    cut_after_tokens: int | None = None
    error_after_tokens: int | None = None
    before: Callable[[], Awaitable[None]] | None = None
    before_token: Callable[[int], Awaitable[None]] | None = None
    """Awaited with each text token's index before the token is sent: a test paces the answer."""


class ConnectionCut(Exception):
    """Raised inside the streamed body: uvicorn drops the connection mid-response."""


@dataclass
class FakeOpenAI:
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
            ]
        )

    async def _next(self, request: Request) -> Reply:
        self.arrivals.append(time.monotonic())
        self.requests.append(await request.json())
        if not self.script:
            raise AssertionError("the fake provider got a request its script does not cover")
        reply = self.script.pop(0)
        if reply.before is not None:
            await reply.before()
        if reply.stall_seconds:
            await asyncio.sleep(reply.stall_seconds)
        return reply

    async def _chat_completions(self, request: Request) -> HttpResponse:
        reply = await self._next(request)
        if reply.status is not None:
            return _status(reply)
        return _sse(_chat_chunks(reply, self.requests[-1].get("model", "fake")))

    async def _responses(self, request: Request) -> HttpResponse:
        reply = await self._next(request)
        if reply.status is not None:
            return _status(reply)
        return _sse(_response_events(reply))


def _status(reply: Reply) -> HttpResponse:
    headers = {"retry-after": reply.retry_after} if reply.retry_after else {}
    body = {"error": {"message": "provider says no: internal-detail-42", "type": "server_error"}}
    return JSONResponse(body, status_code=reply.status or 500, headers=headers)


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream")


async def _tokens(reply: Reply) -> AsyncIterator[str | None]:
    """The reply's text tokens; None where the stream must fail instead."""
    for index, token in enumerate(_TOKEN.findall(reply.text or "")):
        if index == reply.cut_after_tokens:
            raise ConnectionCut("cut")
        if index == reply.error_after_tokens:
            yield None
            return
        if reply.before_token is not None:
            await reply.before_token(index)
        yield token
        await asyncio.sleep(0)


async def _chat_chunks(reply: Reply, model: str) -> AsyncIterator[str]:
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:8]}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in _TOKEN.findall(reply.reasoning or ""):
        yield chunk({"reasoning_content": piece})
    async for token in _tokens(reply):
        if token is None:
            error = {"error": {"message": "upstream overloaded: internal-detail-42"}}
            yield f"data: {json.dumps(error)}\n\n"
            return
        yield chunk({"content": token})
    for index, (name, arguments) in enumerate(reply.tool_calls):
        call = {"index": index, "id": f"call_{index}", "type": "function"}
        yield chunk({"tool_calls": [{**call, "function": {"name": name, "arguments": ""}}]})
        for piece in _split(arguments):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    usage = {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }
    last = {"id": chunk_id, "object": "chat.completion.chunk", "created": 0, "model": model}
    yield f"data: {json.dumps({**last, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


async def _response_events(reply: Reply) -> AsyncIterator[str]:
    sequence = iter(range(10_000))
    response_id = f"resp_{uuid.uuid4().hex[:8]}"
    output: list[Any] = []

    def event(model: Any) -> str:
        return f"event: {model.type}\ndata: {model.model_dump_json()}\n\n"

    def response(status: str) -> Response:
        return Response(
            id=response_id,
            created_at=time.time(),
            model="fake",
            object="response",
            output=list(output),
            tool_choice="auto",
            tools=[],
            top_p=None,
            parallel_tool_calls=True,
            status=status,
            usage=ResponseUsage.model_validate(
                {
                    "input_tokens": reply.input_tokens,
                    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens": reply.output_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": reply.input_tokens + reply.output_tokens,
                }
            ),
        )

    yield event(
        ResponseCreatedEvent(
            type="response.created",
            response=response("in_progress"),
            sequence_number=next(sequence),
        )
    )
    if reply.reasoning:
        item = ResponseReasoningItem(
            id="rs_1",
            type="reasoning",
            summary=[Summary(text=reply.reasoning, type="summary_text")],
        )
        index = len(output)
        yield event(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=item.model_copy(update={"summary": []}),
                output_index=index,
                sequence_number=next(sequence),
            )
        )
        for piece in _TOKEN.findall(reply.reasoning):
            yield event(
                ResponseReasoningSummaryTextDeltaEvent(
                    type="response.reasoning_summary_text.delta",
                    item_id=item.id,
                    output_index=index,
                    summary_index=0,
                    delta=piece,
                    sequence_number=next(sequence),
                )
            )
        output.append(item)
        yield event(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=item,
                output_index=index,
                sequence_number=next(sequence),
            )
        )
    if reply.text is not None:
        index = len(output)
        empty = ResponseOutputMessage(
            id="msg_1", type="message", role="assistant", status="in_progress", content=[]
        )
        yield event(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=empty,
                output_index=index,
                sequence_number=next(sequence),
            )
        )
        async for token in _tokens(reply):
            if token is None:
                error = {
                    "type": "error",
                    "code": "server_error",
                    "message": "upstream overloaded: internal-detail-42",
                    "param": None,
                    "sequence_number": next(sequence),
                }
                yield f"event: error\ndata: {json.dumps(error)}\n\n"
                return
            yield event(
                ResponseTextDeltaEvent(
                    type="response.output_text.delta",
                    item_id="msg_1",
                    output_index=index,
                    content_index=0,
                    delta=token,
                    logprobs=[],
                    sequence_number=next(sequence),
                )
            )
        message = empty.model_copy(
            update={
                "status": "completed",
                "content": [
                    ResponseOutputText(
                        type="output_text", text=reply.text, annotations=[], logprobs=[]
                    )
                ],
            }
        )
        output.append(message)
        yield event(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=message,
                output_index=index,
                sequence_number=next(sequence),
            )
        )
    for number, (name, arguments) in enumerate(reply.tool_calls):
        index = len(output)
        call = ResponseFunctionToolCall(
            id=f"fc_{number}",
            call_id=f"call_{number}",
            type="function_call",
            name=name,
            arguments=arguments,
            status="completed",
        )
        yield event(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=call.model_copy(update={"arguments": "", "status": "in_progress"}),
                output_index=index,
                sequence_number=next(sequence),
            )
        )
        for piece in _split(arguments):
            yield event(
                ResponseFunctionCallArgumentsDeltaEvent(
                    type="response.function_call_arguments.delta",
                    item_id=call.id or "",
                    output_index=index,
                    delta=piece,
                    sequence_number=next(sequence),
                )
            )
        output.append(call)
        yield event(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=call,
                output_index=index,
                sequence_number=next(sequence),
            )
        )
    yield event(
        ResponseCompletedEvent(
            type="response.completed",
            response=response("completed"),
            sequence_number=next(sequence),
        )
    )


def _split(arguments: str, size: int = 5) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
