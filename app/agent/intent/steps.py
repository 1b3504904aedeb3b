"""Deciding the next step of a turn from what the tools have answered so far: look the tasks
up once if the words name them, then make every change the message asks for in one model
response (parallel tool calls, as real models make them), then list if asked, then reply.

A step is decided afresh from the request and the results so far, replayed response by
response: the same request and results always give the same step. Changes to one task go
in successive responses, in the order they were asked for (the SDK runs the calls of one
response concurrently); so do changes to a task this turn adds, once its id is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.agent.intent import replies
from app.agent.intent.actions import CHANGES, Intent, Request, Step, ToolCallPlan, ToolResult
from app.agent.intent.matching import match_tasks, scored_matches
from app.agent.intent.vocabulary import NUMBERS, TASK_SEPARATOR

# At most this many calls in one response: a message naming many tasks is answered in
# several, and never sends more concurrent statements to the database than this at once.
MAX_CALLS_PER_RESPONSE = 25
# At most this many tasks added by one message: more is asked to be sent in parts, before any
# is added (a 4,000-character message can name a thousand).
MAX_ADDS_PER_MESSAGE = 50

Task = dict[str, Any]
_WHAT = {"pending": "pending tasks", "completed": "completed tasks", "all": "tasks"}


@dataclass(frozen=True, slots=True)
class _Job:
    """One change to make: its call, or the call to make on the task an add returns."""

    call: ToolCallPlan | None
    task_id: int | None = None
    after_add: int | None = None  # the index of the add whose task it changes
    intent: Intent | None = None


class _Results:
    """The results so far, taken in the order the calls were made."""

    def __init__(self, results: list[ToolResult]) -> None:
        self._results = results
        self._taken = 0

    def take(self, count: int) -> list[ToolResult] | None:
        if self._taken + count > len(self._results):
            return None
        taken = self._results[self._taken : self._taken + count]
        self._taken += count
        return taken


def next_step(request: Request, results: list[ToolResult]) -> Step:
    actions = request.actions
    questions = [action.reply for action in actions if action.action == "say"]
    if questions:  # something to ask first: nothing is done until it is answered
        return Step(reply=questions[0] or replies.HELP)
    if not any(
        action.action in CHANGES or action.action in ("list", "search") for action in actions
    ):
        return Step(reply=_talk(actions[0]))
    adds = sum(len(action.titles) for action in actions)
    if adds > MAX_ADDS_PER_MESSAGE:
        return Step(reply=replies.too_many(adds, MAX_ADDS_PER_MESSAGE))
    answered = _Results(results)
    tasks: list[Task] = []
    if any(_looks_up(action) for action in actions):
        looked_up = answered.take(1)
        if looked_up is None:
            return _call(_looking_for(actions), "list_tasks", status="all")
        if "error" in looked_up[0].output:
            return Step(reply=replies.error_reply(looked_up[0].output))
        tasks = looked_up[0].output.get("tasks", [])
    jobs = _jobs(actions, tasks)
    if isinstance(jobs, str):
        return Step(reply=jobs)
    done: list[tuple[ToolCallPlan, ToolResult]] = []
    while wave := _next_wave(jobs, done):
        made = answered.take(len(wave))
        if made is None:
            return Step(thinking=replies.thinking(wave), calls=wave)
        done.extend(zip(wave, made, strict=True))
        if any("error" in result.output for result in made):
            break  # what was asked after a failure may depend on it: say so instead
    said = [replies.summary(done)] if done else []
    said += [_found(action, tasks) for action in actions if action.action == "search"]
    listings = [action for action in actions if action.action == "list"]
    if listings:
        status = listings[0].status
        listed = answered.take(1)
        if listed is None:
            return _call(f"Looking up your {_WHAT[status]}.", "list_tasks", status=status)
        output = listed[0].output
        said.append(
            replies.error_reply(output)
            if "error" in output
            else replies.listing(output.get("tasks", []), output.get("status", status))
        )
    return Step(reply="\n\n".join(said))


def _talk(action: Intent) -> str:
    if action.action == "greet":
        return replies.GREETING
    if action.action == "thank":
        return replies.YOU_ARE_WELCOME
    return replies.HELP


def _looks_up(action: Intent) -> bool:
    return action.action == "search" or (
        action.action in CHANGES and (action.words is not None or action.every)
    )


def _looking_for(actions: tuple[Intent, ...]) -> str:
    named = [action.words for action in actions if _looks_up(action) and action.words]
    if len(named) == 1 and len([a for a in actions if _looks_up(a)]) == 1:
        return f'Looking for the task that matches "{named[0]}".'
    return "Looking up your tasks."


def _call(thinking: str, name: str, **arguments: Any) -> Step:
    return Step(thinking=thinking, calls=(ToolCallPlan(name, arguments),))


def _found(action: Intent, tasks: list[Task]) -> str:
    words = action.words or ""
    return replies.found(words, scored_matches(words, tasks, "search")[1])


def _jobs(actions: tuple[Intent, ...], tasks: list[Task]) -> list[_Job] | str:
    """Every change the actions ask for, or the question to ask when one is unsure."""
    jobs: list[_Job] = []
    for action in actions:
        if action.action == "add":
            jobs.extend(_Job(ToolCallPlan("add_task", {"title": title})) for title in action.titles)
        elif action.action in CHANGES and action.added is not None:
            jobs.append(_Job(None, after_add=action.added, intent=action))
        elif action.action in CHANGES:
            targets = _targets(action, tasks)
            if isinstance(targets, str):
                return targets
            jobs.extend(_Job(_change(action, task_id), task_id) for task_id in targets)
    unique: dict[object, _Job] = {}
    for job in jobs:  # the same change asked for twice is made once
        call = job.call
        key = (call.name, tuple(sorted(call.arguments.items()))) if call else id(job)
        unique.setdefault(key, job)
    return list(unique.values())


def _next_wave(
    jobs: list[_Job], done: list[tuple[ToolCallPlan, ToolResult]]
) -> tuple[ToolCallPlan, ...]:
    """The calls of the next response: the jobs not done yet, in order, at most one per task
    (a later change to a task waits for the earlier one)."""
    made = [call for call, _ in done]
    added = [result.output.get("task") for call, result in done if call.name == "add_task"]
    wave: list[ToolCallPlan] = []
    busy: set[int] = set()
    for job in jobs:
        call, task_id = job.call, job.task_id
        if job.after_add is not None:
            if job.after_add >= len(added) or job.intent is None:
                continue  # its task is not added yet
            task = added[job.after_add]
            if not isinstance(task, dict):
                continue  # the add failed: there is nothing to change
            task_id = int(task["id"])
            call = _change(job.intent, task_id)
        if call is None or call in made:
            continue
        if task_id is not None:
            if task_id in busy:
                continue
            busy.add(task_id)
        wave.append(call)
        if len(wave) == MAX_CALLS_PER_RESPONSE:
            break
    return tuple(wave)


def _change(action: Intent, task_id: int) -> ToolCallPlan:
    if action.action == "complete":
        return ToolCallPlan("complete_task", {"task_id": task_id})
    if action.action == "delete":
        return ToolCallPlan("delete_task", {"task_id": task_id})
    changes = (
        {"title": action.new_title, "description": None, "completed": None}
        if action.action == "rename"
        else {"title": None, "description": None, "completed": False}
    )
    return ToolCallPlan("update_task", {"task_id": task_id, **changes})


def _targets(action: Intent, tasks: list[Task]) -> list[int] | str:
    """The ids of the tasks an action names, or what to ask when that is unsure."""
    if action.every:
        done = action.status == "completed"
        chosen = [int(task["id"]) for task in tasks if bool(task["completed"]) == done]
        return chosen or f"You have no {action.status} tasks right now."
    if action.words is None:
        return list(dict.fromkeys(action.task_ids))
    words = action.words
    score, whole = scored_matches(words, tasks, action.action)
    exact = [task for task in whole if str(task["title"]).lower() == words.strip(" \"'").lower()]
    if len(exact) == 1:
        return [int(exact[0]["id"])]
    parts = TASK_SEPARATOR.split(words) if action.action != "rename" else [words]
    if len(parts) > 1 and isinstance(by_parts := _by_parts(action, parts, tasks), list):
        return by_parts
    if len(whole) == 1 and (score == 1.0 or len(parts) == 1):
        return [int(whole[0]["id"])]
    if len(parts) == 1:
        return _unsure(action, words, whole)
    return _by_parts(action, parts, tasks)


def _by_parts(action: Intent, parts: list[str], tasks: list[Task]) -> list[int] | str:
    chosen: list[int] = []
    for part in parts:
        if NUMBERS.match(part.lower()):
            chosen.extend(int(number) for number in re.findall(r"\d+", part))
            continue
        matches = match_tasks(part, tasks, action.action)
        if len(matches) != 1:
            return _unsure(action, part, matches)
        chosen.append(int(matches[0]["id"]))
    return list(dict.fromkeys(chosen))


def _unsure(action: Intent, words: str, matches: list[Task]) -> str:
    if not matches:
        return replies.not_found(words)
    return replies.ambiguous(action.action, words, matches)
