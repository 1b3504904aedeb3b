"""The task rules of app/domain.py at their edges (cases make mutate found untested)."""

from __future__ import annotations

from app.domain import MAX_TITLE_CHARS, storable_json, task_title


def test_a_task_title_is_one_to_max_title_chars_characters_on_one_line() -> None:
    assert task_title("") is None
    assert task_title(" \n\t ") is None
    assert task_title("a") == "a"
    assert task_title("x" * MAX_TITLE_CHARS) == "x" * MAX_TITLE_CHARS
    assert task_title("x" * (MAX_TITLE_CHARS + 1)) is None


def test_what_postgresql_cannot_store_is_replaced_inside_lists_too() -> None:
    assert storable_json({"k": ["a\x00", 1, ["\ud800"]]}) == {"k": ["a\ufffd", 1, ["\ufffd"]]}
