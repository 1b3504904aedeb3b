"""One clause into one action: the readers, in order."""

from __future__ import annotations

from app.agent.intent import Intent
from app.agent.intent.readers import Clause, bare_task, list_mention, read


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
