"""The next step: one lookup, every change in one response, then the reply."""

from __future__ import annotations

from app.agent.intent import MAX_CALLS_PER_RESPONSE, ToolResult, next_step, understand
from app.agent.intent.steps import MAX_ADDS_PER_MESSAGE
from tests.unit.agent.intent.support import added, completed, listing, planned, task


def test_ten_tasks_are_added_in_one_response_then_summed_up() -> None:
    request = understand(
        "add eggs, bread, butter, cheese, apples, bananas, rice, pasta, coffee and tea"
    )
    first = next_step(request, [])
    titles = [
        "Eggs",
        "Bread",
        "Butter",
        "Cheese",
        "Apples",
        "Bananas",
        "Rice",
        "Pasta",
        "Coffee",
        "Tea",
    ]
    assert planned(first) == [("add_task", {"title": title}) for title in titles]
    assert first.thinking is not None and first.thinking.startswith('Adding "Eggs", "Bread"')
    results = [added(number, title) for number, title in enumerate(titles, start=1)]
    last = next_step(request, results)
    assert last.calls == ()
    assert last.reply is not None and last.reply.startswith('Added "Eggs" (#1), "Bread" (#2)')
    assert last.reply.endswith('"Tea" (#10) to your list.')


def test_more_calls_than_a_response_holds_go_in_several() -> None:
    request = understand("add " + ", ".join(f"thing {n}" for n in range(30)))
    first = next_step(request, [])
    assert len(first.calls) == MAX_CALLS_PER_RESPONSE
    results = [added(n, f"Thing {n}") for n in range(MAX_CALLS_PER_RESPONSE)]
    assert len(next_step(request, results).calls) == 30 - MAX_CALLS_PER_RESPONSE


def test_more_tasks_than_one_message_may_add_are_asked_for_in_parts_before_any_is_added() -> None:
    request = understand("add " + ", ".join(f"thing {n}" for n in range(MAX_ADDS_PER_MESSAGE + 1)))
    step = next_step(request, [])
    assert step.calls == ()
    assert step.reply is not None and f"at most {MAX_ADDS_PER_MESSAGE}" in step.reply
    fifty = understand("add " + ", ".join(f"thing {n}" for n in range(MAX_ADDS_PER_MESSAGE)))
    assert len(next_step(fifty, []).calls) == MAX_CALLS_PER_RESPONSE


def test_words_are_looked_up_once_then_every_change_is_made_together() -> None:
    request = understand("add buy stamps and mark call mom as done")
    assert planned(next_step(request, [])) == [("list_tasks", {"status": "all"})]
    looked_up = listing(task(2, "Call mom"), task(3, "Call the bank"))
    assert planned(next_step(request, [looked_up])) == [
        ("add_task", {"title": "Buy stamps"}),
        ("complete_task", {"task_id": 2}),
    ]
    reply = next_step(request, [looked_up, added(9, "Buy stamps"), completed(2, "Call mom")]).reply
    assert reply == (
        'Added "Buy stamps" to your list as task #9. Marked "Call mom" (#2) as done. Nice work!'
    )


def test_results_are_read_in_the_order_the_calls_were_made() -> None:
    request = understand("called mom and bought the milk")
    looked_up = listing(task(1, "Buy milk"), task(2, "Call mom"))
    assert planned(next_step(request, [looked_up])) == [
        ("complete_task", {"task_id": 2}),
        ("complete_task", {"task_id": 1}),
    ]
    reply = next_step(
        request, [looked_up, completed(2, "Call mom"), completed(1, "Buy milk")]
    ).reply
    assert reply == 'Marked "Call mom" (#2) and "Buy milk" (#1) as done. Nice work!'


def test_two_changes_to_one_task_go_in_successive_responses() -> None:
    request = understand("rename task 3 to pay the gas bill and mark task 3 as done")
    first = next_step(request, [])
    assert [call.name for call in first.calls] == ["update_task"]
    renamed = ToolResult("update_task", {"task": task(3, "Pay the gas bill")})
    assert planned(next_step(request, [renamed])) == [("complete_task", {"task_id": 3})]


