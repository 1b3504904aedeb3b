"""What the offline model understands, and what it does next (no I/O)."""

from __future__ import annotations

import pytest

from app.agent.intent import Intent, ToolResult, match_tasks, next_step, understand


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("add buy milk", Intent("add", title="Buy milk")),
        ("Add 'Call the bank' to my todo list.", Intent("add", title="Call the bank")),
        ("please add a task to water the plants", Intent("add", title="Water the plants")),
        ("Remind me to book flights to Lisbon", Intent("add", title="Book flights to Lisbon")),
        ("I need to renew my passport", Intent("add", title="Renew my passport")),
        ("new task: file taxes", Intent("add", title="File taxes")),
        ("list my tasks", Intent("list", status="all")),
        ("show my todo list", Intent("list", status="all")),
        ("What's left?", Intent("list", status="pending")),
        ("what do I still have to do", Intent("list", status="pending")),
        ("show completed tasks", Intent("list", status="completed")),
        ("what did I finish", Intent("list", status="completed")),
        ("complete task 3", Intent("complete", task_id=3)),
        ("Mark #12 as done", Intent("complete", task_id=12)),
        ("done with buy milk", Intent("complete", words="buy milk")),
        ("I finished the laundry", Intent("complete", words="the laundry")),
        ("the laundry is done", Intent("complete", words="the laundry")),
        ("check off task number 4", Intent("complete", task_id=4)),
        ("mark 5 as not done", Intent("reopen", task_id=5)),
        ("delete task 7", Intent("delete", task_id=7)),
        ("remove buy milk from my list", Intent("delete", words="buy milk")),
        ("rename task 3 to Buy oat milk", Intent("rename", task_id=3, new_title="Buy oat milk")),
        ("change buy milk to buy bread", Intent("rename", words="buy milk", new_title="Buy bread")),
        ("hello", Intent("greet")),
        ("thanks!", Intent("thank")),
        ("what is the capital of France?", Intent("help")),
        ("add", Intent("help")),
    ],
)
def test_understands_everyday_phrasings(message: str, intent: Intent) -> None:
    assert understand(message) == intent


def _task(id: int, title: str, completed: bool = False) -> dict[str, object]:
    return {"id": id, "title": title, "completed": completed, "description": None}


def test_matching_by_words_prefers_the_best_and_reports_ambiguity() -> None:
    tasks = [_task(1, "Buy milk"), _task(2, "Buy bread"), _task(3, "Call mom")]
    assert match_tasks("milk", tasks, "complete") == [tasks[0]]
    assert match_tasks("the milk", tasks, "delete") == [tasks[0]]
    assert match_tasks("CALL MOM", tasks, "delete") == [tasks[2]]
    assert match_tasks("buy", tasks, "delete") == [tasks[0], tasks[1]]
    assert match_tasks("walk the dog", tasks, "delete") == []


def test_completing_prefers_the_task_not_yet_done() -> None:
    tasks = [_task(1, "Buy milk", completed=True), _task(2, "Buy milk")]
    assert match_tasks("milk", tasks, "complete") == [tasks[1]]
    assert match_tasks("milk", tasks, "reopen") == [tasks[0]]


def test_a_word_reference_lists_then_acts_then_replies() -> None:
    intent = understand("done with milk")
    first = next_step(intent, [])
    assert [(c.name, c.arguments) for c in first.calls] == [("list_tasks", {"status": "all"})]
    listing = ToolResult("list_tasks", {"status": "all", "tasks": [_task(4, "Buy milk")]})
    second = next_step(intent, [listing])
    assert [(c.name, c.arguments) for c in second.calls] == [("complete_task", {"task_id": 4})]
    done = ToolResult("complete_task", {"task": _task(4, "Buy milk", completed=True)})
    assert next_step(intent, [listing, done]).reply == 'Marked "Buy milk" (#4) as done. Nice work!'


def test_ambiguity_and_absence_are_answered_with_a_question() -> None:
    intent = understand("delete buy")
    listing = ToolResult("list_tasks", {"tasks": [_task(1, "Buy milk"), _task(2, "Buy bread")]})
    reply = next_step(intent, [listing]).reply
    assert reply is not None and "#1 Buy milk, #2 Buy bread" in reply and "Which one?" in reply
    empty = ToolResult("list_tasks", {"tasks": []})
    assert "couldn't find a task matching" in (next_step(intent, [empty]).reply or "")


def test_tool_errors_become_plain_replies() -> None:
    intent = understand("complete task 9")
    failed = ToolResult("complete_task", {"error": "tool_failed", "message": "x"})
    assert "couldn't reach your task list" in (next_step(intent, [failed]).reply or "")
    missing = ToolResult("complete_task", {"error": "not_found", "task_id": 9})
    assert "couldn't find task #9" in (next_step(intent, [missing]).reply or "")
