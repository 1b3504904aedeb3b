"""The Vercel AI SDK's UI message stream protocol (the npm `ai` package, 7.x; the tests pin
7.0.173): the body its `DefaultChatTransport` POSTs, and a run's events as the chunks its
`readUIMessageStream` and `useChat` assemble into one assistant message. Pure functions and
one small state machine (a `WireFormat`): no I/O; `app.web.routes.ai_sdk` serves it over the
same runs and the same transport as every other stream.

Read from the package itself (`src/ui-message-stream/ui-message-chunks.ts`,
`src/ui/http-chat-transport.ts`, `src/ui/process-ui-message-stream.ts`). Choices made here on
purpose, do not "fix" them:

1. **The assistant message's id is the run's id.** The stored answer's id is reserved when the
   run starts but is kept only in memory until its end, so a replay or a resume could not name
   it in its first chunk; the run's id is known from the first event of every stream of the run,
   and the SDK matches a resumed stream to its message by this id. The stored message's id is in
   the `finish` chunk's metadata (`message_id`), with `conversation_id`, `run_id`, `usage` and
   `status`; `start` carries `conversation_id` and `run_id` at once, so a front end can cancel
   (`POST /runs/{run_id}/cancel`) before the answer ends. Metadata keys are the service's own
   (snake_case), as in its other APIs.
2. **Steps.** Our events do not mark model calls; a model call's output is thinking, text and
   tool calls, and its tools answer before the next call. So a step starts with the run
   (`start-step` after `start`) and a new one starts when the model speaks again after a tool
   answered: `finish-step`, `start-step`. The last step ends before `finish` or `error`.
3. **Tool arguments arrive whole** (the agent reports a call once its arguments are complete),
   so a call is one `tool-input-available`: there is no partial input to send as
   `tool-input-start`/`tool-input-delta`. A tool result our tools word as a failure
   (`{"error": code, "message": ...}`, e.g. `not_found`) is `tool-output-error` with that
   message; any other result is `tool-output-available` with the result as it is stored.
4. **Errors.** An `error` chunk's `errorText` is the JSON `{"error": {"code", "message",
   "retryable"}}`: the same shape as the service's HTTP error bodies, which the transport
   surfaces as `error.message` (the body's text) for a 409 or a 429. One parse serves both.
   Only our codes and chosen messages: a provider's words never reach it (they are never in
   our events). The final event of a run closed after its instance died adds
   `stored_through` (`app.events.Error`): this stream has no seqs, but the SDK resumes by
   replaying the run from its start, and what that replay holds is the stored answer.
5. **A cancelled run** ends with `finish` and `finishReason: "other"` (metadata `status:
   "cancelled"`); a complete one with `"stop"`.
6. **Framing is not `app.protocols.native`'s.** The transport reads standard SSE `data:`
   lines, one JSON chunk each, and stops at `data: [DONE]`. It resumes by asking again for the
   whole run (GET `/ai/chat/{id}/stream`, which replays from the start, as the transport's
   default `resumeStreamIsReplay` expects), never by event id, so no `id:` lines: the native
   framings carry them for EventSource-style resumption, which this protocol does not use.
   `[DONE]` is the closing (`WireFormat.closing`): it follows only a run's final event, so a
   stream that ends without one was cut, and the client sees that, not a finished answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.events import (
    Done,
    Error,
    LoggedEvent,
    Start,
    Text,
    Thinking,
    ToolCallEvent,
    ToolResultEvent,
    decode,
)
from app.protocols.base import WireFormat
from app.protocols.client_input import (
    CLIENT_ID_RULE,
    CLIENT_ID_SCHEMA,
    client_id_is_valid,
    user_text_problem,
)

# The AI SDK's chat ids among the threads (`app.domain.Thread`): stored, never to change.
PROTOCOL = "ai-sdk"
# What the transport checks for, and what the AI SDK's own responses send.
HEADERS = {"x-vercel-ai-ui-message-stream": "v1", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"
Chunk = dict[str, Any]


class _UiMessage(BaseModel):
    """A message as the SDK sends it; only the last one's role and text parts are read."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str | None = None
    role: str
    parts: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(
            part["text"]
            for part in self.parts
            if part.get("type") == "text" and isinstance(part.get("text"), str)
        )