def test_a_change_to_the_task_it_adds_waits_for_its_id() -> None:
    request = understand("add buy milk and mark it as done")
    assert planned(next_step(request, [])) == [("add_task", {"title": "Buy milk"})]
    assert planned(next_step(request, [added(41, "Buy milk")])) == [
        ("complete_task", {"task_id": 41})
    ]
    failed = ToolResult("add_task", {"error": "invalid_title", "message": "No."})
    assert next_step(request, [failed]).calls == ()


def test_when_one_part_is_unsure_it_asks_before_doing_any() -> None:
    request = understand("add buy stamps and delete the milk")
    looked_up = listing(task(21, "Buy milk"), task(23, "Buy oat milk"))
    step = next_step(request, [looked_up])
    assert step.calls == ()
    assert step.reply is not None and "#21 Buy milk, #23 Buy oat milk" in step.reply


def test_tasks_named_alike_are_told_apart_by_their_parts() -> None:
    request = understand("complete call mom and call mom about the party")
    looked_up = listing(task(41, "Call mom"), task(42, "Call mom about the party"))
    assert planned(next_step(request, [looked_up])) == [
        ("complete_task", {"task_id": 41}),
        ("complete_task", {"task_id": 42}),
    ]


def test_a_failure_in_a_response_is_said_with_what_was_done() -> None:
    request = understand("remove #3 and #99")
    assert [call.arguments["task_id"] for call in next_step(request, []).calls] == [3, 99]
    deleted = ToolResult("delete_task", {"deleted": task(3, "Pay rent")})
    missing = ToolResult("delete_task", {"error": "not_found", "task_id": 99})
    assert next_step(request, [deleted, missing]).reply == (
        'Deleted "Pay rent" (#3) from your list. I couldn\'t find task #99 on your list. '
        'Say "show my tasks" to see your list.'
    )


def test_a_listing_comes_after_the_changes_it_should_show() -> None:
    request = understand("add buy stamps and show me my list")
    assert planned(next_step(request, [])) == [("add_task", {"title": "Buy stamps"})]
    step = next_step(request, [added(1, "Buy stamps")])
    assert planned(step) == [("list_tasks", {"status": "all"})]
    reply = next_step(request, [added(1, "Buy stamps"), listing(task(1, "Buy stamps"))]).reply
    assert (
        reply == 'Added "Buy stamps" to your list as task #1.\n\nYou have 1 task:\n- #1 Buy stamps'
    )


def test_a_search_answers_from_one_lookup() -> None:
    request = understand("do I have anything about mom?")
    assert planned(next_step(request, [])) == [("list_tasks", {"status": "all"})]
    reply = next_step(request, [listing(task(2, "Call mom"), task(3, "Pay rent"))]).reply
    assert reply == 'Here\'s what I found about "mom":\n- #2 Call mom'
    nothing = next_step(understand("is there anything about dogs?"), [listing(task(2, "Call mom"))])
    assert nothing.reply == 'I couldn\'t find anything about "dogs" on your list.'


def test_a_failed_lookup_changes_nothing() -> None:
    request = understand("done with milk")
    failed = ToolResult("list_tasks", {"error": "tool_failed", "message": "x"})
    step = next_step(request, [failed])
    assert step.calls == () and "couldn't reach your task list" in (step.reply or "")


def test_clearing_completed_tasks_deletes_only_those_and_everything_is_refused() -> None:
    request = understand("clear completed tasks")
    looked_up = listing(task(1, "Buy milk", completed=True), task(2, "Call mom"))
    assert planned(next_step(request, [looked_up])) == [("delete_task", {"task_id": 1})]
    for message in ("delete all my tasks", "clear my list", "get rid of everything"):
        step = next_step(understand(message), [])
        assert step.calls == () and "clear completed tasks" in (step.reply or "")
