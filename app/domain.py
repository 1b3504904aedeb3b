"""The plain objects a chat turn works with, free of any framework."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
CONVERSATION_TITLE_CHARS = 50


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """The text with what PostgreSQL cannot store (U+0000, and lone surrogates, which UTF-8
    cannot encode) replaced by U+FFFD. A model may produce either; a client may not send them."""
    return _UNSTORABLE.sub("\ufffd", text)


def storable_json(value: Any) -> Any:
    """A JSON value with every string in it (keys too) `storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(key)): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value


def has_unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def one_line(text: str) -> str:
    """The text with each run of whitespace (line breaks included) made one space, trimmed."""
    return " ".join(text.split())


def task_title(raw: str) -> str | None:
    """A task's title as stored: on one line, 1 to `MAX_TITLE_CHARS` characters; None if the
    raw title cannot make one. The REST API and the model's tools both go by it."""
    title = one_line(raw)
    return title if 0 < len(title) <= MAX_TITLE_CHARS else None


def conversation_title(first_message: str) -> str:
    """A new conversation's title: its first message on one line, cut with an ellipsis."""
    text = one_line(first_message)
    if len(text) <= CONVERSATION_TITLE_CHARS:
        return text
    return text[: CONVERSATION_TITLE_CHARS - 1].rstrip() + "…"


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    ERROR = "error"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    ACTIVE = "active"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    ERROR = "error"
    CANCELLED = "cancelled"


class TaskFilter(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class ToolCall:
    """One tool call of an assistant message, with its result once it has one."""

    call_id: str
    name: str
    arguments: Any
    output: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "output": self.output,
        }


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    user_id: str
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    conversation_id: int
    role: Role
    content: str
    status: MessageStatus = MessageStatus.COMPLETE
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TaskChanges:
    title: str | None = None
    description: str | None = None
    completed: bool | None = None

    def is_empty(self) -> bool:
        return self.title is None and self.description is None and self.completed is None


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation as a client protocol names it: the id the client gave its chat (the AI
    SDK's chat id, AG-UI's `threadId`), one conversation per user, protocol and id."""

    protocol: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class StartedRun:
    """A run just stored with its user's message. The answer's id is reserved now, so that the
    run's end (and its final event, which names it) is one statement."""

    conversation_id: int
    user_message_id: int
    answer_message_id: int


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A client's key for one send, and a digest of what it sent: a repeated send with the key
    replays the run it started; the same key with another request is refused."""

    key: str
    digest: str

    @classmethod
    def of(cls, key: str, message: str, conversation_id: int | None) -> Idempotency:
        request = json.dumps([message, conversation_id], ensure_ascii=False)
        return cls(key, hashlib.sha256(request.encode("utf-8", "surrogatepass")).hexdigest())


@dataclass(frozen=True, slots=True)
class ConversationState:
    """What a new turn in a conversation must know first: the run going on in it, if any, and
    how many runs its user has going."""

    active_run_id: str | None
    active_runs_of_user: int


@dataclass(frozen=True, slots=True)
class Run:
    """One chat turn, owned by the server: it outlives the request that started it."""

    id: str
    user_id: str
    conversation_id: int
    status: RunStatus
    user_message_id: int
    assistant_message_id: int | None
    last_seq: int
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """What the model needs to answer one message, read in the turn's first transaction."""

    run_id: str
    user_id: str
    conversation_id: int
    user_message_id: int
    answer_message_id: int
    message: str
    history: tuple[Message, ...] = field(default=())


class NotFound(Exception):
    """The object does not exist, or belongs to someone else: the caller cannot tell which."""


class ConversationNotFound(NotFound):
    pass


class TaskNotFound(NotFound):
    pass


class RunNotFound(NotFound):
    pass


class RunActive(Exception):
    """The conversation already has a run in progress."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


class TooManyRuns(Exception):
    """The user has as many runs in progress as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class IdempotencyKeyReused(Exception):
    """The client's idempotency key was sent before with another request."""


class RegenerateUnsupported(Exception):
    """An AI SDK client asked to regenerate an answer: the stored history is append-only."""


class TooManyFollowers(Exception):
    """The user follows as many streams on this instance as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class ShuttingDown(Exception):
    """The service is stopping and takes no new runs."""


class EventLogUnavailable(Exception):
    """The event log (kept apart from the database: Redis) cannot be reached: a send would
    start a run that no other instance could follow or recover."""


class TaskBook(Protocol):
    """One user's tasks. Whoever holds it acts for that user and no other."""

    async def add(self, title: str, description: str | None = None) -> Task: ...

    async def list(
        self, status: TaskFilter = TaskFilter.ALL, *, limit: int = 1000, after_id: int = 0
    ) -> list[Task]: ...

    async def update(self, task_id: int, changes: TaskChanges) -> Task: ...

    async def delete(self, task_id: int) -> Task: ...


class AgentFailed(Exception):
    """The agent could not finish a turn. `code` is stable and safe to show; details go to
    the log through the chained exception."""

    def __init__(self, code: str, *, retryable: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.retryable = retryable
