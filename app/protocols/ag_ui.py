"""AG-UI, the Agent-User Interaction protocol: a run's events as the Server-Sent Events that
`@ag-ui/client`'s `HttpAgent.runAgent()` reads (and CopilotKit on top of it). Both client lines
are served, each what it accepts: 1.0 (`protocolVersion` "1.0" in the request) and the 0.0
line (no `protocolVersion`; 0.0.59 is what CopilotKit's React packages pin). The request is
`app.protocols.ag_ui_request`; what the clients' sources say, with paths: docs/ag-ui.md.

Choices made on purpose, do not "fix" them:

1. **Framing.** Each AG-UI event is one `data:` block ending in exactly `\\n\\n`: the client
   splits the body on that string alone, so sse-starlette's default CRLF separator would leave
   it one unparseable blob. Our seq travels in an `id: <run_id>:<seq>` line (as `app.sse.frame`
   writes ids) on the last block of what one of our events became (its *group*), never in the
   JSON: 1.0 strips a field it does not know, with a warning. A group that is no AG-UI event
   (empty text) is a bare `id:` block; the client skips blocks without `data:`. The resuming
   client (docs/ag-ui.md) hands its parser whole groups only, so a cut never leaves it half a
   tool call. The keep-alive is a comment block.
2. **Messages.** The model's output between two rounds of tool results is one *step*, and one
   assistant message: its text (`TEXT_MESSAGE_*`, reopened under the same id after reasoning)
   and its tool calls (`TOOL_CALL_START.parentMessageId` names it). Without that parent the
   client makes an assistant message per tool call, apart from the text that led to them.
   Reasoning is a message of its own (`REASONING_*`; the `THINKING_*` events left in 1.0).
   Ids are made from our run's id and the seq that opened them: the same on a replay and on a
   resume, and unique in a thread. Tool call ids are the model's, prefixed with our run's id:
   a model may reuse `call_1` in the next run, and the client would then take the new call
   for a replay of the old one and attach it there.
3. **State** is `{"tasks": [...]}`, each task as the todo tools return it (`app.agent.tools`'s
   `task_json`). `STATE_SNAPSHOT` follows `RUN_STARTED`; a result of a todo tool that changed
   a task is followed by a `STATE_DELTA` (RFC 6902). The list given to the constructor may be
   read after the run changed it (a retried send joins the run and replays it; a resume reads
   it now), so results are applied by task id: adding a task the list holds replaces it,
   deleting one it lacks changes nothing, and the deltas always fit the snapshot sent.
4. **Endings.** Open messages are closed, then `RUN_FINISHED` or `RUN_ERROR`, and nothing
   after it. `RUN_FINISHED` carries `usage` (integer token counts; both lines accept it) and,
   for a completed run, `result`: our conversation, message and run ids (what `runAgent()`
   resolves with). A cancelled run is `outcome: {"type": "cancelled"}` for 1.0; the 0.0 line
   knows no such outcome (its schema refuses it, failing the run), so there it is a plain
   finish whose `result.status` is "cancelled". `RUN_ERROR` has our code and our message
   only. Our ids and `retryable` ride in `metadata.todo_chat`, a field both lines know; so
   does `stored_through`, on the final event of a run closed after its instance died (the
   last seq the stored answer holds, as in our `id:` lines: a client shown more knows the
   rest was never stored).
5. **Resume** (`after_seq`, the seq in the client's Last-Event-ID): the route feeds the run
   from its first event even then; those up to `after_seq` only rebuild this translator's
   state. At the crossing it sends what a fresh client pipeline needs before the rest:
   `RUN_STARTED`, a `STATE_SNAPSHOT` of the tasks as they now are, and the opening event of
   a message left open at the cut, under its id (the client appends to a message it holds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

from app.domain import MessageStatus, Task
from app.events import (
    Done,
    Error,
    Event,
    LoggedEvent,
    Start,
    Text,
    Thinking,
    ToolCallEvent,
    ToolResultEvent,
    decode,
)
from app.protocols.ag_ui_request import AgUiVersion
from app.protocols.base import WireFormat

PING = b": ping\n\n"
METADATA_KEY = "todo_chat"
# The todo tools whose results change the task list (app/agent/tools.py): these return the
# task as it now is under "task"; delete_task returns the deleted one under "deleted".
TASK_WRITING_TOOLS = frozenset({"add_task", "complete_task", "update_task"})
TASK_DELETING_TOOL = "delete_task"
_USAGE_FIELDS = {
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "total_tokens": "totalTokens",
}

AgUiEvent = dict[str, Any]


class AgUiStream(WireFormat):
    """One response's stream of a run, for one client line (choices 1 to 5 above)."""

    def __init__(
        self,
        *,
        thread_id: str,
        run_id: str,
        service_run_id: str,
        version: AgUiVersion,
        tasks: Iterable[Task],
        after_seq: int = 0,
    ) -> None:
        """`thread_id` and `run_id` are the client's (echoed in `RUN_STARTED` and
        `RUN_FINISHED`); `service_run_id` is our run's, which names messages and `id:` lines;
        `tasks` is the user's task list as it is now; `after_seq` is where a resuming client is
        (0: from the start)."""
        super().__init__()
        self._client_thread_id = thread_id
        self._client_run_id = run_id
        self._service_run_id = service_run_id
        self._version = version
        self._tasks = _TaskList(tasks)
        self._after_seq = after_seq
        self._live = after_seq == 0
        self._announced = False
        self._conversation_id: int | None = None
        self._step: str | None = None
        self._tools_answered = False
        self._text: str | None = None
        self._reasoning: str | None = None

    @property
    def keep_alive(self) -> bytes:
        return PING

    def frames(self, batch: Sequence[LoggedEvent]) -> bytes:
        out: list[bytes] = []
        for logged in batch:
            if self.ended:
                break
            if not self._live and logged.seq > self._after_seq:
                out.append(self._resume())
            group = self._translate(decode(logged), logged.seq)
            if self._live:
                out.append(_group(group, f"{self._service_run_id}:{logged.seq}"))
        if not (self._live or self.ended) and batch and batch[-1].seq >= self._after_seq:
            out.append(self._resume())
        return b"".join(out)

    def _resume(self) -> bytes:
        """Choice 5: what a new client pipeline needs before the events after `after_seq`."""
        self._live = True
        self._announced = True
        group = [self._run_started(), self._snapshot()]
        if self._text is not None:
            group.append(_text_start(self._text))
        if self._reasoning is not None:
            group.extend(_reasoning_start(self._reasoning))
        return _group(group, f"{self._service_run_id}:{self._after_seq}")

    def _translate(self, event: Event, seq: int) -> list[AgUiEvent]:
        if isinstance(event, Start):
            self._conversation_id = event.conversation_id
            return [] if self._announced else self._announce()
        out = [] if self._announced else self._announce()
        if isinstance(event, Thinking):
            self._next_step()
            out += self._close_text()
            if self._reasoning is None:
                self._reasoning = f"{self._service_run_id}-reasoning-{seq}"
                out += _reasoning_start(self._reasoning)
            if event.message:
                out.append(_delta("REASONING_MESSAGE_CONTENT", self._reasoning, event.message))
        elif isinstance(event, Text):
            self._next_step()
            out += self._close_reasoning()
            if self._text is None:
                self._text = self._step_message(seq)
                out.append(_text_start(self._text))
            if event.content:
                out.append(_delta("TEXT_MESSAGE_CONTENT", self._text, event.content))
        elif isinstance(event, ToolCallEvent):
            self._next_step()
            out += self._close_text() + self._close_reasoning()
            out += self._tool_call(event, self._step_message(seq))
        elif isinstance(event, ToolResultEvent):
            out += self._close_text() + self._close_reasoning()
            out += self._tool_result(event, seq)
        else:
            out += self._close_text() + self._close_reasoning()
            out.append(self._finished(event) if isinstance(event, Done) else self._failed(event))
            self.ended = True
        return out

    def _announce(self) -> list[AgUiEvent]:
        self._announced = True
        return [self._run_started(), self._snapshot()]

    def _run_started(self) -> AgUiEvent:
        started: AgUiEvent = {
            "type": "RUN_STARTED",
            "threadId": self._client_thread_id,
            "runId": self._client_run_id,
        }
        if self._version is AgUiVersion.V1:
            started["protocolVersion"] = AgUiVersion.V1.value
        started["metadata"] = self._metadata()
        return started

    def _snapshot(self) -> AgUiEvent:
        return {"type": "STATE_SNAPSHOT", "snapshot": self._tasks.state()}

    def _metadata(self, **more: Any) -> dict[str, Any]:
        ours: dict[str, Any] = {"run_id": self._service_run_id}
        if self._conversation_id is not None:
            ours["conversation_id"] = self._conversation_id
        return {METADATA_KEY: {**ours, **more}}

    def _step_message(self, seq: int) -> str:
        """The assistant message of the model's current step, named when first needed."""
        if self._step is None:
            self._step = f"{self._service_run_id}-assistant-{seq}"
        return self._step

    def _next_step(self) -> None:
        """The model speaks again after its tools answered: a new step, a new message."""
        if self._tools_answered:
            self._tools_answered = False
            self._step = None

    def _close_text(self) -> list[AgUiEvent]:
        if self._text is None:
            return []
        closed, self._text = self._text, None
        return [{"type": "TEXT_MESSAGE_END", "messageId": closed}]

    def _close_reasoning(self) -> list[AgUiEvent]:
        if self._reasoning is None:
            return []
        closed, self._reasoning = self._reasoning, None
        return [
            {"type": "REASONING_MESSAGE_END", "messageId": closed},
            {"type": "REASONING_END", "messageId": closed},
        ]

    def _tool_call(self, event: ToolCallEvent, parent: str) -> list[AgUiEvent]:
        call_id = self._call_id(event.call_id)
        arguments = _as_text(event.arguments)
        out: list[AgUiEvent] = [
            {
                "type": "TOOL_CALL_START",
                "toolCallId": call_id,
                "toolCallName": event.name,
                "parentMessageId": parent,
            }
        ]
        if arguments:
            out.append({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": arguments})
        out.append({"type": "TOOL_CALL_END", "toolCallId": call_id})
        return out

    def _tool_result(self, event: ToolResultEvent, seq: int) -> list[AgUiEvent]:
        self._tools_answered = True
        out: list[AgUiEvent] = [
            {
                "type": "TOOL_CALL_RESULT",
                "messageId": f"{self._service_run_id}-tool-{seq}",
                "toolCallId": self._call_id(event.call_id),
                "content": _as_text(event.output),
                "role": "tool",
            }
        ]
        patch = self._tasks.apply(event)
        if patch:
            out.append({"type": "STATE_DELTA", "delta": patch})
        return out

    def _call_id(self, model_call_id: str) -> str:
        return f"{self._service_run_id}-{model_call_id}"

    def _finished(self, event: Done) -> AgUiEvent:
        ours = {"conversation_id": event.conversation_id, "message_id": event.message_id}
        details = {"run_id": self._service_run_id, **ours, "status": event.status}
        finished: AgUiEvent = {
            "type": "RUN_FINISHED",
            "threadId": self._client_thread_id,
            "runId": self._client_run_id,
        }
        cancelled = event.status == MessageStatus.CANCELLED
        if self._version is AgUiVersion.V1:
            finished["outcome"] = {"type": "cancelled" if cancelled else "success"}
        if self._version is not AgUiVersion.V1 or not cancelled:
            finished["result"] = details
        usage = _usage(event.usage)
        if usage:
            finished["usage"] = [usage]
        finished["metadata"] = {METADATA_KEY: details}
        return finished

    def _failed(self, event: Error) -> AgUiEvent:
        ours: dict[str, Any] = {"retryable": event.retryable}
        if event.stored_through is not None:
            ours["stored_through"] = event.stored_through
        return {
            "type": "RUN_ERROR",
            "message": event.message,
            "code": event.code,
            "metadata": self._metadata(**ours),
        }


class _TaskList:
    """The task list as the client holds it, and the JSON Patch for each change (choice 3)."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self._tasks = [
            {"id": t.id, "title": t.title, "description": t.description, "completed": t.completed}
            for t in tasks
        ]

    def state(self) -> dict[str, Any]:
        return {"tasks": list(self._tasks)}

    def apply(self, result: ToolResultEvent) -> list[dict[str, Any]]:
        output = result.output
        if not isinstance(output, dict):
            return []
        if result.name in TASK_WRITING_TOOLS and _is_task(task := output.get("task")):
            return self._put(task)
        if result.name == TASK_DELETING_TOOL and _is_task(task := output.get("deleted")):
            return self._remove(task["id"])
        return []

    def _index(self, task_id: int) -> int | None:
        return next((i for i, task in enumerate(self._tasks) if task["id"] == task_id), None)

    def _put(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        value = {key: task[key] for key in ("id", "title", "description", "completed")}
        index = self._index(value["id"])
        if index is None:
            self._tasks.append(value)
            return [{"op": "add", "path": "/tasks/-", "value": value}]
        if self._tasks[index] == value:
            return []
        self._tasks[index] = value
        return [{"op": "replace", "path": f"/tasks/{index}", "value": value}]

    def _remove(self, task_id: int) -> list[dict[str, Any]]:
        index = self._index(task_id)
        if index is None:
            return []
        del self._tasks[index]
        return [{"op": "remove", "path": f"/tasks/{index}"}]


def _is_task(value: Any) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(value, dict)
        and type(value.get("id")) is int
        and isinstance(value.get("title"), str)
        and (value.get("description") is None or isinstance(value.get("description"), str))
        and type(value.get("completed")) is bool
    )


def _delta(kind: str, message_id: str, delta: str) -> AgUiEvent:
    return {"type": kind, "messageId": message_id, "delta": delta}


def _text_start(message_id: str) -> AgUiEvent:
    return {"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"}


def _reasoning_start(message_id: str) -> list[AgUiEvent]:
    return [
        {"type": "REASONING_START", "messageId": message_id},
        {"type": "REASONING_MESSAGE_START", "messageId": message_id, "role": "reasoning"},
    ]


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    """Our token counts in AG-UI's names; only non-negative integers (its schema's rule)."""
    return {
        name: usage[ours]
        for ours, name in _USAGE_FIELDS.items()
        if type(usage.get(ours)) is int and usage[ours] >= 0
    }


def _as_text(value: Any) -> str:
    """Tool arguments and results as the client's messages hold them: JSON text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _group(events: list[AgUiEvent], event_id: str) -> bytes:
    """What one of our events became: a `data:` block per AG-UI event, the last with our id
    (choice 1)."""
    blocks = [f"data: {_json(event)}\n" for event in events] or [""]
    return ("\n".join(blocks) + f"id: {event_id}\n\n").encode()
