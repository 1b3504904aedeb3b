"""The typed events of a chat turn's stream, defined once for every transport."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Start:
    type: ClassVar[str] = "start"
    conversation_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class Thinking:
    type: ClassVar[str] = "thinking"
    message: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    type: ClassVar[str] = "tool_call"
    call_id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    type: ClassVar[str] = "tool_result"
    call_id: str
    name: str
    output: Any


@dataclass(frozen=True, slots=True)
class Text:
    type: ClassVar[str] = "text"
    content: str


@dataclass(frozen=True, slots=True)
class Done:
    type: ClassVar[str] = "done"
    conversation_id: int
    message_id: int
    usage: dict[str, int]


@dataclass(frozen=True, slots=True)
class Error:
    type: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool = False


AgentEvent = Thinking | ToolCallEvent | ToolResultEvent | Text
"""What the agent produces while it works."""

Event = Start | AgentEvent | Done | Error
"""Everything a client of the stream can receive."""


def to_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": event.type}
    for field in fields(event):
        payload[field.name] = getattr(event, field.name)
    return payload
