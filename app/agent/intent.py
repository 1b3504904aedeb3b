"""What the offline model understands: everyday todo requests, and what to do next.

Pure functions, no SDK: `understand()` reads a message, `next_step()` decides the next tool
call or the reply from what the tools have answered so far in this turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["add", "list", "complete", "reopen", "delete", "rename", "greet", "thank", "help"]

HELP = (
    'I can keep your todo list. Try "add buy milk", "show my tasks", "what\'s left?", '
    '"complete task 3" or "done with buy milk", "rename task 3 to buy oat milk", '
    'or "delete buy milk".'
)


@dataclass(frozen=True, slots=True)
class Intent:
    action: Action
    title: str | None = None
    status: Literal["pending", "completed", "all"] = "all"
    task_id: int | None = None
    words: str | None = None
    new_title: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallPlan:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """Either tool calls to make (with a line of thinking), or the reply."""

    thinking: str | None = None
    calls: tuple[ToolCallPlan, ...] = ()
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    output: dict[str, Any] = field(default_factory=dict)


_POLITE = r"(?:(?:please|pls|can you|could you|would you|kindly)\s+)*"
_DONE_WORDS = r"(?:done|complete|completed|finished)"
_NOT_DONE = r"(?:not done|undone|pending|incomplete|not complete|unfinished|open)"
_LIST_SUFFIX = re.compile(
    r"\s+(?:to|on|onto|in|into|from|off)\s+(?:my|the)\s+(?:todo\s+|to-do\s+|task\s+)?(?:list|tasks)$"
)
_TASK_NUMBER = re.compile(r"^(?:the\s+)?(?:task|item|todo|number|no\.?)?\s*(?:number\s*)?#?(\d+)$")

_RULE_PATTERNS: tuple[tuple[Action, str], ...] = (
    (
        "rename",
        rf"^{_POLITE}(?:rename|change|update|edit)\s+(?P<ref>.+?)\s+(?:to|into|as)\s+(?P<new>.+)$",
    ),
    ("reopen", rf"^{_POLITE}(?:reopen|uncheck|untick)\s+(?P<ref>.+)$"),
    ("reopen", rf"^{_POLITE}mark\s+(?P<ref>.+?)\s+as\s+{_NOT_DONE}$"),
    ("complete", rf"^{_POLITE}(?:complete|finish|check off|tick off|cross off)\s+(?P<ref>.+)$"),
    ("complete", rf"^{_POLITE}mark\s+(?P<ref>.+?)(?:\s+as)?\s+{_DONE_WORDS}$"),
    (
        "complete",
        r"^(?:i\s+)?(?:have\s+|'ve\s+|just\s+)*(?:done|finished|completed)\s+(?:with\s+)?(?P<ref>.+)$",
    ),
    ("complete", rf"^(?P<ref>.+?)\s+is\s+(?:now\s+)?{_DONE_WORDS}$"),
    ("delete", rf"^{_POLITE}(?:delete|remove|drop|erase|get rid of|cancel)\s+(?P<ref>.+)$"),
    ("add", rf"^{_POLITE}(?:add|create|put|new (?:task|todo):?|todo:)\s+(?P<title>.+)$"),
    (
        "add",
        rf"^{_POLITE}(?:remind me to|remember to|don't forget to|i need to|i have to|i must)"
        r"\s+(?P<title>.+)$",
    ),
)
_RULES = tuple((action, re.compile(pattern)) for action, pattern in _RULE_PATTERNS)
_LIST = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|to do|list|left|remaining|pending|outstanding|agenda)\b"
    r"|\bdid i (?:do|finish|complete)\b"
)
_GREETING = re.compile(r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|yo)\b")
_THANKS = re.compile(r"^(?:thanks|thank you|thx|cheers|great|perfect|awesome)\b")


def understand(message: str) -> Intent:
    original = " ".join(message.replace("\u2019", "'").split()).rstrip(".!?")
    text = original.lower()
    if len(text) != len(original):
        original = text
    for action, pattern in _RULES:
        match = pattern.match(text)
        if match is None:
            continue
        if action == "add":
            title = _title(original[match.start("title") : match.end("title")])
            return Intent("add", title=title) if title else Intent("help")
        reference = _strip_list_suffix(match.group("ref"))
        number = _TASK_NUMBER.match(reference)
        task_id = int(number.group(1)) if number else None
        words = None if number else reference
        new_title = None
        if action == "rename":
            new_title = _title(original[match.start("new") : match.end("new")])
            if not new_title:
                return Intent("help")
        return Intent(action, task_id=task_id, words=words, new_title=new_title)
    if _GREETING.match(text):
        return Intent("greet")
    if _THANKS.match(text):
        return Intent("thank")
    if text in ("help", "what can you do", "how does this work") or text.startswith("help "):
        return Intent("help")
    if _LIST.search(text):
        return Intent("list", status=_list_status(text))
    return Intent("help")


def _title(span: str) -> str:
    """A title in the user's own spelling, without the words that only address the list."""
    title = _strip_list_suffix(span)
    title = re.sub(
        r"^(?:a\s+)?(?:new\s+)?(?:task|todo|reminder)(?:\s+to|:)?\s+", "", title, flags=re.I
    )
    title = re.sub(r"^to\s+(?:my|the)\s+(?:todo\s+|to-do\s+)?list:?\s+", "", title, flags=re.I)
    title = title.strip(" \"'")
    return title[:1].upper() + title[1:]


def _strip_list_suffix(text: str) -> str:
    return _LIST_SUFFIX.sub("", text.strip()).strip(" \"'")


