"""The task rules of app/domain.py at their edges (cases make mutate found untested)."""

from __future__ import annotations

from app.domain import MAX_TITLE_CHARS, task_title


def test_a_task_title_is_one_to_max_title_chars_characters_on_one_line() -> None:
    assert task_title("") is None
    assert task_title(" \n\t ") is None
    assert task_title("a") == "a"
    assert task_title("x" * MAX_TITLE_CHARS) == "x" * MAX_TITLE_CHARS
    assert task_title("x" * (MAX_TITLE_CHARS + 1)) is None