class AiChatRequest(BaseModel):
    """What `DefaultChatTransport.sendMessages` POSTs: `{id, messages, trigger, messageId}`,
    plus whatever the app's `body` option adds (ignored). The service keeps its own history:
    of `messages` it reads only the last, which must be the user's, with text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The schema /openapi.json shows says what `client_id_is_valid` checks, and that a regenerate
    # is refused (422 `regenerate_unsupported`). That the last message must be the user's, with
    # text, no JSON schema can say.
    id: str = Field(json_schema_extra=CLIENT_ID_SCHEMA)
    messages: list[_UiMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = Field(
        default="submit-message", json_schema_extra={"enum": ["submit-message"]}
    )
    messageId: str | None = None  # the SDK's name

    @field_validator("id")
    @classmethod
    def _chat_id(cls, value: str) -> str:
        if not client_id_is_valid(value):
            raise ValueError(f"must be {CLIENT_ID_RULE}")
        return value

    @model_validator(mode="after")
    def _last_is_the_users_text(self, info: ValidationInfo) -> AiChatRequest:
        last = self.messages[-1]
        if last.role != "user":
            raise ValueError("messages: the last message must be the user's")
        problem = user_text_problem(last.text, (info.context or {}).get("max_message_chars"))
        if problem is not None:
            raise ValueError(f"messages: the last message {problem}")
        return self

    @property
    def text(self) -> str:
        """The user's new message: the last message's text parts, one per line."""
        return self.messages[-1].text

    @property
    def idempotency_key(self) -> str | None:
        """A plain send of a new message is keyed by the chat and the message's own id (made by
        the client), so a retried POST joins the run the first one started. An edited message
        (`messageId` set: the SDK keeps the edited message's id) gets no key: it is a new turn."""
        last_id = self.messages[-1].id
        if self.messageId is not None or not last_id:
            return None
        return f"ai-sdk:{self.id}:{last_id}"


class UiMessageStream(WireFormat):
    """One run's events, from its first, as UI message chunks (choices 1 to 5 above)."""

    headers = HEADERS

    def __init__(self) -> None:
        super().__init__()
        self._run_id = ""
        self._conversation_id = 0
        self._text: str | None = None
        self._reasoning: str | None = None
        self._tools_answered = False

    @property
    def keep_alive(self) -> bytes:
        return PING

    def frames(self, batch: Sequence[LoggedEvent]) -> bytes:
        return b"".join(frame(self.chunks(event)) for event in batch)

    def closing(self) -> bytes:
        """Choice 6."""
        return DONE

    def chunks(self, logged: LoggedEvent) -> list[Chunk]:
        event = decode(logged)
        if isinstance(event, Start):
            self._run_id, self._conversation_id = event.run_id, event.conversation_id
            metadata = {"conversation_id": event.conversation_id, "run_id": event.run_id}
            return [
                {"type": "start", "messageId": event.run_id, "messageMetadata": metadata},
                {"type": "start-step"},
            ]
        if isinstance(event, Thinking):
            out = self._close_text() + self._next_step()
            if self._reasoning is None:
                self._reasoning = f"reasoning-{logged.seq}"
                out.append({"type": "reasoning-start", "id": self._reasoning})
            return [
                *out,
                {"type": "reasoning-delta", "id": self._reasoning, "delta": event.message},
            ]
        if isinstance(event, Text):
            out = self._close_reasoning() + self._next_step()
            if self._text is None:
                self._text = f"text-{logged.seq}"
                out.append({"type": "text-start", "id": self._text})
            return [*out, {"type": "text-delta", "id": self._text, "delta": event.content}]
        if isinstance(event, ToolCallEvent):
            return [
                *self._close_text(),
                *self._close_reasoning(),
                *self._next_step(),
                {
                    "type": "tool-input-available",
                    "toolCallId": event.call_id,
                    "toolName": event.name,
                    "input": event.arguments,
                },
            ]
        if isinstance(event, ToolResultEvent):
            self._tools_answered = True
            return [tool_output(event)]
        self.ended = True
        out = [*self._close_text(), *self._close_reasoning(), {"type": "finish-step"}]
        if isinstance(event, Done):
            metadata = {
                "conversation_id": event.conversation_id,
                "run_id": self._run_id,
                "message_id": event.message_id,
                "usage": event.usage,
                "status": event.status,
            }
            reason = "stop" if event.status == "complete" else "other"
            return [*out, {"type": "finish", "finishReason": reason, "messageMetadata": metadata}]
        assert isinstance(event, Error)
        failed = error_chunk(
            event.code,
            event.message,
            retryable=event.retryable,
            stored_through=event.stored_through,
        )
        return [*out, failed]

    def _close_text(self) -> list[Chunk]:
        if self._text is None:
            return []
        closed, self._text = self._text, None
        return [{"type": "text-end", "id": closed}]

    def _close_reasoning(self) -> list[Chunk]:
        if self._reasoning is None:
            return []
        closed, self._reasoning = self._reasoning, None
        return [{"type": "reasoning-end", "id": closed}]

    def _next_step(self) -> list[Chunk]:
        """The model speaks again after its tools answered: a new step (choice 2)."""
        if not self._tools_answered:
            return []
        self._tools_answered = False
        return [{"type": "finish-step"}, {"type": "start-step"}]


def tool_output(event: ToolResultEvent) -> Chunk:
    output = event.output
    if isinstance(output, dict) and isinstance(output.get("error"), str):
        message = output.get("message")
        error_text = message if isinstance(message, str) else output["error"]
        return {"type": "tool-output-error", "toolCallId": event.call_id, "errorText": error_text}
    return {"type": "tool-output-available", "toolCallId": event.call_id, "output": output}


def error_chunk(
    code: str, message: str, *, retryable: bool, stored_through: int | None = None
) -> Chunk:
    """Choice 4: our error, in the shape of the service's HTTP error bodies; with the error
    event's `stored_through` when it has one."""
    error: dict[str, Any] = {"code": code, "message": message, "retryable": retryable}
    if stored_through is not None:
        error["stored_through"] = stored_through
    return {"type": "error", "errorText": _json({"error": error})}


def frame(chunks: list[Chunk]) -> bytes:
    return b"".join(f"data: {_json(chunk)}\n\n".encode() for chunk in chunks)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
