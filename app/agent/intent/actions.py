"""What a message asks for (its actions) and what the model does next (a step): plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal[
    "add",
    "list",
    "search",
    "complete",
    "reopen",
    "delete",
    "rename",
    "greet",
    "thank",
    "help",
    "say",
]
Status = Literal["pending", "completed", "all"]

CHANGES: frozenset[Action] = frozenset({"add", "complete", "reopen", "delete", "rename"})
"""The actions that change the list, as tool calls."""


@dataclass(frozen=True, slots=True)
class Intent:
    """One action of a message."""

    action: Action
    titles: tuple[str, ...] = ()  # add: one per task
    status: Status = "all"  # list; and which tasks `every` means
    task_ids: tuple[int, ...] = ()
    words: str | None = None  # the tasks named in the user's words, found once listed
    every: bool = False  # every task of `status`: "mark everything as done"
    new_title: str | None = None
    reply: str | None = None  # say: the answer, without tools
    refers_back: bool = False  # "it": the task named elsewhere in the message
    added: int | None = None  # the task of the message's add with this index ("add X, mark it…")


@dataclass(frozen=True, slots=True)
class Request:
    """Everything a message asks for, in the order it was said."""

    actions: tuple[Intent, ...]

    @classmethod
    def of(cls, *actions: Intent) -> Request:
        return cls(tuple(actions))


@dataclass(frozen=True, slots=True)
class ToolCallPlan:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """One model response: tool calls to make together (with a line of thinking), or the
    reply."""

    thinking: str | None = None
    calls: tuple[ToolCallPlan, ...] = ()
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    output: dict[str, Any] = field(default_factory=dict)
