"""What the offline model understands, and what it does next (no I/O)."""

from __future__ import annotations

import pytest

from app.agent.intent import Intent, Step, ToolResult, match_tasks, next_step, understand


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("add buy milk", Intent("add", titles=("Buy milk",))),
        ("Add 'Call the bank' to my todo list.", Intent("add", titles=("Call the bank",))),
        ("please add a task to water the plants", Intent("add", titles=("Water the plants",))),
        ("Remind me to book flights to Lisbon", Intent("add", titles=("Book flights to Lisbon",))),
        ("I need to renew my passport", Intent("add", titles=("Renew my passport",))),
        ("new task: file taxes", Intent("add", titles=("File taxes",))),
        ("list my tasks", Intent("list", status="all")),
        ("show my todo list", Intent("list", status="all")),
        ("What's left?", Intent("list", status="pending")),
        ("what do I still have to do", Intent("list", status="pending")),
        ("show completed tasks", Intent("list", status="completed")),
        ("what did I finish", Intent("list", status="completed")),
        ("complete task 3", Intent("complete", task_ids=(3,))),
        ("Mark #12 as done", Intent("complete", task_ids=(12,))),
        ("done with buy milk", Intent("complete", words="buy milk")),
        ("I finished the laundry", Intent("complete", words="the laundry")),
        ("the laundry is done", Intent("complete", words="the laundry")),
        ("check off task number 4", Intent("complete", task_ids=(4,))),
        ("mark 5 as not done", Intent("reopen", task_ids=(5,))),
        ("delete task 7", Intent("delete", task_ids=(7,))),
        ("remove buy milk from my list", Intent("delete", words="buy milk")),
        (
            "rename task 3 to Buy oat milk",
            Intent("rename", task_ids=(3,), new_title="Buy oat milk"),
        ),
        (
            "change buy milk to buy bread",
            Intent("rename", words="buy milk", new_title="Buy bread"),
        ),
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


def _planned(step: Step) -> list[tuple[str, dict[str, object]]]:
    return [(call.name, call.arguments) for call in step.calls]


def _added(id: int, title: str) -> ToolResult:
    return ToolResult("add_task", {"task": _task(id, title)})


def test_several_tasks_are_added_one_call_at_a_time_in_order() -> None:
    intent = understand("add milk, eggs and bread")
    assert intent.titles == ("Milk", "Eggs", "Bread")
    results: list[ToolResult] = []
    for number, title in enumerate(intent.titles, start=1):
        assert _planned(next_step(intent, results)) == [("add_task", {"title": title})]
        results.append(_added(number, title))
    reply = next_step(intent, results).reply
    assert reply == 'Added "Milk" (#1), "Eggs" (#2) and "Bread" (#3) to your list.'


def test_one_verb_with_two_objects_stays_one_task() -> None:
    assert understand("add call mom and dad").titles == ("Call mom and dad",)
    assert understand("remind me to call mom and pay rent").titles == ("Call mom", "Pay rent")


def test_two_tasks_named_by_words_are_looked_up_once_then_acted_on_in_order() -> None:
    intent = understand("called mom and bought the milk")
    tasks = [_task(1, "Buy milk"), _task(2, "Call mom")]
    listing = ToolResult("list_tasks", {"status": "all", "tasks": tasks})
    assert _planned(next_step(intent, [listing])) == [("complete_task", {"task_id": 2})]
    first = ToolResult("complete_task", {"task": _task(2, "Call mom", completed=True)})
    assert _planned(next_step(intent, [listing, first])) == [("complete_task", {"task_id": 1})]
    second = ToolResult("complete_task", {"task": _task(1, "Buy milk", completed=True)})
    reply = next_step(intent, [listing, first, second]).reply
    assert reply == 'Marked "Call mom" (#2) and "Buy milk" (#1) as done. Nice work!'


def test_when_one_of_several_tasks_is_unsure_it_asks_before_acting_on_any() -> None:
    intent = understand("delete the bread and the milk")
    tasks = [_task(1, "Buy milk"), _task(2, "Buy bread"), _task(3, "Buy oat milk")]
    step = next_step(intent, [ToolResult("list_tasks", {"tasks": tasks})])
    assert step.calls == ()
    assert step.reply is not None and "#1 Buy milk, #3 Buy oat milk" in step.reply


def test_clearing_completed_tasks_deletes_only_those() -> None:
    intent = understand("clear completed tasks")
    tasks = [_task(1, "Buy milk", completed=True), _task(2, "Call mom")]
    listing = ToolResult("list_tasks", {"tasks": tasks})
    assert _planned(next_step(intent, [listing])) == [("delete_task", {"task_id": 1})]
    nothing = ToolResult("list_tasks", {"tasks": [_task(2, "Call mom")]})
    assert next_step(intent, [nothing]).reply == "You have no completed tasks right now."


def test_deleting_everything_is_refused_without_a_tool_call() -> None:
    for message in ("delete all my tasks", "clear my list", "get rid of everything"):
        step = next_step(understand(message), [])
        assert step.calls == ()
        assert "clear completed tasks" in (step.reply or "")


def test_an_error_midway_says_what_was_done_and_what_failed() -> None:
    intent = understand("remove #3 and #99")
    deleted = ToolResult("delete_task", {"deleted": _task(3, "Pay rent")})
    missing = ToolResult("delete_task", {"error": "not_found", "task_id": 99})
    assert _planned(next_step(intent, [deleted])) == [("delete_task", {"task_id": 99})]
    reply = next_step(intent, [deleted, missing]).reply
    assert reply == (
        'Deleted "Pay rent" (#3) from your list. I couldn\'t find task #99 on your list. '
        'Say "show my tasks" to see your list.'
    )


def test_reports_and_questions_about_a_task_are_told_apart() -> None:
    assert understand("the plants are watered") == Intent("complete", words="the plants watered")
    assert understand("is the milk done?") == Intent("list", status="completed")
    assert understand("I forgot to call mom").action == "help"
    assert understand("put the bins out") == Intent("add", titles=("Put the bins out",))
    assert understand("I put the bins out") == Intent("complete", words="put the bins out")
