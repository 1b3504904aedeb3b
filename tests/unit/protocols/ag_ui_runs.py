"""Runs of our events as the engine logs them, for the AG-UI tests: scripted ones, and a
hypothesis strategy for any run the engine can produce. tests/unit/protocols/test_ag_ui.py reads
the frames they become; tests/protocols/test_ag_ui_clients.py hands the same frames to the real
`@ag-ui/client` packages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from app.agent.tools import task_json
from app.domain import Task
from app.events import (
    Done,
    Event,
    LoggedEvent,
    Start,
    Text,
    Thinking,
    ToolCallEvent,
    ToolResultEvent,
    encode,
    error_event,
)
from app.protocols.ag_ui import AgUiStream
from app.protocols.ag_ui_request import AgUiVersion

RUN = "run-7c9e"
CONVERSATION = 7
ANSWER = 70
USAGE = {"requests": 2, "input_tokens": 46, "output_tokens": 12, "total_tokens": 58}
_NOW = datetime(2025, 1, 1, tzinfo=UTC)


def task(task_id: int, title: str, *, completed: bool = False) -> Task:
    return Task(task_id, "alice", title, None, completed, _NOW, _NOW)


@dataclass(frozen=True)
class ScriptedRun:
    """A run's events in the batches the transport hands over, the task list the route reads
    before the run, and the list the run leaves (what the client's state must end as)."""

    batches: list[list[Event]]
    tasks: list[Task]
    tasks_after: list[dict[str, Any]] = field(default_factory=list)

    def logged(self) -> list[list[LoggedEvent]]:
        seq = 0
        out = []
        for batch in self.batches:
            logged = []
            for event in batch:
                seq += 1
                logged.append(encode(event, seq))
            out.append(logged)
        return out

    @property
    def last_seq(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def stream(
        self, version: AgUiVersion, *, after_seq: int = 0, thread: str = "thread-1"
    ) -> AgUiStream:
        return AgUiStream(
            thread_id=thread,
            run_id="client-run-1",
            service_run_id=RUN,
            version=version,
            tasks=self.tasks,
            after_seq=after_seq,
        )

    def writes(self, version: AgUiVersion, *, after_seq: int = 0) -> list[bytes]:
        """What the transport writes: one write per batch, the opening with the first."""
        stream = self.stream(version, after_seq=after_seq)
        writes = [stream.frames(batch) for batch in self.logged()]
        writes[0] = stream.opening() + writes[0]
        return writes


_MILK, _BREAD = task(1, "Buy milk"), task(2, "Buy bread")

TOOL_TURN = ScriptedRun(
    tasks=[_MILK],
    batches=[
        [Start(CONVERSATION, ANSWER, RUN)],
        [Thinking("The user wants bread "), Thinking("and milk done.")],
        [Text("I'll add "), Text("bread and tick off milk.")],
        [
            ToolCallEvent("call_1", "add_task", {"title": "Buy bread"}),
            ToolCallEvent("call_2", "complete_task", {"task_id": 1}),
        ],
        [
            ToolResultEvent("call_1", "add_task", {"task": task_json(_BREAD)}),
            ToolResultEvent(
                "call_2", "complete_task", {"task": task_json(task(1, "Buy milk", completed=True))}
            ),
        ],
        [Text("Added "), Text("bread and "), Text("ticked off milk.")],
        [Done(CONVERSATION, ANSWER, USAGE)],
    ],
    tasks_after=[task_json(task(1, "Buy milk", completed=True)), task_json(_BREAD)],
)

FAILED = ScriptedRun(
    tasks=[_MILK],
    batches=[
        [Start(CONVERSATION, ANSWER, RUN)],
        [Text("Let me ")],
        [Text("look.")],
        [error_event("model_unavailable", retryable=True)],
    ],
    tasks_after=[task_json(_MILK)],
)

CANCELLED = ScriptedRun(
    tasks=[_MILK],
    batches=[
        [Start(CONVERSATION, ANSWER, RUN)],
        [Text("Sure, ")],
        [Text("one moment")],
        [Done(CONVERSATION, ANSWER, USAGE, "cancelled")],
    ],
    tasks_after=[task_json(_MILK)],
)

SCRIPTED = {"tool_turn": TOOL_TURN, "failed": FAILED, "cancelled": CANCELLED}

_TOOLS = ("add_task", "complete_task", "update_task", "delete_task", "list_tasks", "no_such_tool")
_words = st.text(alphabet="abc xyz", max_size=6)


@st.composite
def scripted_runs(draw: st.DrawFn) -> ScriptedRun:
    """Any run the engine can log: `start`, then steps of the model's output (thinking and
    text in any order, then tool calls, several at once, answered in any order), and an end
    (done, cancelled or an error, which may come at any point), in batches of any size."""
    ids = sorted(draw(st.sets(st.integers(1, 9), max_size=3)))
    tasks = [task(i, f"task {i}") for i in ids]
    held = {t.id: task_json(t) for t in tasks}
    events: list[Event] = [Start(CONVERSATION, ANSWER, RUN)]
    new_id = 10
    for step in range(draw(st.integers(0, 3))):
        for kind, words in draw(st.lists(st.tuples(st.booleans(), _words), max_size=4)):
            events.append(Thinking(words) if kind else Text(words))
        calls = [
            (f"call_{step}_{n}", name)
            for n, name in enumerate(draw(st.lists(st.sampled_from(_TOOLS), max_size=3)))
        ]
        events += [ToolCallEvent(call_id, name, {"n": 1}) for call_id, name in calls]
        for call_id, name in draw(st.permutations(calls)):
            output, new_id = _result(name, held, draw(st.integers(1, 12)), new_id)
            events.append(ToolResultEvent(call_id, name, output))
    for kind, words in draw(st.lists(st.tuples(st.booleans(), _words), max_size=3)):
        events.append(Thinking(words) if kind else Text(words))
    ending = draw(st.sampled_from(["complete", "cancelled", "error"]))
    if ending != "complete":
        events = events[: draw(st.integers(1, len(events)))]
        held = _replayed(tasks, events)
    end: Event = (
        error_event("agent_failed")
        if ending == "error"
        else Done(CONVERSATION, ANSWER, USAGE, ending)
    )
    events.append(end)
    cuts = sorted(draw(st.sets(st.integers(1, len(events) - 1), max_size=len(events) - 1)))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    return ScriptedRun(batches, tasks, list(held.values()))


def _result(
    name: str, held: dict[int, dict[str, Any]], task_id: int, new_id: int
) -> tuple[Any, int]:
    """What the todo tool answers, and the task list (`held`) changed as the tool would."""
    if name == "add_task":
        added = task_json(task(new_id, f"new {new_id}"))
        held[new_id] = added
        return {"task": added}, new_id + 1
    if name == "list_tasks":
        return {"status": "all", "tasks": list(held.values())}, new_id
    if name == "no_such_tool":
        return "a result that is not JSON", new_id
    if task_id not in held:
        message = f"There is no task #{task_id}."
        return {"error": "not_found", "task_id": task_id, "message": message}, new_id
    if name == "delete_task":
        return {"deleted": held.pop(task_id)}, new_id
    changed = {**held[task_id], "completed": True, "title": f"task {task_id}!"}
    held[task_id] = changed
    return {"task": changed}, new_id


def _replayed(tasks: list[Task], events: list[Event]) -> dict[int, dict[str, Any]]:
    """The task list after the results among `events` (a run cut short)."""
    held = {t.id: task_json(t) for t in tasks}
    for event in events:
        if not isinstance(event, ToolResultEvent) or not isinstance(event.output, dict):
            continue
        if isinstance(changed := event.output.get("task"), dict):
            held[changed["id"]] = changed
        elif isinstance(deleted := event.output.get("deleted"), dict):
            held.pop(deleted["id"], None)
    return held
