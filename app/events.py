"""The typed events of a chat turn's stream, defined once for every transport."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from app.domain import MessageStatus, ToolCall, storable_json


@dataclass(frozen=True, slots=True)
class Start:
    type: ClassVar[str] = "start"
    conversation_id: int
    message_id: int
    run_id: str


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
    status: str = "complete"


@dataclass(frozen=True, slots=True)
class Error:
    type: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool = False
    stored_through: int | None = field(
        default=None,
        metadata={
            "description": (
                "Only on the final event of a run closed after the instance running it was "
                "gone: the last seq the stored answer holds. Clients may have been shown "
                "events past it, which were never stored; the seqs between it and this "
                "event's are never used."
            )
        },
    )


# What users are told when a run ends in an error, per code (the codes are stable; the words may
# change): what happened, then what to do, worded from the error's `retryable` flag, so that a
# message never invites the resend its flag advises against (after a tool ran, a resend would do
# it twice). Provider and database details never reach users: they go to the log.
ERROR_MESSAGES = {
    "agent_failed": "Sorry, something went wrong while answering.",
    "max_turns_exceeded": (
        "The assistant took too many steps on this request and was stopped before it could reply."
    ),
    "rate_limited": "The assistant is busy right now.",
    "model_timeout": "The assistant took too long to answer.",
    "model_unavailable": "The assistant can't be reached right now.",
    "model_error": "The assistant gave an answer that could not be used.",
    "interrupted": "The answer was interrupted.",
    "server_restarting": "The service is restarting.",
    "events_missing": (
        "Part of this answer could not be shown here: reload the conversation to read it."
    ),
    "follow_failed": (
        "The rest of this answer could not be shown here: reload the conversation to read it."
    ),
}

RETRY_ADVICE = "Please try again."
"""What a retryable error adds (the page offers its Retry button beside it); some codes say
when, in `_RETRY_WHEN`."""

_RETRY_WHEN = {
    "rate_limited": "Please try again in a moment.",
    "model_unavailable": "Please try again shortly.",
    "interrupted": "Please send your message again.",
    "server_restarting": "Please send your message again.",
}

NO_RETRY_ADVICE = (
    "Anything it already did to your list stays done: check your list before asking for more."
)
"""What an error that is not retryable adds instead: it may have changed the list already."""


def error_message(code: str, *, retryable: bool) -> str:
    """The message of an error event: its code's words and the advice its flag calls for."""
    advice = _RETRY_WHEN.get(code, RETRY_ADVICE) if retryable else NO_RETRY_ADVICE
    return f"{ERROR_MESSAGES[code]} {advice}"


def error_event(code: str, *, retryable: bool = False) -> Error:
    return Error(code, error_message(code, retryable=retryable), retryable)


def interrupted(*, retryable: bool, stored_through: int | None = None) -> Error:
    """The final event of a run that could not finish, or whose end could not be stored;
    `stored_through` when the stored answer may hold less than clients were shown."""
    message = error_message("interrupted", retryable=retryable)
    return Error("interrupted", message, retryable, stored_through)


AgentEvent = Thinking | ToolCallEvent | ToolResultEvent | Text
"""What the agent produces while it works."""

Event = Start | AgentEvent | Done | Error
"""Everything a client of the stream can receive."""


TERMINAL_TYPES = frozenset({Done.type, Error.type})


def to_payload(event: Event) -> dict[str, Any]:
    """The event's fields by name, `type` first. A field whose default is None is left out
    while it is None: adding one changes no other event on the wire."""
    payload: dict[str, Any] = {"type": event.type}
    for name in _FIELD_NAMES[event.type]:
        value = getattr(event, name)
        if value is not None or name not in _OMITTED_WHEN_NONE[event.type]:
            payload[name] = value
    return payload


def stored_through(final: LoggedEvent) -> int | None:
    """The last seq of the stored answer that a run's final event declares, if it declares
    one: the events of the log end there, and the next is this final event."""
    if final.type != Error.type:
        return None
    value = json.loads(final.data).get("stored_through")
    return value if type(value) is int else None


# The largest `seq` there can be: every event log keeps it in a PostgreSQL integer's range.
MAX_SEQ = 2**31 - 1


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event of a run as it is logged and sent: its sequence number and its JSON."""

    seq: int
    data: str

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    @property
    def type(self) -> str:
        # The JSON always starts with {"type":"...", as encode() writes it.
        return self.data[9 : self.data.index('"', 9)]


def encode(event: Event, seq: int) -> LoggedEvent:
    """The one place events become JSON: one line, `type` first, `seq` last; what PostgreSQL
    cannot store replaced (`storable`), so that clients, the log and the stored answer agree."""
    payload = storable_json(to_payload(event))
    payload["seq"] = seq
    return LoggedEvent(seq, _JSON.encode(payload))


# `json.dumps` with any argument of its own builds an encoder at each call, a fifth of an
# event's encoding (docs/performance.md, "CPU per turn by layer").
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


_EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (Start, Thinking, ToolCallEvent, ToolResultEvent, Text, Done, Error)
}
_FIELD_NAMES = {
    name: tuple(item.name for item in fields(cls)) for name, cls in _EVENT_TYPES.items()
}
_OMITTED_WHEN_NONE = {
    name: frozenset(item.name for item in fields(cls) if item.default is None)
    for name, cls in _EVENT_TYPES.items()
}


def omitted_when_none(cls: type[Event]) -> frozenset[str]:
    """The fields of an event type that its JSON leaves out while they are None (for the
    schema /openapi.json shows: present, they are never null)."""
    return _OMITTED_WHEN_NONE[cls.type]


def decode(event: LoggedEvent) -> Event:
    payload = json.loads(event.data)
    cls = _EVENT_TYPES[payload["type"]]
    return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})


@dataclass
class Transcript:
    """What the agent has produced so far in a run: the answer's text and its tool calls."""

    text: list[str] = field(default_factory=list)
    tool_calls: dict[str, ToolCall] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Iterable[Event]) -> Transcript:
        transcript = cls()
        for event in events:
            transcript.record(event)
        return transcript

    def record(self, event: Event) -> None:
        if isinstance(event, Text):
            self.text.append(event.content)
        elif isinstance(event, ToolCallEvent):
            self.tool_calls[event.call_id] = ToolCall(event.call_id, event.name, event.arguments)
        elif isinstance(event, ToolResultEvent):
            call = self.tool_calls.setdefault(
                event.call_id, ToolCall(event.call_id, event.name, None)
            )
            call.output = event.output

    @property
    def content(self) -> str:
        return "".join(self.text)

    @property
    def safe_to_retry(self) -> bool:
        """Whether sending the message again cannot repeat what this answer did: no tool was
        called (a retry after `add_task` would add the task twice). A failed run's error says
        `retryable` only then."""
        return not self.tool_calls

    def failed_status(self) -> MessageStatus:
        """The status of an answer that did not finish: incomplete if it had begun."""
        return MessageStatus.INCOMPLETE if self.text or self.tool_calls else MessageStatus.ERROR
