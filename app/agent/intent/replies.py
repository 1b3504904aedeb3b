"""What the offline model says: the reply that sums up what its tools did, listings, search
results, and the questions it asks instead of acting."""

from __future__ import annotations

from typing import Any

from app.agent.intent.actions import Action, ToolCallPlan, ToolResult

HELP = (
    'I can keep your todo list. Try "add buy milk", "show my tasks", "what\'s left?", '
    '"complete task 3" or "done with buy milk", "rename task 3 to buy oat milk", '
    'or "delete buy milk".'
)
GREETING = "Hi! " + HELP
YOU_ARE_WELCOME = "You're welcome! Anything else for your list?"
LEFT_AS_IS = "Okay, I've left your list as it is."
ACKNOWLEDGED = "Okay! Anything else for your list?"
SHOW_LIST = 'Say "show my tasks" to see your list.'
_COULD_NOT_REACH = (
    "Sorry, I couldn't reach your task list just now, so nothing was changed. Please try again."
)

_WHICH_TASK = {"complete": "mark as done", "reopen": "reopen", "delete": "delete"}


def which_task(action: Action) -> str:
    command = action if action in ("reopen", "delete") else "complete"
    return (
        f"Which task should I {_WHICH_TASK.get(action, 'change')}? Say its number, like "
        f'"{command} task 3", or its words. {SHOW_LIST}'
    )


def cannot_do(request: str) -> str:
    return f'I can\'t do that myself, but I can put it on your list: say "add {request}".'


def too_many(count: int, most: int) -> str:
    return (
        f"That's {count} tasks in one message: I add at most {most} at a time, so I haven't "
        "added any. Please send them in smaller batches."
    )


def not_found(words: str) -> str:
    return f'I couldn\'t find a task matching "{words}". {SHOW_LIST}'


def ambiguous(action: Action, words: str, matches: list[dict[str, Any]]) -> str:
    options = ", ".join(f"#{task['id']} {task['title']}" for task in matches)
    return (
        f'More than one task matches "{words}": {options}. '
        f'Which one? You can say "{action} task {matches[0]["id"]}".'
    )


def thinking(calls: tuple[ToolCallPlan, ...]) -> str:
    """The line of thinking before a response's calls: what they are about to do."""
    kinds: dict[str, list[str]] = {}
    for call in calls:
        kind = _kind(call)
        title, task_id = call.arguments.get("title"), call.arguments.get("task_id")
        named = f'"{title}"' if kind == "add_task" else f"#{task_id}"
        kinds.setdefault(kind, []).append(named)
    text = _and_join([_doing(kind, _and_join(named), len(named)) for kind, named in kinds.items()])
    return text[:1].upper() + text[1:] + "."


def _doing(kind: str, named: str, count: int) -> str:
    task = "task" if count == 1 else "tasks"
    if kind == "add_task":
        return f"adding {named} to the list"
    if kind == "complete_task":
        return f"marking {task} {named} as done"
    if kind == "delete_task":
        return f"deleting {task} {named}"
    if kind == "reopen":
        return f"marking {task} {named} as not done"
    return f"renaming {task} {named}"


def summary(done: list[tuple[ToolCallPlan, ToolResult]]) -> str:
    """One reply for every change made in this turn, in the order they were asked for: what
    was done, then what could not be."""
    sentences = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for call, result in done:
        if "error" not in result.output:
            task = result.output.get("task") or result.output.get("deleted") or {}
            by_kind.setdefault(_kind(call), []).append(task)
    for kind, tasks in by_kind.items():
        sentences.append(_done_sentence(kind, tasks))
    errors = [result.output for _, result in done if "error" in result.output]
    if errors and all(error.get("error") == "tool_failed" for error in errors) and not by_kind:
        return _COULD_NOT_REACH
    sentences.extend(dict.fromkeys(_error_sentence(error) for error in errors))
    if any(error.get("error") == "not_found" for error in errors):
        sentences.append(SHOW_LIST)
    return " ".join(sentences)


def _kind(call: ToolCallPlan) -> str:
    if call.name == "update_task":
        return "rename" if call.arguments.get("title") is not None else "reopen"
    return call.name


def _done_sentence(kind: str, tasks: list[dict[str, Any]]) -> str:
    named = _and_join([f'"{task.get("title", "")}" (#{task.get("id")})' for task in tasks])
    if kind == "add_task" and len(tasks) == 1:
        return f'Added "{tasks[0].get("title", "")}" to your list as task #{tasks[0].get("id")}.'
    if kind == "add_task":
        return f"Added {named} to your list."
    if kind == "complete_task":
        return f"Marked {named} as done. Nice work!"
    if kind == "delete_task":
        return f"Deleted {named} from your list."
    if kind == "reopen":
        verb = "is" if len(tasks) == 1 else "are"
        return f"{named} {verb} back on your list as not done."
    return " ".join(f'Task #{task.get("id")} is now "{task.get("title", "")}".' for task in tasks)


def _error_sentence(output: dict[str, Any]) -> str:
    if output.get("error") == "not_found":
        return f"I couldn't find task #{output.get('task_id')} on your list."
    if output.get("error") == "tool_failed":
        return "Sorry, I couldn't reach your task list for the rest, so it wasn't changed."
    return f"Sorry, I couldn't do that: {output.get('message', 'the request was not valid')}"


def error_reply(output: dict[str, Any]) -> str:
    """A lookup that failed: nothing was changed."""
    if output.get("error") == "tool_failed":
        return _COULD_NOT_REACH
    return _error_sentence(output)


def listing(tasks: list[dict[str, Any]], status: str) -> str:
    if not tasks:
        return {
            "pending": "Nothing left to do. Enjoy your free time!",
            "completed": "You haven't completed any tasks yet.",
        }.get(status, 'Your list is empty. Add something with "add buy milk".')
    count = len(tasks)
    noun = "task" if count == 1 else "tasks"
    header = {
        "pending": f"You have {count} pending {noun}:",
        "completed": f"You've completed {count} {noun}:",
    }.get(status, f"You have {count} {noun}:")
    return "\n".join([header, *(_line(task, marked=status == "all") for task in tasks)])


def found(words: str, tasks: list[dict[str, Any]]) -> str:
    """The answer to a question about the list ("do I have anything about mom?")."""
    if not tasks:
        return f'I couldn\'t find anything about "{words}" on your list.'
    return "\n".join([f'Here\'s what I found about "{words}":', *(_line(t, True) for t in tasks)])


def _line(task: dict[str, Any], marked: bool) -> str:
    return f"- #{task['id']} {task['title']}" + (" (done)" if task["completed"] and marked else "")


def _and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
