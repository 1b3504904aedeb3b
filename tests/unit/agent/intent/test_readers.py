"""One clause into one action: the readers, the references, the titles."""

from __future__ import annotations

from app.agent.intent import Intent
from app.agent.intent.readers import Clause, bare_task, list_mention, read
from app.agent.intent.references import is_pronoun, renaming, targeting
from app.agent.intent.titles import strip_list_suffix, titles


def _read(text: str, *, question: bool = False) -> Intent | None:
    found = read(Clause.of(text, question=question))
    return None if found is None else found[0]


def test_reports_and_questions_about_a_task_are_told_apart() -> None:
    assert _read("the plants are watered") == Intent("complete", words="the plants watered")
    assert _read("is the milk done") == Intent("search", words="the milk")
    assert _read("i forgot to call mom") is None
    assert _read("put the bins out") == Intent("add", titles=("Put the bins out",))
    assert _read("I put the bins out") == Intent("complete", words="put the bins out")


def test_a_question_is_never_a_bare_task() -> None:
    assert _read("buy milk") == Intent("add", titles=("Buy milk",))
    assert _read("buy milk", question=True) is None
    assert bare_task(Clause.of("do i need eggs")) is None


def test_the_reader_that_recognised_it_is_told() -> None:
    found = read(Clause.of("the milk task"))
    assert found is not None and found[1] is list_mention


def test_references() -> None:
    assert targeting("complete", "task 3 and 5") == Intent("complete", task_ids=(3, 5))
    assert targeting("delete", "it") == Intent("delete", refers_back=True)
    assert is_pronoun("paid it") and not is_pronoun("paid the bill")
    assert targeting("complete", "all the pending ones") == Intent(
        "complete", every=True, status="pending"
    )
    refused = targeting("delete", "everything")
    assert refused.action == "say" and "clear completed tasks" in (refused.reply or "")


def test_renaming() -> None:
    assert renaming("task 3", "done") == Intent("complete", task_ids=(3,))
    assert renaming("task 3", "Friday") is not None
    assert renaming("task 3", "Friday").action == "say"  # type: ignore[union-attr]
    assert renaming("it", "call dad") == Intent("rename", new_title="Call dad", refers_back=True)


def test_titles() -> None:
    assert titles("milk, eggs and bread") == ("Milk", "Eggs", "Bread")
    assert titles("'call mom', 'pay rent' and also 'book dentist'") == (
        "Call mom",
        "Pay rent",
        "Book dentist",
    )
    assert titles("1. call the bank 2. pay rent") == ("Call the bank", "Pay rent")
    assert titles("water the plants and also to take out the trash") == (
        "Water the plants",
        "Take out the trash",
    )
    assert titles("item 1 and item 2") == ("Item 1", "Item 2")
    assert titles("call mom and dad") == ("Call mom and dad",)
    assert strip_list_suffix("milk to my list") == "milk"