def _list_status(text: str) -> Literal["pending", "completed", "all"]:
    text = re.sub(r"\bto-?do list\b", "list", text)
    if (
        re.search(r"\b(?:completed|done|finished|did i (?:do|finish|complete))\b", text)
        and "not done" not in text
    ):
        return "completed"
    if re.search(
        r"\b(?:pending|left|remaining|open|outstanding|incomplete|unfinished|not done|to do|todo"
        r"|need to do)\b",
        text,
    ):
        return "pending"
    return "all"


def next_step(intent: Intent, results: list[ToolResult]) -> Step:
    if intent.action == "greet":
        return Step(reply="Hi! " + HELP)
    if intent.action == "thank":
        return Step(reply="You're welcome! Anything else for your list?")
    if intent.action == "help":
        return Step(reply=HELP)
    if intent.action == "add":
        if not results:
            assert intent.title is not None
            return _call(f'Adding "{intent.title}" to the list.', "add_task", title=intent.title)
        return Step(reply=_reply(intent, results[-1]))
    if intent.action == "list":
        if not results:
            what = {"pending": "pending tasks", "completed": "completed tasks", "all": "tasks"}
            return _call(
                f"Looking up your {what[intent.status]}.", "list_tasks", status=intent.status
            )
        return Step(reply=_reply(intent, results[-1]))
    return _act_on_task(intent, results)


def _act_on_task(intent: Intent, results: list[ToolResult]) -> Step:
    if results and results[-1].name != "list_tasks":
        return Step(reply=_reply(intent, results[-1]))
    task_id = intent.task_id
    if task_id is None:
        if not results:
            return _call(
                f'Looking for the task that matches "{intent.words}".', "list_tasks", status="all"
            )
        listing = results[-1].output
        if "error" in listing:
            return Step(reply=_error_reply(listing))
        matches = match_tasks(intent.words or "", listing.get("tasks", []), intent.action)
        if not matches:
            return Step(
                reply=f'I couldn\'t find a task matching "{intent.words}". '
                'Say "show my tasks" to see your list.'
            )
        if len(matches) > 1:
            options = ", ".join(f"#{task['id']} {task['title']}" for task in matches)
            return Step(
                reply=f'More than one task matches "{intent.words}": {options}. '
                f'Which one? You can say "{intent.action} task {matches[0]["id"]}".'
            )
        task_id = int(matches[0]["id"])
    if intent.action == "complete":
        return _call(f"Marking task #{task_id} as done.", "complete_task", task_id=task_id)
    if intent.action == "reopen":
        return _call(
            f"Marking task #{task_id} as not done.",
            "update_task",
            task_id=task_id,
            title=None,
            description=None,
            completed=False,
        )
    if intent.action == "rename":
        return _call(
            f'Renaming task #{task_id} to "{intent.new_title}".',
            "update_task",
            task_id=task_id,
            title=intent.new_title,
            description=None,
            completed=None,
        )
    return _call(f"Deleting task #{task_id}.", "delete_task", task_id=task_id)


def _call(thinking: str, name: str, **arguments: Any) -> Step:
    return Step(thinking=thinking, calls=(ToolCallPlan(name, arguments),))


_STOP_WORDS = frozenset(
    {"the", "a", "an", "my", "task", "tasks", "todo", "item", "one", "that", "this"}
    | {"please", "to", "for", "of", "on", "list"}
)


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {word.rstrip("s") or word for word in words if word not in _STOP_WORDS}


def match_tasks(words: str, tasks: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """The tasks whose titles best match `words`; more than one when it is ambiguous."""
    wanted = words.strip().lower()
    exact = [task for task in tasks if str(task["title"]).lower() == wanted]
    if exact:
        return exact
    stems = _stems(words)
    if not stems:
        return []
    scored = [(len(stems & _stems(str(task["title"]))) / len(stems), task) for task in tasks]
    best = max((score for score, _ in scored), default=0.0)
    if best < 0.5:
        return []
    matches = [task for score, task in scored if score == best]
    if len(matches) > 1 and action in ("complete", "reopen"):
        # "done with milk" means the milk task that is not done yet, and the other way round.
        wanted_state = action == "reopen"
        narrowed = [task for task in matches if bool(task["completed"]) == wanted_state]
        matches = narrowed or matches
    return matches


def _reply(intent: Intent, result: ToolResult) -> str:
    output = result.output
    if "error" in output:
        return _error_reply(output)
    if result.name == "list_tasks":
        return _list_reply(output.get("tasks", []), output.get("status", "all"))
    task = output.get("task") or output.get("deleted") or {}
    title, number = task.get("title", ""), task.get("id")
    if result.name == "add_task":
        return f'Added "{title}" to your list as task #{number}.'
    if result.name == "complete_task":
        return f'Marked "{title}" (#{number}) as done. Nice work!'
    if result.name == "delete_task":
        return f'Deleted "{title}" (#{number}) from your list.'
    if intent.action == "reopen":
        return f'"{title}" (#{number}) is back on your list as not done.'
    return f'Task #{number} is now "{title}".'


def _error_reply(output: dict[str, Any]) -> str:
    if output.get("error") == "not_found":
        return (
            f"I couldn't find task #{output.get('task_id')} on your list. "
            'Say "show my tasks" to see your list.'
        )
    if output.get("error") == "tool_failed":
        return (
            "Sorry, I couldn't reach your task list just now, so nothing was changed. "
            "Please try again."
        )
    return f"Sorry, I couldn't do that: {output.get('message', 'the request was not valid')}"


def _list_reply(tasks: list[dict[str, Any]], status: str) -> str:
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
    lines = [
        f"- #{task['id']} {task['title']}"
        + (" (done)" if task["completed"] and status == "all" else "")
        for task in tasks
    ]
    return "\n".join([header, *lines])
