"""The offline model against a corpus of everyday requests, judged on the tool calls
it makes and the task list it leaves, not on the wording of its replies.

`make bench-intent` (tools/bench_intent.py) prints the failures, the pass rate and the time
the offline model takes per message.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.agent.intent import ToolCallPlan, ToolResult, next_step, understand
from app.domain import task_title

CORPUS = Path(__file__).with_name("offline_corpus.toml")
REQUIRED_RATE = 0.95
MAX_STEPS = 10  # the service's default AGENT_MAX_TURNS
_LISTED_TASK = re.compile(r"^#(?P<id>\d+) (?P<title>.+?)(?P<done> \(done\))?$")

TaskState = tuple[int, str, bool]


@dataclass(frozen=True, slots=True)
class Case:
    category: str
    message: str
    start: list[TaskState]
    calls: list[dict[str, Any] | list[dict[str, Any]]]
    final: list[TaskState]
    lists: str | None = None
    no_tools: bool = False
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Turn:
    calls: list[ToolCallPlan]
    changes: list[ToolCallPlan]  # the calls that changed the list (not lookups, not refused)
    final: list[TaskState]
    reply: str | None
    # The changes of each model response that made any, in order: which calls came together.
    responses: list[list[ToolCallPlan]] = field(default_factory=list)

    @property
    def replied(self) -> bool:
        return self.reply is not None


class FakeTaskList:
    """An in-memory task list answering tool calls the way `app/agent/tools.py` does."""

    def __init__(self, tasks: list[TaskState]) -> None:
        self._tasks = {task_id: {"title": title, "done": done} for task_id, title, done in tasks}

    def state(self) -> list[TaskState]:
        return [(task_id, str(t["title"]), bool(t["done"])) for task_id, t in self._tasks.items()]

    def call(self, plan: ToolCallPlan) -> dict[str, Any]:
        arguments = plan.arguments
        if plan.name == "add_task":
            title = _clean_title(arguments.get("title"))
            if title is None:
                return {"error": "invalid_title", "message": "A title needs 1 to 200 characters."}
            task_id = max(self._tasks, default=0) + 1
            self._tasks[task_id] = {"title": title, "done": False}
            return {"task": self._json(task_id)}
        if plan.name == "list_tasks":
            status = arguments.get("status", "all")
            wanted = {"pending": [False], "completed": [True]}.get(status, [False, True])
            tasks = [self._json(i) for i, task in self._tasks.items() if task["done"] in wanted]
            return {"status": status, "tasks": tasks}
        task_id = int(arguments["task_id"])
        if task_id not in self._tasks:
            return {"error": "not_found", "task_id": task_id, "message": "There is no task."}
        if plan.name == "complete_task":
            self._tasks[task_id]["done"] = True
            return {"task": self._json(task_id)}
        if plan.name == "delete_task":
            deleted = self._json(task_id)
            del self._tasks[task_id]
            return {"deleted": deleted}
        if plan.name == "update_task":
            return self._update(task_id, arguments)
        raise AssertionError(f"no tool is called {plan.name}")

    def _update(self, task_id: int, arguments: dict[str, Any]) -> dict[str, Any]:
        title, completed = arguments.get("title"), arguments.get("completed")
        if title is not None and _clean_title(title) is None:
            return {"error": "invalid_title", "message": "A title needs 1 to 200 characters."}
        if title is None and completed is None and arguments.get("description") is None:
            return {"error": "nothing_to_change", "message": "Give a new title or state."}
        if title is not None:
            self._tasks[task_id]["title"] = _clean_title(title)
        if completed is not None:
            self._tasks[task_id]["done"] = bool(completed)
        return {"task": self._json(task_id)}

    def _json(self, task_id: int) -> dict[str, Any]:
        task = self._tasks[task_id]
        return {
            "id": task_id,
            "title": task["title"],
            "description": None,
            "completed": task["done"],
        }


def _clean_title(title: Any) -> str | None:
    return task_title(title) if isinstance(title, str) else None


def load_corpus(path: Path = CORPUS) -> list[Case]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    lists = {name: [_parse_task(line) for line in tasks] for name, tasks in data["lists"].items()}
    cases = []
    for entry in data["case"]:
        start = lists[entry["start"]]
        final = entry["final"]
        cases.append(
            Case(
                category=entry["category"],
                message=entry["message"],
                start=start,
                calls=entry["calls"],
                final=start if final == "same" else [_parse_task(line) for line in final],
                lists=entry.get("lists"),
                no_tools=entry.get("no_tools", False),
                mentions=tuple(entry.get("mentions", ())),
            )
        )
    return cases


def _parse_task(line: str) -> TaskState:
    match = _LISTED_TASK.match(line)
    assert match is not None, f"not a task: {line!r}"
    return int(match["id"]), match["title"], match["done"] is not None


def run_turn(message: str, start: list[TaskState]) -> Turn:
    """One chat turn as the SDK runs it: steps until a reply, each tool answered in between."""
    tasks = FakeTaskList(start)
    intent = understand(message)
    calls: list[ToolCallPlan] = []
    changes: list[ToolCallPlan] = []
    responses: list[list[ToolCallPlan]] = []
    results: list[ToolResult] = []
    for _ in range(MAX_STEPS):
        step = next_step(intent, results)
        if not step.calls:
            return Turn(calls, changes, tasks.state(), step.reply, responses)
        made: list[ToolCallPlan] = []
        for call in step.calls:
            output = tasks.call(call)
            calls.append(call)
            if call.name != "list_tasks" and "error" not in output:
                made.append(call)
            results.append(ToolResult(call.name, output))
        changes.extend(made)
        if made:
            responses.append(made)
    return Turn(calls, changes, tasks.state(), None, responses)


def judge(case: Case) -> str | None:
    """What went wrong with this case, or None when it passes."""
    try:
        turn = run_turn(case.message, case.start)
    except Exception as error:
        return f"raised {error!r}"
    listed = [call.arguments.get("status") for call in turn.calls if call.name == "list_tasks"]
    if not turn.replied:
        return f"no reply after {MAX_STEPS} steps: {_show(turn.calls)}"
    if case.no_tools and turn.calls:
        return f"called tools: {_show(turn.calls)}"
    if case.lists is not None and case.lists not in listed:
        return f"listed {listed or 'nothing'}, expected {case.lists!r}"
    flat = [
        call for entry in case.calls for call in (entry if isinstance(entry, list) else [entry])
    ]
    if not _calls_match(flat, turn.changes):
        return f"calls {_show(turn.changes)}, expected {case.calls}"
    for group in (entry for entry in case.calls if isinstance(entry, list)):
        if not any(_calls_match(group, response) for response in turn.responses):
            together = " | ".join(_show(response) for response in turn.responses)
            return f"calls made in responses {together}, expected {group} in one"
    if _comparable(turn.final) != _comparable(case.final):
        return f"left {turn.final}, expected {case.final}"
    missing = [words for words in case.mentions if words.lower() not in (turn.reply or "").lower()]
    if missing:
        return f"replied {turn.reply!r}, which does not mention {missing}"
    return None


def _calls_match(expected: list[dict[str, Any]], actual: list[ToolCallPlan]) -> bool:
    if len(expected) != len(actual):
        return False
    for wanted, call in zip(expected, actual, strict=True):
        arguments = {"tool": call.name, **call.arguments}
        if any(_same(value, arguments.get(key)) is False for key, value in wanted.items()):
            return False
    return True


def _same(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, str) and isinstance(actual, str):
        return " ".join(wanted.lower().split()) == " ".join(actual.lower().split())
    return bool(wanted == actual)


def _comparable(tasks: list[TaskState]) -> list[TaskState]:
    return [(task_id, " ".join(title.lower().split()), done) for task_id, title, done in tasks]


def _show(calls: list[ToolCallPlan]) -> str:
    return ", ".join(f"{call.name}{call.arguments}" for call in calls) or "none"


def report(cases: list[Case]) -> float:
    """Prints each failure and the pass rate; returns the rate."""
    failures = [(case, reason) for case in cases if (reason := judge(case)) is not None]
    for case, reason in failures:
        print(f"FAIL [{case.category}] {case.message!r}: {reason}")
    rate = 1 - len(failures) / len(cases)
    print(f"offline corpus: {len(cases) - len(failures)}/{len(cases)} passed ({rate:.1%})")
    return rate


def test_the_offline_model_handles_the_everyday_corpus() -> None:
    cases = load_corpus()
    assert len(cases) >= 200
    assert report(cases) >= REQUIRED_RATE


def test_the_fake_task_list_answers_like_the_tools() -> None:
    tasks = FakeTaskList([(1, "Buy milk", False)])
    assert tasks.call(ToolCallPlan("add_task", {"title": "  Call   mom "})) == {
        "task": {"id": 2, "title": "Call mom", "description": None, "completed": False}
    }
    assert tasks.call(ToolCallPlan("complete_task", {"task_id": 9}))["error"] == "not_found"
    assert tasks.call(ToolCallPlan("update_task", {"task_id": 1}))["error"] == "nothing_to_change"
    tasks.call(ToolCallPlan("update_task", {"task_id": 1, "completed": True}))
    pending = tasks.call(ToolCallPlan("list_tasks", {"status": "pending"}))
    assert [task["id"] for task in pending["tasks"]] == [2]
    assert tasks.call(ToolCallPlan("delete_task", {"task_id": 2}))["deleted"]["title"] == "Call mom"
    assert tasks.state() == [(1, "Buy milk", True)]
