"""The words the offline model knows."""

from __future__ import annotations

from app.agent.intent.vocabulary import (
    COMMAND_WORDS,
    NEAR_COMMAND_WORDS,
    NUMBERS,
    ONE_THING,
    PRONOUN_REF,
    TODO_VERBS,
    VERB_AND_PRONOUN,
)


def test_numbers_and_pronouns() -> None:
    assert NUMBERS.match("task 3, 4 and #5") and NUMBERS.match("tasks 1 and 2")
    assert not NUMBERS.match("task three")
    assert PRONOUN_REF.match("that one") and VERB_AND_PRONOUN.match("picked it up")
    assert not VERB_AND_PRONOUN.match("picked up the kids")


def test_a_real_word_near_a_command_is_not_one_and_no_command_is_a_near_word() -> None:
    assert not NEAR_COMMAND_WORDS & COMMAND_WORDS
    assert {"odd", "park", "remote", "how"} <= NEAR_COMMAND_WORDS
    assert "add" in COMMAND_WORDS and "buy" in TODO_VERBS


def test_things_named_with_and() -> None:
    assert ONE_THING.search("add mac and cheese to the list")
    assert not ONE_THING.search("add milk and cheese")
