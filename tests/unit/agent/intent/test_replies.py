"""The wording: one reply for all the changes of a turn."""

from __future__ import annotations

from app.agent.intent import ToolCallPlan, ToolResult
from app.agent.intent.replies import found, listing, summary, thinking
from tests.unit.agent.intent.support import task


def _done(
    name: str, output: dict[str, object], **arguments: object
) -> tuple[ToolCallPlan, ToolResult]:
    return ToolCallPlan(name, dict(arguments)), ToolResult(name, dict(output))


def test_a_summary_says_each_kind_of_change_once_in_the_order_asked() -> None:
    done = [
        _done("add_task", {"task": task(8, "Buy stamps")}, title="Buy stamps"),
        _done("add_task", {"task": task(9, "Buy glue")}, title="Buy glue"),
        _done("complete_task", {"task": task(2, "Call mom", True)}, task_id=2),
        _done("update_task", {"task": task(4, "Dentist")}, task_id=4, title=None, completed=False),
        _done("update_task", {"task": task(5, "Gas bill")}, task_id=5, title="Gas bill"),
        _done("delete_task", {"deleted": task(7, "Laundry")}, task_id=7),
    ]
    assert summary(done) == (
        'Added "Buy stamps" (#8) and "Buy glue" (#9) to your list. '
        'Marked "Call mom" (#2) as done. Nice work! '
        '"Dentist" (#4) is back on your list as not done. '
        'Task #5 is now "Gas bill". '
        'Deleted "Laundry" (#7) from your list.'
    )


def test_a_failure_is_said_after_what_was_done() -> None:
    failed = _done("add_task", {"error": "tool_failed", "message": "x"}, title="A")
    assert summary([failed]).startswith("Sorry, I couldn't reach your task list just now")
    ok = _done("add_task", {"task": task(1, "B")}, title="B")
    assert summary([ok, failed]) == (
        'Added "B" to your list as task #1. '
        "Sorry, I couldn't reach your task list for the rest, so it wasn't changed."
    )


def test_thinking_names_what_a_response_is_about_to_do() -> None:
    calls = (
        ToolCallPlan("add_task", {"title": "Milk"}),
        ToolCallPlan("add_task", {"title": "Eggs"}),
        ToolCallPlan("delete_task", {"task_id": 3}),
    )
    assert thinking(calls) == 'Adding "Milk" and "Eggs" to the list and deleting task #3.'
    assert thinking(calls[2:]) == "Deleting task #3."


def test_listings_and_search_results() -> None:
    tasks = [task(1, "Buy milk"), task(2, "Call mom", True)]
    assert listing(tasks, "all") == "You have 2 tasks:\n- #1 Buy milk\n- #2 Call mom (done)"
    assert listing([], "pending") == "Nothing left to do. Enjoy your free time!"
    assert found("mom", tasks[1:]) == 'Here\'s what I found about "mom":\n- #2 Call mom (done)'
